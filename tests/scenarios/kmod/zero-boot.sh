# ehost-cmdline: reserve_mem=64M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug
#
# Zeroing of the first hand-out after boot: the pool is filled with
# a pattern through /dev/mem while the module is not loaded (as a previous
# boot's data would be), then the module loads and ALLOC hands the range out
# at once: it reads zero. On the debug kernel STRICT_DEVMEM refuses writes
# of RAM through /dev/mem (and /proc/kcore is read-only), so the fill step is
# skipped there, saying so: the load still counts the pool dirty, and the
# zeroing of the first hand-out runs under the debug checks.
. /lib/critmem/testlib.sh

# reserve_mem places the range at boot; learn it, then unload.
critmem_load
start=$(critmem_key start)
rmmod critmem || fail "rmmod"
if kconfig_enabled STRICT_DEVMEM; then
    assert_devmem_refused "$start" "STRICT_DEVMEM, reserve_mem pool (System RAM)"
    note "SKIPPED STEP: no fill of the pool before the load (STRICT_DEVMEM: /dev/mem cannot write RAM; /proc/kcore is read-only)"
else
    cmtool physfill "$start" 64M 0x5a || fail "physfill"
    cmtool physcheck "$start" 64M 0x5a || fail "fill did not stick"
    ok "pool at $start filled with 0x5a while critmem is not loaded"
fi

critmem_load
cmtool alloc --size 64M --verify-zero | tee /tmp/a || fail "first hand-out is not zero"
assert_eq "$(sed -n 's/^phys_start=//p' /tmp/a)" "$start" "the filled range was handed out"
cmtool physcheck "$start" 64M 0 || fail "a third-party read shows the old fill"
ok "first hand-out after the fill reads zero"
