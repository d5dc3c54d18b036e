#!/usr/bin/env bash
# Runs every test of tests/debian/ (the Debian build path and packages, in
# the trixie root); part of `make test`. Ends with
# `debian: N passed, M failed`.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
set +e
passed=0 failed=0
mkdir -p "$CRITMEM_ROOT/target"
for t in "$CRITMEM_ROOT"/tests/debian/[a-z]*.sh; do
    name=$(basename "$t" .sh)
    [ "$name" = run ] || [ "$name" = lib ] && continue
    start=$SECONDS
    if bash "$t" >"$CRITMEM_ROOT/target/debian-test-$name.log" 2>&1; then
        passed=$((passed + 1))
        printf 'PASS debian/%-36s %3ss\n' "$name" $((SECONDS - start))
    else
        failed=$((failed + 1))
        printf 'FAIL debian/%-36s %3ss\n' "$name" $((SECONDS - start))
    fi
    sed 's/^/    /' "$CRITMEM_ROOT/target/debian-test-$name.log"
done
echo "debian: $passed passed, $failed failed"
[ "$failed" = 0 ]
