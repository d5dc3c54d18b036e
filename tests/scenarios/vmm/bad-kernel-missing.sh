# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# Bad input: the kernel file does not exist. vmm exits non-zero with one clear error line, and no slice
# leaks: /proc/critmem shows the same free bytes before and after.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
:
out=$(vmm --kernel /nonexistent/bzImage --critical-mem --memory 256M 2>&1)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "vmm exited 0"
ok "vmm exit status $rc"
assert_eq "$(echo "$out" | grep -c '^vmm: error: ')" 1 "exactly one error line"
assert_match "$out" '^vmm: error: cannot read kernel image /nonexistent/bzImage: No such file or directory' "the error says what failed"
assert_eq "$(critmem_key free)" "$free0" "free bytes unchanged"
assert_eq "$(critmem_key slices)" 0 "no live slice"
