# ehost-kernels: debian
# ehost-cmdline: reserve_mem=1G:1G:critmem
# ehost-memory: 8G
# ehost-timeout: 150
#
# README, "Install on Debian 13", after the reboot: Debian's unmodified
# kernel booted with the parameters `critmem-boot apply --size 1G` planned
# (tests/debian/readme-install.sh), critmem.ko built by critmem-kbuild with
# Debian's toolchain and installed where DKMS puts it. The commands of that
# README block run here verbatim; tests/readme/check.sh checks that every
# one of them is here. The placement is checked by a third party through
# /proc/kcore, since STRICT_DEVMEM refuses /dev/mem.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

mkdir -p "/lib/modules/$(uname -r)/updates/dkms"
cp "$CRITMEM_KO" "/lib/modules/$(uname -r)/updates/dkms/"
depmod

modprobe critmem || fail "modprobe critmem: $(dmesg | grep critmem | tail -n 3)"
ok "modprobe critmem"
cat /proc/critmem
assert_eq "$(critmem_key size)" $((1 << 30)) "pool of 1 GiB"
assert_match "$(dmesg | grep 'critmem: pool')" 'source=reserve_mem 1G-pages=true' "pool from reserve_mem, 1 GiB pages"

cd /guest || fail "no /guest"
gpa=0x8000000
marker=$(random_u32)
vmm --critical-mem --memory 256M --kernel bzImage --initramfs initramfs.cpio.gz \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux memmap=4K\$$gpa guest.devmem=$gpa:$marker guest.sleep=4" \
    >/tmp/vmm.out 2>&1 &
pid=$!
wait_for /tmp/vmm.out "CRITMEM-GUEST-DEVMEM" 90 || fail "the guest wrote no marker: $(tail -n 20 /tmp/vmm.out)"
slice_start=$(slice_of "$pid" start)
phys=$(hex $((slice_start + gpa)))
read_back=$(cmtool physread "$phys" 4)
wait $pid
rc=$?
cat /tmp/vmm.out
assert_eq "$rc" 0 "critical vmm exit status"
assert_eq "$read_back" "data=$(le_hex "$marker")" "third party (/proc/kcore) reads the marker at slice start + GPA ($phys)"
assert_eq "$(critmem_key free)" $((1 << 30)) "the slice is back in the pool"
