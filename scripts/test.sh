#!/usr/bin/env bash
# The one test command (`make test`): from a fresh clone it installs the
# toolchain, builds the kernel, critmem.ko and the binaries (reusing caches),
# runs `cargo test` and every emulated-host scenario, and ends with the
# runners' closing counts.
#
#   scripts/test.sh [FILTER...]   FILTERs select emulated-host scenarios
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start=$SECONDS
bash "$CRITMEM_ROOT/scripts/ehost" build

log "cargo test --workspace"
cargo_log=$(mktemp)
cargo_rc=0
cargo test --locked --workspace --manifest-path "$CRITMEM_ROOT/Cargo.toml" 2>&1 |
    tee "$cargo_log" || cargo_rc=$?
read -r cargo_passed cargo_failed < <(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
    } END { print p + 0, f + 0 }' "$cargo_log")
rm -f "$cargo_log"
# A compile error yields no result lines; count it as a failure.
[ "$cargo_rc" != 0 ] && [ "$cargo_failed" = 0 ] && cargo_failed=1

log "emulated-host scenarios"
scen_log=$(mktemp)
scen_rc=0
bash "$CRITMEM_ROOT/scripts/ehost" test "$@" 2>&1 | tee "$scen_log" || scen_rc=$?
read -r scen_passed scen_failed < <(sed -n 's/^scenarios: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$scen_log" | tail -n 1)
rm -f "$scen_log"
scen_passed=${scen_passed:-0}
scen_failed=${scen_failed:-0}
[ "$scen_rc" != 0 ] && [ "$scen_failed" = 0 ] && scen_failed=1

echo
echo "==== critmem test summary ($((SECONDS - start))s) ===="
echo "cargo-tests: $cargo_passed passed, $cargo_failed failed"
echo "scenarios: $scen_passed passed, $scen_failed failed"
echo "total: $((cargo_passed + scen_passed)) passed, $((cargo_failed + scen_failed)) failed"
[ "$cargo_failed" = 0 ] && [ "$scen_failed" = 0 ]
