# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: an offset at or past the slice's end is refused with EINVAL;
# without ALLOC a non-zero offset cannot start an implicit slice.
. /lib/critmem/testlib.sh

critmem_load
cmtool mmap --alloc 4M --size 4K --offset 4M --expect EINVAL || fail "offset = slice size"
cmtool mmap --alloc 4M --size 4K --offset 1G --expect EINVAL || fail "offset far past the slice"
cmtool mmap --size 4M --offset 4K --expect EINVAL || fail "implicit slice with an offset"
assert_eq "$(critmem_key free)" "$(critmem_key size)" "nothing allocated"
ok "offsets past the slice -> EINVAL"
