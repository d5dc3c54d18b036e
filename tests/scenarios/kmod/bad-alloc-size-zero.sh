# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: ALLOC with size 0 gets EINVAL, and the pool is unchanged.
. /lib/critmem/testlib.sh

critmem_load
free=$(critmem_key free)
cmtool alloc --size 0 --align 0 --expect EINVAL || fail "ALLOC with size 0 did not give EINVAL"
assert_eq "$(critmem_key free)" "$free" "free unchanged"
assert_eq "$(critmem_key slices)" 0 "no slice"
cmtool alloc --size 4K --verify-zero >/dev/null || fail "the file-less pool still works"
ok "ALLOC with size 0 -> EINVAL"
