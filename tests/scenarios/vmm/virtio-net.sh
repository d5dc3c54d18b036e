# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 900
#
# Our own test kernel on the network through vmm's virtio-net and a tap
# (net_case in testlib.sh): a critical VM and a normal VM each ping the
# emulated host and are pinged by it, and move 64 MiB over TCP each way,
# whose sha256 the far end checks.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
net_case net-critical critical "$GUEST_KERNEL" "$GUEST_INITRAMFS"
net_case net-normal normal "$GUEST_KERNEL" "$GUEST_INITRAMFS"
