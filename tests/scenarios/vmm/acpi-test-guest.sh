# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
#
# Our own test kernel as a guest, which has ACPI (and the MP table too):
# critical with 2 vCPUs and normal with 4, each with every vCPU online, no
# ACPI error or warning, the third-party placement check, and SIGTERM ->
# ACPI power button -> acpid -> S5 (guest_whole in testlib.sh).
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
guest_whole test-critical critical 2 "$GUEST_KERNEL" "$GUEST_INITRAMFS" reboot=k
guest_whole test-normal normal 4 "$GUEST_KERNEL" "$GUEST_INITRAMFS" reboot=k
