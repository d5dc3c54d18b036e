# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: unloading while a slice is live is refused cleanly (the module,
# /proc/critmem and the slice stay); once the holder is gone it unloads and
# releases the pool from /proc/iomem.
. /lib/critmem/testlib.sh

critmem_load
cmtool alloc --size 8M --map --hold >/tmp/h 2>&1 &
h=$!
i=0
until grep -q '^ready=1' /tmp/h; do
    i=$((i + 1))
    [ $i -lt 600 ] && kill -0 $h 2>/dev/null || fail "holder: $(cat /tmp/h)"
    sleep 0.1
done
rmmod critmem 2>/tmp/rmmod && fail "rmmod succeeded with a live slice"
cat /tmp/rmmod
ok "rmmod refused: $(cat /tmp/rmmod)"
assert_match "$(cat /proc/modules)" '^critmem ' "module still loaded"
assert_eq "$(critmem_key slices)" 1 "slice still live"
kill -0 $h || fail "holder died"
kill $h
wait $h 2>/dev/null
i=0
until rmmod critmem 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || fail "rmmod still refused after the holder exited"
    sleep 0.1
done
ok "rmmod after the holder exited"
[ -e /proc/critmem ] && fail "/proc/critmem still exists"
assert_no_match "$(cat /proc/iomem)" critmem "/proc/iomem released"
critmem_load
assert_eq "$(critmem_key slices)" 0 "reload works"
