# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: unknown ioctl numbers get ENOTTY (another nr, another type,
# and ALLOC's number with a wrong size).
. /lib/critmem/testlib.sh

critmem_load
cmtool ioctl --cmd 0xc040ce63 --expect ENOTTY || fail "unknown nr"
cmtool ioctl --cmd 0x5401 --expect ENOTTY || fail "TCGETS"
cmtool ioctl --cmd 0xc008ce01 --expect ENOTTY || fail "ALLOC nr with a wrong size"
assert_eq "$(critmem_key slices)" 0 "nothing allocated"
ok "unknown ioctls -> ENOTTY"
