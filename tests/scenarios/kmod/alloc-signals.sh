# ehost-cmdline: reserve_mem=2G:2M:critmem
# ehost-memory: 6G
# ehost-timeout: 900
# ehost-kernels: test debug
#
# Only a fatal signal aborts ALLOC's synchronous zeroing. A dirty 2 GiB
# ALLOC under a 1 kHz SIGALRM storm succeeds, with the handler installed
# without and with SA_RESTART (the signal count shows the storm ran during
# the call). SIGKILL during state=zeroing ends it: the slice goes back,
# free returns to size, slices to 0, and free_zeroed converges to size.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)

wait_key() { # KEY VALUE WHAT
    i=0
    while [ "$(critmem_key "$1")" != "$2" ]; do
        i=$((i + 1))
        [ $i -lt 3000 ] || fail "$3: $(cat /proc/critmem)"
        sleep 0.1
    done
    ok "$3"
}

for flags in "" --restart; do
    wait_key free "$size" "pool free before the storm ${flags:-without SA_RESTART}"
    note "free_zeroed=$(critmem_key free_zeroed) of $size before the storm"
    # A bound for the old rule (every signal restarts the zeroing from
    # scratch, so under SA_RESTART the call never returns), not a measure.
    timeout 600 cmtool alloc-storm --size 2G --interval-us 1000 $flags >/tmp/storm 2>&1
    rc=$?
    cat /tmp/storm
    [ $rc -eq 0 ] || fail "ALLOC under the storm ${flags:-without SA_RESTART} (exit $rc): $(cat /tmp/storm)"
    assert_eq "$(sed -n 's/^alloc=//p' /tmp/storm)" ok "ALLOC under the storm ${flags:-without SA_RESTART}"
    n=$(sed -n 's/^signals_during_alloc=//p' /tmp/storm)
    [ "$n" -gt 0 ] || fail "no SIGALRM arrived during the ALLOC: the storm did not overlap it"
    # SIGALRM does not queue: the expirations while the call is in the
    # kernel coalesce into one pending signal, delivered when it returns.
    ok "$n SIGALRM handler runs during the ALLOC (at least one expiry arrived while it ran)"
done

wait_key free "$size" "pool free before the SIGKILL case"
cmtool alloc --size 2G >/tmp/killed 2>&1 &
victim=$!
i=0
until [ "$(slice_of $victim state)" = zeroing ]; do
    kill -0 $victim 2>/dev/null || fail "ALLOC returned before it was seen zeroing: $(cat /tmp/killed)"
    i=$((i + 1))
    [ $i -lt 100000 ] || fail "never saw state=zeroing"
done
cat /proc/critmem
kill -9 $victim
wait $victim 2>/dev/null
wait_key free "$size" "free back to size after SIGKILL during zeroing"
assert_eq "$(critmem_key slices)" 0 "no slice after SIGKILL"
wait_key free_zeroed "$size" "free_zeroed converges to size"
cat /proc/critmem
