# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debian
#
# Third-party placement check, normal VM: the guest writes a random marker at
# guest-physical 0x0c000000, and a scan of the whole critmem pool through
# /dev/mem does not find it: a normal VM's memory is not in the pool.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
gpa=0x0c000000
marker=$(random_u32)
note "marker $marker at guest-physical $gpa"
free0=$(critmem_key free)
vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux memmap=4K\$$gpa guest.devmem=$gpa:$marker guest.sleep=4" \
    >/tmp/vmm.out 2>&1 &
pid=$!
wait_for /tmp/vmm.out "CRITMEM-GUEST-DEVMEM" 60 || { cat /tmp/vmm.out; fail "the guest did not write its marker"; }
during_free=$(critmem_key free)
scan=$(cmtool physscan "$(critmem_key start)" "$(critmem_key size)" "$marker")
wait $pid
rc=$?
cat /tmp/vmm.out
assert_eq "$rc" 0 "vmm exit status"
assert_match "$(cat /tmp/vmm.out)" "^vmm: guest memory: anonymous" "backing line"
assert_match "$(cat /tmp/vmm.out)" "CRITMEM-GUEST-DEVMEM addr=$gpa value=$marker" "guest read its marker back"
assert_eq "$during_free" "$free0" "the normal VM took nothing from the pool"
assert_eq "$scan" "found=0 first=none scanned=$(critmem_key size)" "pool scan does not find the marker"
