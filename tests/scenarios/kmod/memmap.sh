# ehost-cmdline: memmap=256M$0x40000000
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug
#
# Memmap mode: the E820-reserved range from memmap=256M$0x40000000
# plus critmem.base/critmem.size: the map file and /proc/iomem match (test 1),
# a pattern written through the mapping is seen through /dev/mem at the
# listed address (test 2), and slices read zero. On the debug kernel
# (STRICT_DEVMEM) /dev/mem must refuse the pool, which critmem.ko claims
# with IORESOURCE_EXCLUSIVE, and /proc/kcore does not show it (not System
# RAM): the data check is the holder's own, through its mapping.
. /lib/critmem/testlib.sh

grep -i -B1 -A1 reserved /proc/iomem | head -20
critmem_load base=0x40000000 size=0x10000000
cat /proc/critmem
assert_eq "$(critmem_key source)" memmap "source"
assert_eq "$(critmem_key start)" 0x40000000 "start = critmem.base"
assert_eq "$(critmem_key end_inclusive)" 0x4fffffff "end_inclusive"
assert_eq "$(critmem_key size)" "$((256 << 20))" "size = critmem.size"
grep -B1 critmem /proc/iomem
assert_match "$(cat /proc/iomem)" '^ +40000000-4fffffff : critmem$' "/proc/iomem lists critmem nested in Reserved"

cmtool alloc --size 16M --align 2M --verify-zero --pattern seq:0x1234abcd00000000 --hold >/tmp/h 2>&1 &
h=$!
i=0
until grep -q '^ready=1' /tmp/h; do
    i=$((i + 1))
    [ $i -lt 600 ] && kill -0 $h 2>/dev/null || fail "holder: $(cat /tmp/h)"
    sleep 0.1
done
cat /tmp/h
line=$(grep '^slice=' /proc/critmem)
pstart=$(echo "$line" | sed -n 's/.* start=\(0x[0-9a-f]*\) .*/\1/p')
assert_eq "$pstart" "$(sed -n 's/^phys_start=//p' /tmp/h)" "slice start"
if kconfig_enabled STRICT_DEVMEM; then
    assert_devmem_refused "$pstart" "STRICT_DEVMEM, memmap slice claimed exclusively"
    assert_match "$(cat /tmp/h)" '^pattern_written=1' "the pattern reads back through the holder's mapping"
else
    cmtool physcheck "$pstart" 16M seq:0x1234abcd00000000 || fail "/dev/mem does not show the pattern"
    ok "/dev/mem at $pstart holds the pattern written through the mapping"
fi
kill $h
wait $h 2>/dev/null || true
ok "memmap mode: map file, /proc/iomem and placement verified"
