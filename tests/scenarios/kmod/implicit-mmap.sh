# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
#
# mmap without ALLOC allocates a slice of exactly the mapping's length (as
# QEMU's memory-backend-file,mem-path=/dev/critmem,share=on does); it reads
# zero; a second mapping of the same file reuses that slice.
. /lib/critmem/testlib.sh

critmem_load
# A first mmap takes only zeroed memory.
critmem_wait_zeroed
cmtool mmap --size 6M --verify-zero --hold >/tmp/m 2>&1 &
m=$!
i=0
until grep -q '^ready=1' /tmp/m; do
    i=$((i + 1))
    [ $i -lt 600 ] && kill -0 $m 2>/dev/null || fail "mapper: $(cat /tmp/m)"
    sleep 0.1
done
cat /tmp/m /proc/critmem
assert_eq "$(sed -n 's/^slice_size=//p' /tmp/m)" "$((6 << 20))" "implicit slice is exactly the mmap length"
assert_match "$(cat /tmp/m)" '^zero=1' "implicit slice reads zero"
assert_match "$(grep '^slice=' /proc/critmem)" "size=$((6 << 20)) pid=$m state=mapped" "listed in /proc/critmem"
kill $m
