# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
# ehost-extra: debian-guest
#
# Debian's stock cloud kernel as a guest at 1 and 2 vCPUs (4 is
# acpi-debian-guest, 8 boot-8cpus), normal and critical: each sees all its
# vCPUs through the ACPI MADT and powers off on SIGTERM (guest_whole in
# testlib.sh).
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
guest_whole debian-1cpu normal 1 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
guest_whole debian-2cpus critical 2 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
