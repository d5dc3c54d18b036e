# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 900
#
# Our own test kernel on the network through vmm's virtio-net and a tap
# (net_case in testlib.sh): a critical VM pings the emulated host and is
# pinged by it, and moves 64 MiB over TCP each way, whose sha256 the far
# end checks. (A normal VM's network is vmm/virtio-net-debian's: the
# device is the same, and each 64 MiB case costs minutes of emulation.)
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
net_case net-critical critical "$GUEST_KERNEL" "$GUEST_INITRAMFS"
