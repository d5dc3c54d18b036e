# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 420
# ehost-extra: debian-guest
#
# Guests whose root is a virtio-blk disk (rootdisk_case in testlib.sh):
# our test kernel mounts root=/dev/vda itself (virtio_blk and ext4 built
# in), Debian's stock cloud kernel through an initramfs that loads its
# virtio_blk module and switches to the disk; critical and normal VMs.
# The emulated host finds what each guest wrote to its root in the image,
# which the guest's power-off left clean.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
rootdisk_case root-critical critical "$GUEST_KERNEL"
rootdisk_case root-debian-critical critical "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
rootdisk_case root-debian-normal normal "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
