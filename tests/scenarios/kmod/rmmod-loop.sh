# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 240
# ehost-kernels: test debug
#
# rmmod races open files: two background loops open, ALLOC, map, write and
# close /dev/critmem as fast as they can while the foreground tries rmmod
# 30 times. rmmod either fails cleanly (EAGAIN or EBUSY: something is open)
# or unloads, and then insmod loads the module again at once. No kernel
# report; at the end the module unloads and reloads cleanly, with
# free == size and no slice.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
rm -f /tmp/stop
for n in 1 2; do
    (
        ok=0
        while [ ! -e /tmp/stop ]; do
            cmtool alloc --size 4M --pattern 0x3c >/dev/null 2>&1 && ok=$((ok + 1))
        done
        echo "$ok" >/tmp/loop$n
    ) &
done
refused=0
unloaded=0
round=0
while [ $round -lt 30 ]; do
    round=$((round + 1))
    if rmmod critmem 2>/tmp/rmmod.err; then
        unloaded=$((unloaded + 1))
        critmem_load
    else
        grep -qE 'Resource temporarily unavailable|Device or resource busy' /tmp/rmmod.err \
            || fail "rmmod round $round: $(cat /tmp/rmmod.err)"
        refused=$((refused + 1))
    fi
done
touch /tmp/stop
wait
echo "RMMOD-LOOP: rounds=30 refused=$refused unloaded=$unloaded allocs_loop1=$(cat /tmp/loop1) allocs_loop2=$(cat /tmp/loop2)"
[ "$(cat /tmp/loop1)" -gt 0 ] && [ "$(cat /tmp/loop2)" -gt 0 ] || fail "a background loop never completed an ALLOC"
assert_eq "$(critmem_key slices)" 0 "no slice left"
assert_eq "$(critmem_key free)" "$size" "free == size"
rmmod critmem || fail "final rmmod"
[ -e /proc/critmem ] && fail "/proc/critmem outlived the module"
critmem_load
assert_eq "$(critmem_key slices)" 0 "reload: no slice"
assert_eq "$(critmem_key free)" "$size" "reload: free == size"
