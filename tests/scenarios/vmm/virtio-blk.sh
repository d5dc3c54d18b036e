# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 420
#
# Our own test kernel with a virtio-blk disk on vmm's virtio-pci
# transport (disk_case in testlib.sh): an ext4 image made with
# mkfs.ext4 -d, read and written by a critical VM and a normal VM, and
# refused writes on a read-only disk; the emulated host checks every
# byte in the image after the guest's ACPI power-off, and reads the bytes
# the device DMA'd into the critical VM's slice as a third party.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
disk_case blk-critical critical rw "$GUEST_KERNEL" "$GUEST_INITRAMFS"
disk_case blk-normal normal rw "$GUEST_KERNEL" "$GUEST_INITRAMFS"
disk_case blk-readonly normal ro "$GUEST_KERNEL" "$GUEST_INITRAMFS"
