# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 900
# ehost-extra: debian-guest
#
# Debian's stock cloud kernel on the network (net_case in testlib.sh):
# its built-in virtio-pci finds vmm's virtio-net function and Debian's
# own virtio_net module drives it; a critical VM pings the emulated host
# and is pinged by it, and moves 64 MiB over TCP each way, whose sha256
# the far end checks. (A normal VM's case, `net_case debian-net-normal
# normal ...`, passes too but costs 4 to 5 minutes of emulation that the
# CI budget does not have until the network runs faster under TCG.)
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
net_case debian-net-critical critical "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
