# ehost-cmdline: reserve_mem=2176M:2M:critmem
# ehost-memory: 6G
# ehost-timeout: 900
# ehost-kernels: test debug
#
# ALLOC zeroes unzeroed memory holding neither mmap_lock nor the file's
# mutex. Right after insmod the pool is dirty, so a 2 GiB ALLOC zeroes most
# of it synchronously (state=zeroing). While it does, another thread of the
# same process finds A's file busy (INFO shows no slice, mmap and ALLOC fail
# with EBUSY), faults anonymous memory, reads /proc/self/maps and maps a
# second critmem file, and finishes before A's ALLOC returns: an ordering
# printed by cmtool zero-race, not a time.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)

# race OPS: one zero-race with thread B doing OPS; its output in /tmp/race.
race() {
    # The slice of the run before goes back dirty, and the worker zeroes
    # from the lowest address: wait for that release, not for the zeroing.
    critmem_wait_free 60
    note "free_zeroed=$(critmem_key free_zeroed) of $size before the race ($1)"
    cmtool zero-race --size 2G --op "$1" >/tmp/race 2>&1 || fail "zero-race $1: $(cat /tmp/race)"
    cat /tmp/race
    assert_eq "$(sed -n 's/^zeroing_seen=//p' /tmp/race)" 1 "$1: A's slice was listed as zeroing"
    assert_eq "$(sed -n 's/^first=//p' /tmp/race)" B "$1: thread B finished before A's ALLOC returned"
    assert_eq "$(sed -n 's/^b_done_while_zeroing=//p' /tmp/race)" 1 \
        "$1: A's slice was still being zeroed when B was done"
    assert_eq "$(sed -n 's/^a_phys_size=//p' /tmp/race)" "$((2 << 30))" "$1: A's ALLOC succeeded"
}

race same-file,anon,maps
assert_eq "$(sed -n 's/^b_same_file_info_slice_id=//p' /tmp/race)" 0 "INFO on the zeroing file shows no slice"
assert_eq "$(sed -n 's/^b_same_file_mmap=//p' /tmp/race)" EBUSY "mmap of the zeroing file"
assert_eq "$(sed -n 's/^b_same_file_alloc=//p' /tmp/race)" EBUSY "second ALLOC on the zeroing file"

race anon,maps,other-file
race other-file
