# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 240
# ehost-kernels: test debug
#
# Concurrent ALLOCs: 16 threads released together each open /dev/critmem
# and ALLOC mixed sizes (4 KiB and 2 MiB + 4 KiB round up to whole 2 MiB
# granules) and alignments, 30 rounds. In every round the replies are
# whole, aligned granules and do not overlap; /proc/critmem lists exactly
# those slices, none overlapping, with free = size - their sum; each
# thread's markers at both ends of its slice survive the others' writes. At
# the end free == size.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
cmtool concurrent-alloc --threads 16 --rounds 30 --sizes 4K,2M,2052K,6M,16M,10M --aligns 0,0,4M,2M,8M \
    | tee /tmp/c || fail "concurrent-alloc: $(cat /tmp/c)"
echo "CONCURRENT: $(tr '\n' ' ' </tmp/c)"
assert_eq "$(critmem_key slices)" 0 "no slice left"
assert_eq "$(critmem_key free)" "$size" "free == size"
