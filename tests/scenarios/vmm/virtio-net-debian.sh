# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 900
# ehost-extra: debian-guest
#
# Debian's stock cloud kernel on the network (net_case in testlib.sh):
# its built-in virtio-pci finds vmm's virtio-net function and Debian's
# own virtio_net module drives it; a critical VM and a normal VM each
# ping the emulated host and are pinged by it, and move 64 MiB over TCP
# each way, whose sha256 the far end checks.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
net_case debian-net-critical critical "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
net_case debian-net-normal normal "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
