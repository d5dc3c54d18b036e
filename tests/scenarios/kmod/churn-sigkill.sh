# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 240
# ehost-kernels: test debug
#
# Lifetimes under churn: 100 holders killed with SIGKILL, half of them
# while their ALLOC is zeroing dirty memory (state=zeroing), half while the
# slice is mapped. Every killed holder's slice is gone as soon as it is
# reaped, and at the end free == size, no slice is left, and free_zeroed
# converges to size (the zeroed part of an aborted ALLOC stays zeroed, the
# worker zeroes the rest).
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
cmtool churn --cycles 100 --size "$size" | tee /tmp/churn || fail "churn: $(cat /tmp/churn)"
zeroing=$(sed -n 's/^killed_zeroing=//p' /tmp/churn)
mapped=$(sed -n 's/^killed_mapped=//p' /tmp/churn)
missed=$(sed -n 's/^missed_zeroing=//p' /tmp/churn)
assert_eq "$((zeroing + missed))" 50 "cycles aimed at state=zeroing"
assert_eq "$mapped" 50 "cycles killed at state=mapped"
# A run that never caught a zeroing ALLOC tested nothing of that path.
[ "$zeroing" -ge 1 ] || fail "no cycle caught its ALLOC in state=zeroing ($missed missed)"
echo "CHURN: killed_zeroing=$zeroing killed_mapped=$mapped missed_zeroing=$missed"
assert_eq "$(critmem_key slices)" 0 "no slice left"
assert_eq "$(critmem_key free)" "$size" "free == size"
critmem_wait_zeroed 120
assert_eq "$(critmem_key free_zeroed)" "$size" "free_zeroed converged to size"
cat /proc/critmem
