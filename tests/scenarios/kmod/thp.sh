# ehost-cmdline: reserve_mem=1G:1G:critmem
# ehost-memory: 6G
# ehost-timeout: 300
# ehost-kernels: test debug
#
# The THP sysfs setting does not gate critmem's huge PFN faults: under each
# of /sys/kernel/mm/transparent_hugepage/enabled = never, madvise and always,
# a 1 GiB slice mapped at a 1 GiB-aligned address faults in with one 1 GiB
# page, and at a 2 MiB-aligned address with 2 MiB pages (minor-fault counts,
# as in kmod/huge1g). Linux 7.2 lets a VM_PFNMAP mapping with .huge_fault
# bypass the setting (vma_file_bypass_thp_tuneables in mm/huge_memory.c).
. /lib/critmem/testlib.sh

thp=/sys/kernel/mm/transparent_hugepage/enabled
[ -w $thp ] || fail "$thp missing: the kernel needs CONFIG_TRANSPARENT_HUGEPAGE"
note "THP at boot: $(cat $thp)"
critmem_load
start=$(critmem_key start)
assert_eq "$((start % (1 << 30)))" 0 "pool start is 1 GiB aligned"

for mode in never madvise always; do
    echo "$mode" >$thp || fail "cannot set $thp to $mode"
    assert_match "$(cat $thp)" "\[$mode\]" "THP enabled=$mode"

    cmtool touch --size 1G --align 1G --va-align 1G --write | tee /tmp/g || fail "touch 1G under $mode"
    f1=$(sed -n 's/^minflt=//p' /tmp/g)
    assert_eq "$(sed -n 's/^pages=//p' /tmp/g)" 262144 "touched every 4 KiB page of 1 GiB ($mode)"
    [ "$f1" -le 4 ] || fail "THP=$mode: the 1 GiB-aligned mapping took $f1 faults for 262144 pages (expected <= 4: one PUD)"
    ok "THP=$mode: 1 GiB-aligned mapping, $f1 minor faults => 1 GiB page"

    cmtool touch --size 1G --align 1G --va-align 1G --va-offset 2M --write | tee /tmp/m || fail "touch 2M under $mode"
    f2=$(sed -n 's/^minflt=//p' /tmp/m)
    [ "$f2" -ge 500 ] && [ "$f2" -le 1100 ] || fail "THP=$mode: expected ~512 faults with 2 MiB pages, got $f2"
    ok "THP=$mode: 2 MiB-aligned mapping, $f2 minor faults => 2 MiB pages"
    echo "EVIDENCE-THP: enabled=$mode minflt_1g_aligned=$f1 minflt_2m_aligned=$f2"
done
