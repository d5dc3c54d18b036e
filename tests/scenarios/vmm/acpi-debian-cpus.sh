# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 600
# ehost-extra: debian-guest
#
# Debian's stock cloud kernel as a guest at 1, 2 and 8 vCPUs (4 is
# acpi-debian-guest), alternating critical and normal: each sees all its
# vCPUs through the ACPI MADT and powers off on SIGTERM (guest_whole in
# testlib.sh). The 8-vCPU boot is one of the emulated host's higher counts
# (README, limitations).
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
guest_whole debian-1cpu normal 1 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
guest_whole debian-2cpus critical 2 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
guest_whole debian-8cpus critical 8 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
