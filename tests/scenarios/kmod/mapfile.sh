# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug debian
#
# Map file: /proc/critmem matches the boot parameter (size, 2 MiB
# alignment, end = start + size - 1, inclusive), is root-only, and the pool
# is claimed as "critmem" in /proc/iomem. Background zeroing finishes.
. /lib/critmem/testlib.sh

critmem_load
cat /proc/critmem
size=$((256 << 20))
start=$(critmem_key start)
end=$(critmem_key end_inclusive)
assert_eq "$(critmem_key version)" 1 "version"
assert_eq "$(critmem_key source)" reserve_mem "source"
assert_eq "$(critmem_key size)" "$size" "size from reserve_mem=256M"
assert_eq "$(hex "$end")" "$(hex $((start + size - 1)))" "end_inclusive = start + size - 1"
assert_eq "$((start % (2 << 20)))" 0 "start honours the 2M alignment"
align=$(critmem_key align)
assert_eq "$((align >= (2 << 20) && start % align == 0))" 1 "align ($align) divides start"
assert_eq "$(critmem_key free)" "$size" "all free"
assert_eq "$(critmem_key slices)" 0 "no slices"

line=$(dmesg | grep 'critmem: pool' | tail -n 1)
assert_match "$line" "start=$(hex "$start") end_inclusive=$(hex "$end") size=$size source=reserve_mem" "kernel log agrees"

# /proc/iomem prints ranges as zero-padded lowercase hex without 0x.
iomem_line=$(printf '%08x-%08x : critmem' "$start" "$end")
grep -n . /proc/iomem | grep -B1 -A1 critmem
assert_match "$(cat /proc/iomem)" "^ +$iomem_line\$" "/proc/iomem lists the pool, nested in System RAM"

assert_match "$(ls -l /proc/critmem)" '^-r-------- ' "/proc/critmem is 0400"
assert_match "$(ls -l /dev/critmem)" '^crw------- ' "/dev/critmem is 0600"

i=0
while [ "$(critmem_key free_zeroed)" != "$size" ]; do
    i=$((i + 1))
    [ $i -lt 600 ] || fail "background zeroing did not finish: $(cat /proc/critmem)"
    sleep 0.1
done
ok "background zeroing finished: free_zeroed=$size"

cmtool info | tee /tmp/info
assert_eq "$(sed -n 's/^pool_start=//p' /tmp/info)" "$(hex "$start")" "INFO pool_start"
assert_eq "$(sed -n 's/^pool_size=//p' /tmp/info)" "$size" "INFO pool_size"
assert_eq "$(sed -n 's/^source=//p' /tmp/info)" 1 "INFO source=reserve_mem"
