# ehost-cmdline: reserve_mem=1G:1G:critmem
# ehost-memory: 6G
# ehost-timeout: 600
# ehost-kernels: test debug
#
# A first mmap without ALLOC (QEMU's memory-backend-file path) takes only
# zeroed memory. Right after insmod the pool is dirty, so an implicit mmap
# of the whole pool fails with EAGAIN (and cmtool names the fix); once the
# worker has zeroed everything it succeeds and reads zero. An implicit mmap
# bigger than the pool fails with EINVAL, as ALLOC of that size does.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
cmtool mmap --size "$size" --expect EAGAIN >/tmp/m 2>&1
rc=$?
zeroed_after=$(critmem_key free_zeroed)
cat /tmp/m
# free_zeroed only grows while no slice comes or goes, so below size after
# the call means it was below size during it: only dirty memory would fit.
[ "$zeroed_after" -lt "$size" ] ||
    fail "the worker zeroed the whole pool before the mmap was checked; start it right after insmod"
note "free_zeroed=$zeroed_after of $size after the refused mmap"
[ $rc -eq 0 ] || fail "implicit mmap of dirty memory: $(cat /tmp/m)"
assert_eq "$(sed -n 's/^error=//p' /tmp/m)" EAGAIN "implicit mmap larger than free_zeroed"
assert_match "$(cat /tmp/m)" '^hint=only unzeroed memory fits a first mmap: wait until free_zeroed' \
    "cmtool says what to do about EAGAIN"
assert_eq "$(critmem_key free)" "$size" "the refused mmap took nothing"
assert_eq "$(critmem_key slices)" 0 "no slice after the refused mmap"

critmem_wait_zeroed 300
ok "free_zeroed reached size"
cmtool mmap --size "$size" --verify-zero >/tmp/m 2>&1 || fail "implicit mmap of zeroed memory: $(cat /tmp/m)"
cat /tmp/m
assert_match "$(cat /tmp/m)" '^zero=1' "the implicit slice reads zero"
assert_eq "$(sed -n 's/^slice_size=//p' /tmp/m)" "$size" "the implicit slice is the whole pool"

cmtool mmap --size "$((size * 2))" --expect EINVAL >/tmp/m 2>&1 || fail "implicit mmap bigger than the pool: $(cat /tmp/m)"
cat /tmp/m
assert_eq "$(sed -n 's/^error=//p' /tmp/m)" EINVAL "implicit mmap bigger than the pool"
