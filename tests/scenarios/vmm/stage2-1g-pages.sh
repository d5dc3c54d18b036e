# ehost-cmdline: memmap=1G$0x100000000
# ehost-memory: 5G
# ehost-timeout: 180
# ehost-kernels: test debian
#
# A critical VM on a 1 GiB-aligned slice is mapped by KVM with 1 GiB stage-2
# pages once the guest has touched its memory (KVM's own counts, from its
# binary stats fd). A normal VM of the same size, for comparison, gets none.
#
# The pool is the fixed range memmap=1G$4G (memmap mode): with
# reserve_mem=1G:1G the emulated host's early memblock allocation finds no
# 1 GiB-aligned gigabyte below its limit.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load base=0x100000000 size=0x40000000
start=$(critmem_key start)
assert_eq "$((start & ((1 << 30) - 1)))" 0 "pool start $start is 1 GiB aligned"

run() {
    vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 1G "$@" \
        --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux guest.touch=256" 2>&1
}
crit=$(run --critical-mem)
rc=$?
echo "$crit"
assert_eq "$rc" 0 "critical vmm exit status"
assert_match "$crit" "^vmm: guest memory: critmem slice $start-" "slice at the 1 GiB-aligned pool start"
assert_match "$crit" "CRITMEM-GUEST-TOUCHED mb=256" "guest touched 256 MiB"
line=$(echo "$crit" | grep '^kvm-stage2:')
p1g=$(echo "$line" | sed -n 's/.*pages_1g=\([0-9]*\).*/\1/p')
[ "${p1g:-0}" -ge 1 ] || fail "critical VM: no 1 GiB stage-2 pages: $line"
ok "critical VM: $line"

norm=$(run)
rc=$?
assert_eq "$rc" 0 "normal vmm exit status"
nline=$(echo "$norm" | grep '^kvm-stage2:')
assert_match "$nline" "pages_1g=0$" "normal VM has no 1 GiB stage-2 pages"
echo "STAGE2 critical: $line"
echo "STAGE2 normal:   $nline"
