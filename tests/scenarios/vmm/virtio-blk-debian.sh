# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 420
# ehost-extra: debian-guest
#
# Debian's stock cloud kernel as a guest with a virtio-blk disk
# (disk_case in testlib.sh): its built-in virtio-pci finds vmm's
# function, Debian's own virtio_blk module drives it, and its built-in
# ext4 mounts the image; a critical VM and a normal VM read and write it,
# and a read-only disk refuses the guest's writes. The emulated host
# checks every byte in the image after the guest's ACPI power-off, and
# reads the bytes the device DMA'd into the critical VM's slice as a
# third party.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
disk_case debian-blk-critical critical rw "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
disk_case debian-blk-normal normal rw "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
disk_case debian-blk-readonly critical ro "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
