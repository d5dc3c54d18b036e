# ehost-cmdline: reserve_mem=4G:1G:critmem
# ehost-memory: 12G
# ehost-timeout: 300
# ehost-kernels: test debug
#
# Fragmentation: small slices are packed away from whole 1 GiB blocks. An
# attacker takes 256 slices of 2 MiB and 4 KiB (each a whole 2 MiB granule)
# at 2 MiB alignment from 256 files, frees every other one and takes 128
# more: 768 MiB at most, less than one 1 GiB block, so at least
# pool/1G - 1 whole free 1 GiB blocks must remain (largest_free_1g in
# /proc/critmem). When the attacker is gone everything is whole again.
# (12G: in an 8G emulated host the KASAN debug kernel found no 1 GiB-aligned
# 4 GiB block for reserve_mem.)
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
start=$(critmem_key start)
assert_eq "$((start % (1 << 30)))" 0 "pool start is 1 GiB aligned"
before=$(critmem_key largest_free_1g)
assert_eq "$before" "$size" "largest_free_1g before the attack"
cmtool hold-many --count 256 --sizes 2M,4K --align 2M --release-odd --refill 128 >/tmp/atk 2>&1 &
atk=$!
wait_for /tmp/atk '^ready=1' 200 || fail "attacker: $(cat /tmp/atk)"
cat /tmp/atk
during=$(critmem_key largest_free_1g)
held=$(sed -n 's/^held_bytes=//p' /tmp/atk)
assert_eq "$(critmem_key free)" "$((size - held))" "free == size - what the attacker holds"
echo "FRAGMENTATION: pool=$size largest_free_1g before=$before during=$during held=$held slices=$(critmem_key slices) highest_end_offset=$(sed -n 's/^highest_end_offset=//p' /tmp/atk)"
[ "$during" -ge "$((size - (1 << 30)))" ] || fail "the attack left largest_free_1g=$during, less than pool - 1 GiB"
ok "at least $(((size >> 30) - 1)) whole free 1 GiB blocks survived the attack"
kill $atk
wait $atk 2>/dev/null
after=$(critmem_key largest_free_1g)
echo "FRAGMENTATION: after=$after"
assert_eq "$after" "$size" "largest_free_1g after the attacker is gone"
assert_eq "$(critmem_key slices)" 0 "no slice left"
assert_eq "$(critmem_key free)" "$size" "free == size"
