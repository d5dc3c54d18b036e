#!/usr/bin/env bash
# critmem-kbuild builds critmem.ko for every kernel of scripts/debian-kernels
# with Debian's own toolchain, and its symbol check holds: the Rust symbols
# of the rebuilt crates are the kernel's own (Module.symvers).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for release in $RELEASES; do
    out=$(bash "$CRITMEM_ROOT/scripts/debian-kbuild" ko "$release" 2>&1) || fail "build for $release: $out"
    ko=$(tail -n 1 <<<"$out")
    grep -m1 'symbol check' <<<"$out" || fail "$release: critmem-kbuild printed no symbol check: $out"
    grep -q "symbol check: the kernel's [0-9]* Rust symbols are all exported" <<<"$out" ||
        fail "$release: the symbol check did not pass"
    vermagic=$(modinfo -F vermagic "$ko")
    [ "${vermagic%% *}" = "$release" ] || fail "$ko: vermagic '$vermagic', wanted $release"
    echo "ok: $release: $ko, vermagic $vermagic"
done
