# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug
#
# A slice is shared through its open file only. Fork: the child does not
# inherit the mapping (VM_DONTCOPY: reading the parent's address kills a
# forked probe with SIGSEGV, and the child's /proc/self/maps has nothing
# there), maps the inherited file and reads the parent's data, and outlives
# the parent: the slice stays listed until the child is gone, then
# free == size. SCM_RIGHTS: a process that receives the file over a unix
# socket maps it and reads the sender's data after the sender closed it and
# exited.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
seed=$(random_u32)

note "fork: the heir outlives the parent"
rm -f /tmp/go
cmtool fork-share --size 64M --seed "$seed" --go /tmp/go >/tmp/fork 2>&1 &
parent=$!
wait $parent || fail "fork-share parent: $(cat /tmp/fork)"
cat /tmp/fork
assert_match "$(cat /tmp/fork)" '^probe_sigsegv=1' "a forked probe reading the parent's address died of SIGSEGV"
assert_match "$(cat /tmp/fork)" '^heir_maps_clean=1' "the child's /proc/self/maps has no critmem mapping at the parent's address"
assert_match "$(cat /tmp/fork)" '^heir_data_ok=1' "the child mapped the inherited file and read the parent's data"
heir=$(sed -n 's/^heir_pid=//p' /tmp/fork)
kill -0 "$heir" || fail "the heir $heir died with its parent"
assert_eq "$(critmem_key slices)" 1 "the slice is still listed after the parent exited"
assert_eq "$(slice_of "$parent" state)" mapped "the parent's slice is mapped (by the heir)"
touch /tmp/go
wait_for /tmp/fork '^heir_holding=1' 30 || fail "heir: $(cat /tmp/fork)"
assert_match "$(cat /tmp/fork)" '^heir_data_after_parent=1' "the heir reads the data after the parent is gone"
assert_eq "$(critmem_key slices)" 1 "the heir still holds the slice"
kill "$heir"
# The heir is init's child now, not ours: its end shows as its slice going.
i=0
until [ "$(critmem_key slices)" = 0 ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "slice still listed after SIGTERM to the heir: $(cat /proc/critmem)"
    sleep 0.1
done
ok "slice gone once the heir ended"
assert_eq "$(critmem_key free)" "$size" "free == size"

note "SCM_RIGHTS: the receiver maps the file after the sender exited"
rm -f /tmp/go /tmp/scm.sock
cmtool scm-recv --socket /tmp/scm.sock --seed "$seed" --go /tmp/go >/tmp/recv 2>&1 &
recv=$!
wait_for /tmp/recv '^listening=1' 30 || fail "receiver: $(cat /tmp/recv)"
cmtool scm-send --socket /tmp/scm.sock --size 32M --seed "$seed" | tee /tmp/send || fail "sender"
wait_for /tmp/recv '^received=1' 30 || fail "receiver: $(cat /tmp/recv)"
assert_eq "$(critmem_key slices)" 1 "the sender exited; the slice lives in the receiver's file"
assert_eq "$(critmem_key free)" "$((size - (32 << 20)))" "32 MiB still taken"
touch /tmp/go
wait $recv || fail "receiver: $(cat /tmp/recv)"
cat /tmp/recv
assert_match "$(cat /tmp/recv)" '^recv_data_ok=1' "the receiver read the sender's data"
assert_eq "$(critmem_key slices)" 0 "slice gone with the receiver"
assert_eq "$(critmem_key free)" "$size" "free == size"
