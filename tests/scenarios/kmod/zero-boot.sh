# ehost-cmdline: reserve_mem=64M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
#
# Zeroing of the first hand-out after boot: the pool is filled with
# a pattern through /dev/mem while the module is not loaded (as a previous
# boot's data would be), then the module loads and ALLOC hands the range out
# at once: it reads zero.
. /lib/critmem/testlib.sh

# reserve_mem places the range at boot; learn it, then unload.
critmem_load
start=$(critmem_key start)
rmmod critmem || fail "rmmod"
cmtool physfill "$start" 64M 0x5a || fail "physfill"
cmtool physcheck "$start" 64M 0x5a || fail "fill did not stick"
ok "pool at $start filled with 0x5a while critmem is not loaded"

critmem_load
cmtool alloc --size 64M --verify-zero | tee /tmp/a || fail "first hand-out is not zero"
assert_eq "$(sed -n 's/^phys_start=//p' /tmp/a)" "$start" "the filled range was handed out"
cmtool physcheck "$start" 64M 0 || fail "/dev/mem shows the old fill"
ok "first hand-out after the fill reads zero"
