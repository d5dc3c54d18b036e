# ehost-cmdline: reserve_mem=64M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug debian
#
# Zeroing after reuse: the pool is exactly one slice, so the second
# ALLOC reuses the bytes the first holder filled; they read zero (through the
# mapping and through /dev/mem, or /proc/kcore on the debug kernel).
. /lib/critmem/testlib.sh

critmem_load
cmtool alloc --size 64M --pattern 0xa5 | tee /tmp/a1 || fail "first alloc"
p1=$(sed -n 's/^phys_start=//p' /tmp/a1)
cmtool alloc --size 64M --verify-zero | tee /tmp/a2 || fail "the reused slice is not zero"
p2=$(sed -n 's/^phys_start=//p' /tmp/a2)
assert_eq "$p2" "$p1" "same physical range handed out again"
assert_match "$(cat /tmp/a2)" '^zero=1' "every byte of the reused slice reads zero"
kconfig_enabled STRICT_DEVMEM && assert_devmem_refused "$p1" "STRICT_DEVMEM, reserve_mem slice (System RAM)"
cmtool physcheck "$p1" 64M 0 || fail "a third-party read shows old data"
ok "a third-party read of physical memory agrees: zero"
