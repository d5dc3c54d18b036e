# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# Bad input: the kernel file is garbage. vmm exits non-zero with one clear error line, and no slice
# leaks: /proc/critmem shows the same free bytes before and after.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
dd if=/dev/urandom of=/tmp/garbage bs=1k count=512 2>/dev/null
out=$(vmm --kernel /tmp/garbage --critical-mem --memory 256M 2>&1)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "vmm exited 0"
ok "vmm exit status $rc"
assert_eq "$(echo "$out" | grep -c '^vmm: error: ')" 1 "exactly one error line"
assert_match "$out" '^vmm: error: kernel image /tmp/garbage is neither an ELF vmlinux nor a bzImage' "the error says what failed"
assert_eq "$(critmem_key free)" "$free0" "free bytes unchanged"
assert_eq "$(critmem_key slices)" 0 "no live slice"
