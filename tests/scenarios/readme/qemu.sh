# ehost-cmdline: reserve_mem=1G:2M:critmem
# ehost-memory: 3G
# ehost-timeout: 150
# ehost-extra: qemu
#
# README, "Using /dev/critmem from QEMU": the README's QEMU command, verbatim,
# with this machine's QEMU inside the emulated host. QEMU maps /dev/critmem
# with no ALLOC first; the slice is exactly the guest's 1 GiB, owned by QEMU
# while it runs, and back in the pool after. tests/readme/check.sh checks
# that the README's command is here.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
# A first mmap takes only zeroed memory.
critmem_wait_zeroed
free0=$(critmem_key free)
cd /guest || fail "no /guest"
qemu-system-x86_64 -accel kvm -cpu host -m 1G -no-reboot \
    -object memory-backend-file,id=mem,size=1G,mem-path=/dev/critmem,share=on \
    -machine memory-backend=mem \
    -kernel bzImage -initrd initramfs.cpio.gz -append console=ttyS0 -nographic >/tmp/qemu.out 2>&1 &
pid=$!
wait_for /tmp/qemu.out "CRITMEM-GUEST-UP" 90 || { cat /tmp/qemu.out; fail "the QEMU guest did not come up"; }
during=$(cat /proc/critmem)
wait $pid
rc=$?
cat /tmp/qemu.out
echo "$during"
assert_eq "$rc" 0 "qemu exit status"
assert_match "$(cat /tmp/qemu.out)" "CRITMEM-GUEST-UP cpus=1 " "guest booted under QEMU"
assert_match "$during" "^slice=id=[0-9]+ start=0x[0-9a-f]+ end_inclusive=0x[0-9a-f]+ size=$((1 << 30)) pid=$pid state=mapped" "QEMU's guest RAM is a 1 GiB critmem slice"
assert_eq "$(critmem_key free)" "$free0" "slice back in the pool after QEMU exited"
