# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
#
# A critical VM (--critical-mem) with one vCPU boots on a critmem slice: vmm
# names the slice, the slice is listed in /proc/critmem while the guest runs,
# the guest reports 1 online CPU, and the slice returns to the pool after.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" \
    --memory 256M --cpus 1 --critical-mem \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux guest.sleep=1" >/tmp/vmm.out 2>&1 &
pid=$!
sleep 1
during=$(cat /proc/critmem)
wait $pid
rc=$?
out=$(cat /tmp/vmm.out)
echo "$out"
echo "$during"
assert_eq "$rc" 0 "vmm exit status"
assert_match "$out" "^vmm: guest memory: critmem slice 0x[0-9a-f]+-0x[0-9a-f]+ \(256 MiB\)" "backing line"
assert_match "$during" "^slice=.*size=268435456 pid=$pid" "slice owned by vmm while it runs"
assert_match "$out" "CRITMEM-GUEST-UP cpus=1 " "guest marker with 1 CPU"
assert_match "$out" "CRITMEM-GUEST-DONE" "guest init finished"
assert_match "$out" "^kvm-stage2: pages_4k=[0-9]+ pages_2m=[0-9]+ pages_1g=[0-9]+" "stage-2 counts"
assert_eq "$(critmem_key free)" "$free0" "free bytes after exit"
