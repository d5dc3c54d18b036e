# ehost-cmdline: reserve_mem=2G:1G:critmem
# ehost-memory: 6G
# ehost-timeout: 300
# ehost-kernels: test debug
#
# A mapping of /dev/critmem cannot be cut inside a huge entry, and a move
# never carries a huge entry to an address it does not fit: munmap, mprotect
# and mremap of part of a 1 GiB- or 2 MiB-mapped slice fail with EINVAL and
# leave the data, and forged page-table values inside it, untouched; cuts on
# huge-page boundaries, cuts of 4 KiB-mapped slices and whole moves work.
# reserve_mem mode, where the pool is RAM in the direct map.
. /lib/critmem/testlib.sh
. /lib/critmem/cut-cases.sh

critmem_load
assert_eq "$(( $(critmem_key start) % (1 << 30) ))" 0 "pool start is 1 GiB aligned"
run_cut_cases
