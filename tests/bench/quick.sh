#!/usr/bin/env bash
# The benchmark's place in `make test`: runs `scripts/bench --quick` (one
# 256M emulated host, one run of every mode, with pressure) and checks only
# that it completed: the Markdown table and the CSV exist, every mode's row
# has every unloaded figure, and every mode also ran under pressure. No
# timing or figure is asserted.
#
#   tests/bench/quick.sh [--no-build]
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

out=$CRITMEM_ROOT/target/bench-quick
rm -rf "$out"
bash "$CRITMEM_ROOT/scripts/bench" --quick --out "$out" "$@" >"$out.log" 2>&1 || {
    tail -n 80 "$out.log"
    die "bench quick: scripts/bench --quick failed (log: $out.log)"
}
csv=$(ls "$out"/bench-*.csv 2>/dev/null | head -n 1)
md=$(ls "$out"/bench-*.md 2>/dev/null | head -n 1)
[ -s "$csv" ] || die "bench quick: no CSV in $out"
[ -s "$md" ] || die "bench quick: no Markdown table in $out"
runs=$(ls "$out"/bench-*.runs 2>/dev/null | head -n 1)
bad=0
for mode in critical normal prefault huge2m huge1g; do
    row=$(grep "^256M,$mode," "$csv") || { echo "bench quick: no CSV row for $mode"; bad=1; continue; }
    # The unloaded figures (columns 1-17) must all be there.
    unloaded=$(cut -d, -f1-17 <<<"$row")
    if [[ "$unloaded" == *,, || "$unloaded" == *,,* || "$unloaded" == *, ]]; then
        echo "bench quick: $mode row has empty unloaded fields: $row"
        bad=1
    fi
    grep -q "^| 256M | $mode | [0-9]" "$md" || { echo "bench quick: no table row for $mode"; bad=1; }
    # Under pressure the run must have happened; a nested guest that died
    # there is a finding the table shows as '-', not a benchmark failure.
    grep -q "mode=$mode phase=pressure" "$runs" || { echo "bench quick: no pressure run for $mode"; bad=1; }
    if grep "mode=$mode phase=pressure" "$runs" | grep -q "write_mbps= "; then
        echo "bench quick: note: the $mode guest under pressure reported no write figure (see the ehost log in $out)"
    fi
done
[ $bad = 0 ] || { cat "$md"; die "bench quick: incomplete results"; }
cat "$md"
echo "bench quick: every mode's row filled ($csv)"
