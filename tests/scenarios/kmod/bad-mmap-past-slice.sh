# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: a mapping longer than the slice is refused with EINVAL.
. /lib/critmem/testlib.sh

critmem_load
cmtool mmap --alloc 4M --size 8M --expect EINVAL || fail "mmap past the slice"
cmtool mmap --alloc 4M --size 4M --offset 2M --expect EINVAL || fail "offset + length past the slice"
cmtool mmap --alloc 4M --size 2M --offset 2M >/dev/null || fail "the last 2 MiB inside the slice should map"
ok "mmap past the slice -> EINVAL"
