# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 400
# ehost-extra: debian-guest
#
# Debian's stock cloud kernel (vmlinuz-RELEASE of linux-binary, unmodified)
# as a guest, 4 vCPUs, critical and normal (guest_whole in testlib.sh):
# every vCPU online (Debian builds without CONFIG_X86_MPPARSE, so the CPUs
# come from vmm's ACPI MADT), no ACPI error or warning, the third-party
# placement check, and SIGTERM -> ACPI power button -> acpid -> S5 ->
# `vmm: guest powered off`, status 0.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
note "guest kernel: Debian $(cat /guest/debian/release) $(cat /guest/debian/version)"
guest_whole debian-critical critical 4 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
guest_whole debian-normal normal 4 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
