# ehost-memory: 2G
# ehost-timeout: 120
#
# A normal VM (anonymous memory) with two vCPUs boots the guest to its init,
# which reports 2 online CPUs, and reboots: vmm exits 0 and reports its
# backing and KVM's stage-2 counts.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

out=$(vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" \
    --memory 256M --cpus 2 --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux" 2>&1)
rc=$?
echo "$out"
assert_eq "$rc" 0 "vmm exit status"
assert_match "$out" "^vmm: guest memory: anonymous" "backing line"
assert_match "$out" "CRITMEM-GUEST-UP cpus=2 " "guest marker with 2 CPUs"
assert_match "$out" "CRITMEM-GUEST-DONE" "guest init finished"
assert_match "$out" "^kvm-stage2: pages_4k=[0-9]+ pages_2m=[0-9]+ pages_1g=[0-9]+" "stage-2 counts"
