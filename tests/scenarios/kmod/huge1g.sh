# ehost-cmdline: reserve_mem=1G:1G:critmem
# ehost-memory: 6G
# ehost-timeout: 240
# ehost-kernels: test debug debian
#
# Huge mapping: a 1 GiB-aligned 1 GiB slice mapped at a 1 GiB-aligned
# address is mapped with one 1 GiB page. Evidence from the kernel's own
# accounting: the minor-fault count (getrusage) while writing every 4 KiB
# page is ~1, against ~512 when the address is only 2 MiB aligned (2 MiB
# pages) and one per page when it is only 4 KiB aligned.
. /lib/critmem/testlib.sh

critmem_load
cat /proc/critmem
start=$(critmem_key start)
assert_eq "$((start % (1 << 30)))" 0 "pool start is 1 GiB aligned"

note "1 GiB-aligned VA, 1 GiB-aligned PA"
cmtool touch --size 1G --align 1G --va-align 1G --write | tee /tmp/t1 || fail "touch 1G"
f1=$(sed -n 's/^minflt=//p' /tmp/t1)
assert_eq "$(sed -n 's/^pages=//p' /tmp/t1)" 262144 "touched every 4 KiB page of 1 GiB"
[ "$f1" -le 4 ] || fail "1 GiB mapping took $f1 faults for 262144 pages (expected <= 4: one PUD)"
ok "1 GiB slice at 1 GiB VA: $f1 minor faults for 262144 pages => 1 GiB page"

note "2 MiB-aligned VA (not 1 GiB): PMD mappings"
cmtool touch --size 1G --align 1G --va-align 1G --va-offset 2M --write | tee /tmp/t2 || fail "touch 2M"
f2=$(sed -n 's/^minflt=//p' /tmp/t2)
[ "$f2" -ge 500 ] && [ "$f2" -le 1100 ] || fail "expected ~512 faults with 2 MiB pages, got $f2"
ok "same slice at a 2 MiB-aligned VA: $f2 minor faults => 2 MiB pages"

note "4 KiB-aligned VA: PTE mappings (16 MiB)"
cmtool touch --size 16M --align 2M --va-align 2M --va-offset 4K --write | tee /tmp/t3 || fail "touch 4K"
f3=$(sed -n 's/^minflt=//p' /tmp/t3)
[ "$f3" -ge 4096 ] || fail "expected >= 4096 faults with 4 KiB pages, got $f3"
ok "16 MiB at a 4 KiB-aligned VA: $f3 minor faults => 4 KiB pages"
echo "EVIDENCE-1G: minflt_1g_aligned=$f1 minflt_2m_aligned=$f2 minflt_4k_aligned_16M=$f3"

note "no address hint: critmem's get_unmapped_area picks a 1 GiB-aligned VA"
cmtool touch --size 1G --align 1G --natural --write | tee /tmp/t4 || fail "touch natural"
f4=$(sed -n 's/^minflt=//p' /tmp/t4)
assert_eq "$(sed -n 's/^va_1g_aligned=//p' /tmp/t4)" 1 "kernel-chosen VA is 1 GiB aligned"
[ "$f4" -le 4 ] || fail "plain mmap of an ALLOCed 1 GiB slice took $f4 faults"
ok "plain mmap(NULL, 1G) of the slice: $f4 minor faults => 1 GiB page"

note "no ALLOC, no hint (QEMU-style implicit slice)"
# A first mmap takes only zeroed memory; the slices above came back dirty.
critmem_wait_zeroed
cmtool touch --size 1G --no-alloc --natural --write | tee /tmp/t5 || fail "touch implicit"
f5=$(sed -n 's/^minflt=//p' /tmp/t5)
assert_eq "$(sed -n 's/^pa=//p' /tmp/t5)" "$(hex "$start")" "implicit slice placed at the 1 GiB-aligned pool start"
[ "$f5" -le 4 ] || fail "implicit 1 GiB slice took $f5 faults"
ok "implicit 1 GiB slice via plain mmap: $f5 minor faults => 1 GiB page"
echo "EVIDENCE-1G-NATURAL: minflt_alloc_natural=$f4 minflt_implicit_natural=$f5"
