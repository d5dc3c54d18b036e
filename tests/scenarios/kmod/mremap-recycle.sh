# ehost-cmdline: reserve_mem=2G:1G:critmem
# ehost-memory: 6G
# ehost-timeout: 240
# ehost-kernels: test debug
#
# A 1 GiB slice outlives its file through a mapping moved twice by mremap
# (to 2 MiB past a 1 GiB boundary, then to a 1 GiB boundary; the data
# follows), dies with that mapping, and is recycled to a new owner at the
# same physical range. The old owner then reaches nothing of it: its former
# addresses are unmapped, its other slice keeps its own data, a file of its
# with no slice maps nothing; a third party (/dev/mem) sees the new owner's
# bytes there. (The mremap cases themselves, moves, shrink and grow, are in
# kmod/cut-reserve-mem and kmod/cut-memmap.)
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
rm -f /tmp/go
cmtool recycle --go /tmp/go >/tmp/old 2>&1 &
old=$!
wait_for /tmp/old '^ready=1' 120 || fail "old owner: $(cat /tmp/old)"
cat /tmp/old
assert_match "$(cat /tmp/old)" '^kept_by_mapping=1' "the moved mapping kept the slice after its file closed"
phys=$(sed -n 's/^old_phys=//p' /tmp/old)
cmtool alloc --size 1G --align 1G --pattern 0x5a --hold >/tmp/new 2>&1 &
new=$!
wait_for /tmp/new '^ready=1' 120 || fail "new owner: $(cat /tmp/new)"
assert_eq "$(sed -n 's/^phys_start=//p' /tmp/new)" "$phys" "the new owner got the old owner's physical range"
touch /tmp/go
wait $old || fail "old owner: $(cat /tmp/old)"
assert_match "$(cat /tmp/old)" '^old_owner_sees_nothing=1' "the old owner reaches nothing of the recycled slice"
for off in 0 $((512 << 20)) $(((1 << 30) - (2 << 20))); do
    cmtool physcheck "$((phys + off))" 2M 0x5a >/dev/null || fail "/dev/mem at $(hex $((phys + off))): not the new owner's bytes"
done
ok "/dev/mem shows the new owner's bytes at +0, +512M and the last 2 MiB"
kill $new
wait $new 2>/dev/null
assert_eq "$(critmem_key slices)" 0 "no slice left"
assert_eq "$(critmem_key free)" "$size" "free == size"
