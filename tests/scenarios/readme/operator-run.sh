# ehost-cmdline: reserve_mem=4G:1G:critmem
# ehost-memory: 8G
# ehost-timeout: 150
#
# README, "Load the module, see the pool, start VMs": the host rebooted with
# the parameters of `critmem-boot apply --size 4G` (operator-setup.sh), and
# critmem.ko installed as `make modules_install` does. The commands of that
# README block run here verbatim; tests/readme/check.sh checks that every
# one of them is here.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

# What modules_install put in place on a real host.
mkdir -p "/lib/modules/$(uname -r)/updates"
cp "$CRITMEM_KO" "/lib/modules/$(uname -r)/updates/"
depmod

modprobe critmem || fail "modprobe critmem: $(dmesg | grep critmem | tail -n 3)"
ok "modprobe critmem"
cat /proc/critmem
assert_eq "$(critmem_key size)" $((4 << 30)) "pool of 4 GiB"
assert_eq "$(($(critmem_key start) % (1 << 30)))" 0 "pool 1 GiB aligned"
line=$(grep critmem /proc/iomem)
echo "$line"
assert_match "$line" "critmem" "/proc/iomem lists the pool"

cd /guest || fail "no /guest"
crit=$(vmm --critical-mem --memory 1G --cpus 2 --kernel bzImage --initramfs initramfs.cpio.gz 2>&1)
rc=$?
echo "$crit"
assert_eq "$rc" 0 "critical vmm exit status"
assert_match "$crit" '^vmm: guest memory: critmem slice 0x[0-9a-f]+-0x[0-9a-f]+ \(1024 MiB\)' "critical VM on a 1 GiB slice"
assert_match "$crit" 'CRITMEM-GUEST-UP cpus=2 ' "guest up with 2 CPUs"
assert_match "$crit" '^kvm-stage2: pages_4k=[0-9]+ pages_2m=[0-9]+ pages_1g=[1-9][0-9]*$' "1 GiB stage-2 pages, as the README shows"

norm=$(vmm --memory 1G --cpus 2 --kernel bzImage --initramfs initramfs.cpio.gz 2>&1)
rc=$?
echo "$norm"
assert_eq "$rc" 0 "normal vmm exit status"
assert_match "$norm" '^vmm: guest memory: anonymous' "normal VM on anonymous memory"
assert_match "$norm" 'CRITMEM-GUEST-UP cpus=2 ' "guest up with 2 CPUs"
assert_eq "$(critmem_key free)" $((4 << 30)) "pool all free after both VMs"
