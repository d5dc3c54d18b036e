# ehost-memory: 2G
# ehost-timeout: 150
#
# The MP table and per-vCPU CPUID scale: a normal VM with 8 vCPUs (one
# thread each) boots with all 8 online.
#
# Like every scenario that boots nested guests, it runs pinned to the
# emulated host's CPU 0 (`nested_vms_on_one_cpu`, README limitations):
# unpinned, 8-vCPU guests are where the emulated host fails most.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 512M --cpus 8 \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux" >/tmp/vmm.out 2>&1 &
pid=$!
( sleep 120; kill $pid ) &
wait $pid
rc=$?
out=$(cat /tmp/vmm.out)
echo "$out" | tail -n 40
assert_eq "$rc" 0 "vmm exit status"
assert_match "$out" "CRITMEM-GUEST-UP cpus=8 " "guest marker with 8 CPUs"
