# ehost-cmdline: memmap=2G$0x100000000
# ehost-memory: 6G
# ehost-timeout: 300
# ehost-kernels: test debug
#
# The cut and move cases of kmod/cut-reserve-mem in memmap mode, where the
# pool is E820-reserved memory with no struct pages: before may_split, a
# 4 KiB munmap inside a 1 GiB mapping oopsed here in __split_huge_pmd.
. /lib/critmem/testlib.sh
. /lib/critmem/cut-cases.sh

critmem_load base=0x100000000 size=0x80000000
assert_eq "$(critmem_key source)" memmap "source"
run_cut_cases
