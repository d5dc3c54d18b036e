# shellcheck shell=sh
# The cases of the kmod/cut-* scenarios: cuts, moves and resizes inside
# huge-mapped slices, run the same way in each pool mode. Sourced after
# testlib.sh, with critmem.ko loaded on a pool of at least 2 GiB whose start
# is 1 GiB aligned.
#
# Each case runs `cmtool cut` (tests/ehost-tools/src/cut.rs), which checks
# the errno and that every page still mapped holds its data. The emulated
# host's init fails the scenario on any BUG, Oops, WARNING or "bad pud" in
# the kernel log, so a case that corrupts page tables without crashing is
# caught too.

# cut_case WHAT CMTOOL-CUT-ARGS...: one case; its output goes to /tmp/cut.out.
cut_case() {
    _what=$1
    shift
    cmtool cut "$@" >/tmp/cut.out 2>&1 || {
        cat /tmp/cut.out
        fail "$_what: cmtool cut $*"
    }
    grep -q '^data_intact=1$' /tmp/cut.out || fail "$_what: no data check in: $(cat /tmp/cut.out)"
    ok "$_what: $(grep -E '^(op_result|words_checked|minflt_recheck)=' /tmp/cut.out | tr '\n' ' ')"
}

run_cut_cases() {
    size=$(critmem_key size)
    [ "$((size >> 30))" -ge 2 ] || fail "the cut cases need a pool of at least 2 GiB"
    note "kernel $(uname -r): $(zcat /proc/config.gz | grep -E '^CONFIG_(DEBUG_VM|PROVE_LOCKING)=' | tr '\n' ' ')"

    note "1 GiB slice at a 1 GiB-aligned VA: one PUD entry"
    pud="--size 1G --align 1G --va-align 1G"
    cut_case "4 KiB munmap at +512M, forged entries" $pud --op munmap --at 512M --forge --expect EINVAL
    grep '^forged_' /tmp/cut.out
    ok "the forged huge-entry words survived untouched"
    cut_case "4 KiB mprotect at +512M, forged entries" $pud --op mprotect --at 512M --forge --expect EINVAL
    cut_case "4 KiB munmap at +2M (2 MiB aligned, inside the PUD)" $pud --op munmap --at 2M --expect EINVAL
    cut_case "MADV_NOHUGEPAGE of 4 KiB at +512M" $pud --op madvise-nohugepage --at 512M --expect EINVAL
    cut_case "MADV_DONTNEED of 4 KiB at +512M" $pud --op madvise-dontneed --at 512M --expect EINVAL
    cut_case "mremap with MREMAP_DONTUNMAP" $pud --op mremap-dontunmap --expect EINVAL
    cut_case "mremap shrink to 512M" $pud --op mremap-shrink --at 512M --expect EINVAL
    cut_case "mremap move of 4 KiB out of the middle" $pud --op mremap-move-part --at 512M --expect EINVAL
    cut_case "mremap grow" $pud --op mremap-grow --len 2M --expect EFAULT
    cut_case "mremap move to a 1 GiB-aligned address" $pud --op mremap-move --forge --at 512M
    cut_case "mremap move to a 4 KiB-aligned address" $pud --op mremap-move --forge --at 512M --to-va-offset 4K
    cut_case "mremap move to a 2 MiB-aligned address" $pud --op mremap-move --to-va-offset 2M

    note "2 GiB slice: cuts on the 1 GiB boundary are allowed"
    two="--size 2G --align 1G --va-align 1G"
    cut_case "munmap of the second GiB" $two --op munmap --at 1G --len 1G
    cut_case "mprotect of the second GiB" $two --op mprotect --at 1G --len 1G
    cut_case "MADV_NOHUGEPAGE of the second GiB" $two --op madvise-nohugepage --at 1G --len 1G
    cut_case "mremap shrink to 1G" $two --op mremap-shrink --at 1G

    note "1 GiB slice at a VA 2 MiB past a 1 GiB boundary: PMD entries"
    pmd="--size 1G --align 1G --va-align 1G --va-offset 2M"
    cut_case "4 KiB munmap inside a PMD, forged entries" $pmd --op munmap --at 524292K --forge --expect EINVAL
    cut_case "4 KiB mprotect inside a PMD" $pmd --op mprotect --at 64M --len 4K --expect EINVAL
    cut_case "mremap shrink to 511M+4K" $pmd --op mremap-shrink --at 523268K --expect EINVAL
    cut_case "munmap of one whole 2 MiB block" $pmd --op munmap --at 512M --len 2M
    cut_case "mprotect of one whole 2 MiB block" $pmd --op mprotect --at 512M --len 2M
    cut_case "mremap move of one whole 2 MiB block" $pmd --op mremap-move-part --at 512M --len 2M

    note "16 MiB slice at a VA 4 KiB past a 2 MiB boundary: 4 KiB entries only"
    pte="--size 16M --align 2M --va-align 2M --va-offset 4K"
    cut_case "4 KiB munmap" $pte --op munmap --at 8M
    cut_case "4 KiB mprotect" $pte --op mprotect --at 8M
    cut_case "mremap shrink to 8M+4K" $pte --op mremap-shrink --at 8196K

    note "every slice went back"
    assert_eq "$(critmem_key slices)" 0 "live slices"
    assert_eq "$(critmem_key free)" "$size" "free == size"
}
