# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# Bad input: --critical-mem with a pool smaller than the guest. vmm exits non-zero with one clear error line, and no slice
# leaks: /proc/critmem shows the same free bytes before and after.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
:
out=$(vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --critical-mem --memory 512M 2>&1)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "vmm exited 0"
ok "vmm exit status $rc"
assert_eq "$(echo "$out" | grep -c '^vmm: error: ')" 1 "exactly one error line"
assert_match "$out" '^vmm: error: critmem pool too small: requested 512 MiB, free 256 MiB \(largest free extent 256 MiB\)' "the error says what failed"
assert_eq "$(critmem_key free)" "$free0" "free bytes unchanged"
assert_eq "$(critmem_key slices)" 0 "no live slice"
