# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: MAP_PRIVATE mappings are refused with EINVAL, with and without
# a slice, and allocate nothing.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
cmtool mmap --size 4M --private --expect EINVAL || fail "MAP_PRIVATE without ALLOC"
assert_eq "$(critmem_key free)" "$size" "no implicit slice from a private mmap"
cmtool mmap --alloc 4M --size 4M --private --expect EINVAL || fail "MAP_PRIVATE of a slice"
cmtool mmap --alloc 4M --size 4M --readonly --verify-zero >/dev/null 2>&1
cmtool mmap --size 4M --readonly >/tmp/r 2>&1 || fail "read-only MAP_SHARED should work: $(cat /tmp/r)"
ok "read-only MAP_SHARED of a read-only open file is accepted"
