# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debian
#
# Third-party placement check, critical VM: the guest writes a random marker
# at guest-physical 0x0c000000 with busybox devmem; the emulated host reads
# physical address (slice start + 0x0c000000) through /dev/mem and finds it,
# and a scan of the whole pool finds it exactly there.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
gpa=0x0c000000
marker=$(random_u32)
note "marker $marker at guest-physical $gpa"
vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M --critical-mem \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux memmap=4K\$$gpa guest.devmem=$gpa:$marker guest.sleep=4" \
    >/tmp/vmm.out 2>&1 &
pid=$!
wait_for /tmp/vmm.out "CRITMEM-GUEST-DEVMEM" 60 || { cat /tmp/vmm.out; fail "the guest did not write its marker"; }
start=$(slice_of "$pid" start)
[ -n "$start" ] || fail "no slice of pid $pid in /proc/critmem: $(cat /proc/critmem)"
phys=$(hex $((start + gpa)))
read_back=$(cmtool physread "$phys" 4)
scan=$(cmtool physscan "$(critmem_key start)" "$(critmem_key size)" "$marker")
wait $pid
rc=$?
cat /tmp/vmm.out
assert_eq "$rc" 0 "vmm exit status"
assert_match "$(cat /tmp/vmm.out)" "CRITMEM-GUEST-DEVMEM addr=$gpa value=$marker" "guest read its marker back"
assert_eq "$read_back" "data=$(le_hex "$marker")" "/dev/mem at slice start $start + $gpa = $phys"
assert_eq "$scan" "found=1 first=$phys scanned=$(critmem_key size)" "pool scan finds the marker only there"
