# ehost-memory: 2G
# ehost-timeout: 60
#
# Bad input: --critical-mem while critmem.ko is not loaded. vmm exits
# non-zero with one line saying what to load and what to boot with.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

[ -e /dev/critmem ] && fail "/dev/critmem exists before the test"
out=$(vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --critical-mem --memory 256M 2>&1)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "vmm exited 0"
ok "vmm exit status $rc"
assert_eq "$(echo "$out" | grep -c '^vmm: error: ')" 1 "exactly one error line"
assert_match "$out" '^vmm: error: /dev/critmem does not exist: load critmem.ko \(modprobe critmem\) and boot with reserve_mem=<size>:<align>:critmem$' "the error says what to do"
