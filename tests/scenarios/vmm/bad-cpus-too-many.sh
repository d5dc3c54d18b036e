# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# Bad input: --cpus 255, more vCPUs than the guest's ACPI and MP tables can
# describe (8-bit APIC IDs). vmm exits non-zero before the guest starts, with
# one error line that names the limit and the fix, and no slice leaks:
# /proc/critmem shows the same free bytes before and after.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
:
out=$(vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --critical-mem --memory 256M --cpus 255 2>&1)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "vmm exited 0"
ok "vmm exit status $rc"
assert_eq "$(echo "$out" | grep -c '^vmm: error: ')" 1 "exactly one error line"
assert_match "$out" '^vmm: error: --cpus 255 exceeds the maximum of 254: the guest.s ACPI and MP tables give each vCPU an 8-bit APIC ID .*; use --cpus 254 or fewer$' "the error says what failed, why, and the fix"
assert_eq "$(critmem_key free)" "$free0" "free bytes unchanged"
assert_eq "$(critmem_key slices)" 0 "no live slice"
