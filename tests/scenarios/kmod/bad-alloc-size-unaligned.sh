# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: ALLOC with a size not a 4 KiB multiple gets EINVAL, and the pool is unchanged.
. /lib/critmem/testlib.sh

critmem_load
free=$(critmem_key free)
cmtool alloc --size 4097 --align 0 --expect EINVAL || fail "ALLOC with a size not a 4 KiB multiple did not give EINVAL"
assert_eq "$(critmem_key free)" "$free" "free unchanged"
assert_eq "$(critmem_key slices)" 0 "no slice"
cmtool alloc --size 4K --verify-zero >/dev/null || fail "the file-less pool still works"
ok "ALLOC with a size not a 4 KiB multiple -> EINVAL"
