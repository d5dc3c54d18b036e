# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug
#
# Test 5, SIGKILL release: a holder with an open file and a live mapping is
# killed with SIGKILL; its slice returns to the pool (free back to size).
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
cmtool alloc --size 32M --pattern 0x11 --hold >/tmp/h 2>&1 &
holder=$!
i=0
until grep -q '^ready=1' /tmp/h; do
    i=$((i + 1))
    [ $i -lt 600 ] && kill -0 $holder 2>/dev/null || fail "holder: $(cat /tmp/h)"
    sleep 0.1
done
cat /proc/critmem
assert_eq "$(critmem_key free)" "$((size - (32 << 20)))" "32 MiB taken"
assert_eq "$(critmem_key slices)" 1 "one slice"
kill -9 $holder
wait $holder 2>/dev/null
critmem_wait_free 10
cat /proc/critmem
assert_eq "$(critmem_key slices)" 0 "no slice after SIGKILL"
ok "free back to $size after SIGKILL"
