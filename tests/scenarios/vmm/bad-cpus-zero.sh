# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# Bad input: --cpus 0. vmm exits non-zero with one clear error line, and no slice
# leaks: /proc/critmem shows the same free bytes before and after.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
:
out=$(vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --critical-mem --memory 256M --cpus 0 2>&1)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "vmm exited 0"
ok "vmm exit status $rc"
assert_eq "$(echo "$out" | grep -c '^vmm: error: ')" 1 "exactly one error line"
assert_match "$out" '^vmm: error: --cpus must be at least 1' "the error says what failed"
assert_eq "$(critmem_key free)" "$free0" "free bytes unchanged"
assert_eq "$(critmem_key slices)" 0 "no live slice"
