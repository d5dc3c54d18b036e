# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
# ehost-kernels: test debug
#
# Slices are whole 2 MiB granules: ALLOC of 4 KiB answers phys_size = 2 MiB
# and /proc/critmem lists a 2 MiB slice; 100 ALLOCs of 4 KiB with 2 MiB
# alignment, from 100 files held open, take exactly 200 MiB.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)


cmtool alloc --size 4K --hold >/tmp/one 2>&1 &
one=$!
holder_ready /tmp/one $one 120
cat /tmp/one /proc/critmem
assert_eq "$(sed -n 's/^phys_size=//p' /tmp/one)" "$((2 << 20))" "ALLOC of 4 KiB answers phys_size"
assert_eq "$(slice_of $one size)" "$((2 << 20))" "/proc/critmem lists a 2 MiB slice"
start=$(slice_of $one start)
assert_eq "$((start % (2 << 20)))" 0 "the slice starts on a 2 MiB boundary"
assert_eq "$(critmem_key free)" "$((size - (2 << 20)))" "free is down by 2 MiB"
kill $one
wait $one 2>/dev/null

critmem_wait_free 10
cmtool alloc-many --count 100 --size 4K --align 2M --hold >/tmp/many 2>&1 &
many=$!
holder_ready /tmp/many $many 120
cat /tmp/many
assert_eq "$(sed -n 's/^total_phys_size=//p' /tmp/many)" "$((200 << 20))" "100 ALLOCs of 4 KiB answer 200 MiB in all"
assert_eq "$(critmem_key slices)" 100 "100 slices"
assert_eq "$(critmem_key free)" "$((size - (200 << 20)))" "they take exactly 200 MiB of the pool"
bad=$(grep '^slice=' /proc/critmem | grep -v "size=$((2 << 20)) " | head -n 3)
assert_eq "$bad" "" "every slice is one 2 MiB granule"
kill $many
wait $many 2>/dev/null
i=0
while [ "$(critmem_key free)" != "$size" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "the 100 slices were not released: $(cat /proc/critmem)"
    sleep 0.1
done
ok "the 100 slices went back when their files closed"
