# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: ALLOC with an alignment not a power of two gets EINVAL, and the pool is unchanged.
. /lib/critmem/testlib.sh

critmem_load
free=$(critmem_key free)
cmtool alloc --size 4M --align 0x3000 --expect EINVAL || fail "ALLOC with an alignment not a power of two did not give EINVAL"
assert_eq "$(critmem_key free)" "$free" "free unchanged"
assert_eq "$(critmem_key slices)" 0 "no slice"
cmtool alloc --size 4K --verify-zero >/dev/null || fail "the file-less pool still works"
ok "ALLOC with an alignment not a power of two -> EINVAL"
