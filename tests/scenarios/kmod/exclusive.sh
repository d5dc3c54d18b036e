# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug
#
# Exclusivity: two holders get disjoint slices; a second ALLOC on a
# file gets EBUSY; pool exhaustion gives ENOMEM and leaves free unchanged.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
cmtool alloc --size 128M --align 2M --again 4K --map --hold >/tmp/a 2>&1 &
a=$!
holder_ready /tmp/a $a
cmtool alloc --size 64M --map --hold >/tmp/b 2>&1 &
b=$!
holder_ready /tmp/b $b
cat /tmp/a /tmp/b
echo "--- /proc/critmem with two live slices:"
cat /proc/critmem
echo "---"
assert_eq "$(sed -n 's/^again_error=//p' /tmp/a)" EBUSY "second ALLOC on the same file"
assert_eq "$(critmem_key slices)" 2 "two slices"
sa=$(($(sed -n 's/^phys_start=//p' /tmp/a)))
sb=$(($(sed -n 's/^phys_start=//p' /tmp/b)))
ea=$((sa + (128 << 20)))
eb=$((sb + (64 << 20)))
[ $ea -le $sb ] || [ $eb -le $sa ] || fail "slices overlap: [$sa,$ea) [$sb,$eb)"
ok "slices are disjoint: $(hex $sa)+128M, $(hex $sb)+64M"
assert_match "$(grep "^slice=.*pid=$a " /proc/critmem)" "start=$(hex $sa) end_inclusive=$(hex $((ea - 1))) size=$((128 << 20)) pid=$a state=mapped" "slice line of holder A"
assert_match "$(grep "^slice=.*pid=$b " /proc/critmem)" "start=$(hex $sb) end_inclusive=$(hex $((eb - 1))) size=$((64 << 20)) pid=$b state=mapped" "slice line of holder B"

free=$(critmem_key free)
assert_eq "$free" "$((size - (192 << 20)))" "free after two slices"
cmtool alloc --size 128M --expect ENOMEM || fail "exhaustion did not give ENOMEM"
assert_eq "$(critmem_key free)" "$free" "free unchanged after ENOMEM"
assert_eq "$(critmem_key slices)" 2 "slices unchanged after ENOMEM"
cmtool alloc --size 64M --verify-zero || fail "the exactly fitting rest is not allocatable"
ok "the remaining 64 MiB is still allocatable"
kill $a $b
