#!/usr/bin/env bash
# The one test command (`make test`): from a fresh clone it installs the
# toolchain, builds the kernel, critmem.ko and the binaries (reusing caches),
# runs `cargo test`, clippy with warnings as errors (the workspace lints deny
# unsafe blocks without a SAFETY comment), the Debian build path and
# packages in a trixie root (tests/debian/), the README check (tests/readme/check.sh, which also runs
# the README's host-side commands, `make demo` among them) and every
# emulated-host scenario, and ends with the runners' closing counts.
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

log "cargo clippy --workspace --all-targets -- -D warnings"
lint_passed=1 lint_failed=0
if ! cargo clippy --locked --workspace --all-targets --manifest-path "$CRITMEM_ROOT/Cargo.toml" -- -D warnings; then
    lint_passed=0 lint_failed=1
fi

# counted NAME CMD...: runs the runner CMD, whose last line is
# `NAME: N passed, M failed`, and sets NAME_passed and NAME_failed from it; a
# runner that fails without such a line counts as one failure.
counted() {
    local name=$1 out rc=0 passed failed
    shift
    out=$(mktemp)
    "$@" 2>&1 | tee "$out" || rc=$?
    read -r passed failed < <(sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed\$/\1 \2/p" "$out" | tail -n 1) || true
    rm -f "$out"
    passed=${passed:-0} failed=${failed:-0}
    [ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1
    printf -v "${name}_passed" %s "$passed"
    printf -v "${name}_failed" %s "$failed"
}

log "README check: every README command has a runner; --help agrees; host-side commands"
counted readme bash "$CRITMEM_ROOT/tests/readme/check.sh"

log "Debian: critmem-kbuild, the packages and the README's install, in the trixie root"
counted debian bash "$CRITMEM_ROOT/tests/debian/run.sh"

log "emulated-host scenarios"
scen_log=$(mktemp)
scen_rc=0
bash "$CRITMEM_ROOT/scripts/ehost" test "$@" 2>&1 | tee "$scen_log" || scen_rc=$?
read -r scen_passed scen_failed scen_skipped < <(sed -n 's/^scenarios: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$scen_log" | tail -n 1)
rm -f "$scen_log"
scen_passed=${scen_passed:-0}
scen_failed=${scen_failed:-0}
[ "$scen_rc" != 0 ] && [ "$scen_failed" = 0 ] && scen_failed=1

# The benchmark on its smallest setting (no figure asserted), counted as one
# more scenario; run with no FILTER, or with one containing "bench".
if [ $# = 0 ] || [[ " $* " == *bench* ]]; then
    log "benchmark smoke check: scripts/bench --quick"
    bench_start=$SECONDS
    if bash "$CRITMEM_ROOT/tests/bench/quick.sh" --no-build; then
        scen_passed=$((scen_passed + 1))
        printf 'PASS %-40s %3ss\n' "bench/quick" $((SECONDS - bench_start))
    else
        scen_failed=$((scen_failed + 1))
        printf 'FAIL %-40s %3ss\n' "bench/quick" $((SECONDS - bench_start))
    fi
fi

echo
echo "==== critmem test summary ($((SECONDS - start))s) ===="
echo "cargo-tests: $cargo_passed passed, $cargo_failed failed"
echo "clippy: $lint_passed passed, $lint_failed failed"
echo "readme: $readme_passed passed, $readme_failed failed"
echo "debian: $debian_passed passed, $debian_failed failed"
echo "scenarios: $scen_passed passed, $scen_failed failed, ${scen_skipped:-0} skipped"
echo "total: $((cargo_passed + lint_passed + readme_passed + debian_passed + scen_passed)) passed, $((cargo_failed + lint_failed + readme_failed + debian_failed + scen_failed)) failed, ${scen_skipped:-0} skipped"
[ "$cargo_failed" = 0 ] && [ "$lint_failed" = 0 ] && [ "$readme_failed" = 0 ] && [ "$debian_failed" = 0 ] && [ "$scen_failed" = 0 ]
