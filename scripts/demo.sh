#!/usr/bin/env bash
# `make demo`: a critical VM and a normal VM side by side, on an emulated
# critmem host.
#
#   scripts/demo.sh [--guest-mem SIZE] [--pool SIZE] [--align SIZE]
#                   [--cpus N] [--host-mem SIZE] [--no-build]
#   make demo [GUEST_MEM=256M] [POOL=512M] [ALIGN=2M] [GUEST_CPUS=1] [HOST_MEM=...]
#
# 1. reads the sizes with `cmtool size` (built first, in seconds), then sets
#    up and builds (scripts/ehost build; warm caches make it seconds);
# 2. asks `critmem-boot plan --format cmdline` for the kernel parameters of a
#    POOL-sized pool on a machine of HOST_MEM (a fake --root describing the
#    emulated host), and boots the emulated host with exactly that string;
# 3. inside, tests/scenarios/demo/side-by-side.sh loads critmem, starts a
#    critical and a normal VM with vmm at the same time, checks where each
#    one's memory is through /dev/mem, and waits until the pool is all free;
# 4. prints the two VMs side by side. Exit status 0 when every check held.
#
# Options (flags win over environment variables; a SIZE is read as the
# kernel reads it: decimal or 0x hex, optional K/M/G/T/P/E suffix, e.g. 256M,
# 1G, 0x40000000; GUEST_MEM, POOL and HOST_MEM in whole MiB):
#   GUEST_MEM  / --guest-mem  memory of each VM             (default 256M)
#   POOL       / --pool       critmem pool size              (default 512M)
#   ALIGN      / --align      pool alignment                 (default 2M)
#   GUEST_CPUS / --cpus       vCPUs of each VM               (default 1)
#   HOST_MEM   / --host-mem   emulated host RAM              (default POOL + 2G,
#                             so the host keeps critmem-boot's safe minimum)
#   NO_BUILD=1 / --no-build   reuse the last `scripts/ehost build` as it is
# The full console of the emulated host is kept in target/demo/console.log.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GUEST_MEM=${GUEST_MEM:-256M}
POOL=${POOL:-512M}
ALIGN=${ALIGN:-2M}
GUEST_CPUS=${GUEST_CPUS:-1}
HOST_MEM=${HOST_MEM:-}
NO_BUILD=${NO_BUILD:-}
SCENARIO=$CRITMEM_ROOT/tests/scenarios/demo/side-by-side.sh
OUT=$CRITMEM_ROOT/target/demo

usage() { sed -n '2,/^source/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --guest-mem) GUEST_MEM=$2 ;;
        --pool) POOL=$2 ;;
        --align) ALIGN=$2 ;;
        --cpus) GUEST_CPUS=$2 ;;
        --host-mem) HOST_MEM=$2 ;;
        --no-build) NO_BUILD=1 && shift && continue ;;
        -h | --help) usage && exit 0 ;;
        *) usage >&2 && die "unknown option: $1" ;;
    esac
    [ $# -ge 2 ] || die "$1 needs a value"
    shift 2
done

# Sizes are read by `cmtool size` (tests/ehost-tools), the one size grammar
# (critmem_abi::units) that vmm, critmem-boot and the kernel read too. Only
# cmtool is built first, in seconds, so that a bad size fails before the long
# `scripts/ehost build`; with the same target and flags as
# scripts/build-userspace.sh, whose build then reuses it.
bindir=$CRITMEM_ROOT/target/x86_64-unknown-linux-gnu/release
build_cmtool() {
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build -q --release --locked --target x86_64-unknown-linux-gnu \
        --manifest-path "$CRITMEM_ROOT/Cargo.toml" -p critmem-ehost-tools --bin cmtool >&2
}
if [ -z "$NO_BUILD" ]; then
    log "demo: building cmtool, which reads the sizes"
    # A fresh machine may lack the C toolchain that links it: the setup
    # that `scripts/ehost build` runs anyway installs it, so run it first then.
    build_cmtool || { log "demo: cmtool did not build; running the setup first" &&
        bash "$CRITMEM_ROOT/scripts/setup-toolchain.sh" && build_cmtool; } ||
        die "cannot build cmtool, which reads the sizes (see above)"
fi
"$bindir/cmtool" size --help >/dev/null 2>&1 ||
    die "no cmtool with 'cmtool size' in ${bindir#"$CRITMEM_ROOT"/} (the last build is older): run without NO_BUILD"
# mib NAME SIZE: SIZE in whole MiB, or a stop naming NAME and the fix.
mib() {
    local out
    out=$("$bindir/cmtool" size --in-mib -- "$2" 2>&1) || die "$1: ${out#cmtool: }"
    echo "$out"
}
pool_mib=$(mib "POOL (--pool)" "$POOL")
guest_mib=$(mib "GUEST_MEM (--guest-mem)" "$GUEST_MEM")
[ -n "$HOST_MEM" ] || HOST_MEM=$((pool_mib + 2048))M
host_mib=$(mib "HOST_MEM (--host-mem)" "$HOST_MEM")
# ALIGN is critmem-boot's to judge, after the build; a malformed one fails now.
out=$("$bindir/cmtool" size -- "$ALIGN" 2>&1) || die "ALIGN (--align): ${out#cmtool: }"
((guest_mib <= pool_mib)) || die "GUEST_MEM=$GUEST_MEM does not fit in POOL=$POOL: the critical VM's memory comes from the pool"
[[ "$GUEST_CPUS" =~ ^[1-9][0-9]*$ ]] || die "GUEST_CPUS must be a positive number, got '$GUEST_CPUS'"

step() { printf '\n==> %s\n' "$*" >&2; }

start=$SECONDS
if [ -n "$NO_BUILD" ]; then
    step "1/3 setup and build: skipped (NO_BUILD), using the last build in target/ehost"
    [ -f "$CRITMEM_ROOT/target/ehost/host-base-test.cpio.gz" ] || die "nothing built yet: run without NO_BUILD"
else
    step "1/3 setup and build (warm caches: about 15 s; a fresh machine: 15-25 min, the toolchain and kernel steps report progress)"
    bash "$CRITMEM_ROOT/scripts/ehost" build
fi

step "2/3 kernel parameters from critmem-boot plan"
# critmem-boot validates the pool against the machine it is planned for: a
# root whose /proc/meminfo describes the emulated host's RAM.
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
mkdir -p "$fake/proc"
printf 'MemTotal:       %d kB\n' $((host_mib << 10)) >"$fake/proc/meminfo"
plan_cmd=(critmem-boot plan --size "$POOL" --align "$ALIGN" --format cmdline)
params=$("$bindir/critmem-boot" --root "$fake" "${plan_cmd[@]:1}") ||
    die "critmem-boot refused the pool (see above); pick another POOL/ALIGN, or a larger HOST_MEM"
printf '    $ %s    # on a %s host\n    %s\n' "${plan_cmd[*]}" "$HOST_MEM" "$params" >&2

# Measured on 2 cores: about 15 s to boot the emulated host and two nested
# guests side by side, plus the two /dev/mem scans of the pool (about 2 s per
# 256 MiB each) and the guests' memory (about 1 s per 128 MiB).
estimate=$((15 + pool_mib * 2 / 256 + guest_mib / 128))
step "3/3 emulated host: $HOST_MEM RAM, kernel parameters '$params'; critical + normal VM of $GUEST_MEM, $GUEST_CPUS vCPU each (about $estimate s)"
mkdir -p "$OUT"
log=$OUT/console.log
rc=0
run_host() {
    bash "$CRITMEM_ROOT/scripts/ehost" run \
        --header "cmdline=$params" --header "memory=$HOST_MEM" \
        --env "GUEST_MEM=$GUEST_MEM" --env "GUEST_CPUS=$GUEST_CPUS" \
        "$SCENARIO" >"$log" 2>&1
}
with_progress "emulated host" "$estimate" run_host || rc=$?

# ---- the table -------------------------------------------------------------
fact() { sed -n "s/^DEMO $1=//p" "$log" | tr -d '\r' | head -n 1; }
if [ -t 1 ]; then width=$(tput cols 2>/dev/null || echo 120); else width=120; fi
width=${COLUMNS:-$width}
((width >= 100)) || width=100
((width <= 150)) || width=150
label=18
col=$(((width - label - 3) / 2))

# row LABEL LEFT RIGHT: one table row, both cells wrapped to the column width.
row() {
    local l r i n
    mapfile -t l < <(printf '%s\n' "$2" | fold -s -w "$col")
    mapfile -t r < <(printf '%s\n' "$3" | fold -s -w "$col")
    n=$((${#l[@]} > ${#r[@]} ? ${#l[@]} : ${#r[@]}))
    for ((i = 0; i < n; i++)); do
        printf "%-${label}s%-${col}s | %s\n" "$([ $i = 0 ] && echo "$1")" "${l[i]:-}" "${r[i]:-}"
    done
}
rule() { printf '%*s\n' "$width" '' | tr ' ' "${1:--}"; }
stage2() { echo "$1" | sed -E 's/pages_4k=([0-9]+) pages_2m=([0-9]+) pages_1g=([0-9]+)/4 KiB: \1   2 MiB: \2   1 GiB: \3/'; }
range() { echo "$1" | sed -n 's/^critmem slice \(0x[0-9a-f]*-0x[0-9a-f]*\).*/\1/p'; }
mib_of() { [[ "$1" =~ ^[0-9]+$ ]] && echo "$(($1 >> 20)) MiB" || echo "?"; }
# key VALUE KEY: KEY's value in a `k=v k=v` line.
key() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# data=LE-BYTES -> 0xVALUE, as the guest wrote it.
le_value() { local d=${1#data=}; [ ${#d} = 8 ] && echo "0x${d:6:2}${d:4:2}${d:2:2}${d:0:2}" || echo "${1:-?}"; }

crit_read=$(fact crit.read)
crit_scan=$(fact crit.scan)
norm_scan=$(fact normal.scan)
phys=$(fact crit.phys)
pool_size=$(key "$(fact pool)" size)
if [ -n "$crit_read" ] && [ "$crit_read" = "$(fact crit.expect)" ] &&
    [ "$(key "$crit_scan" found)" = 1 ] && [ "$(key "$crit_scan" first)" = "$phys" ]; then
    crit_verdict="PASS: marker at slice start + GPA"
else
    crit_verdict="FAIL"
fi
if [ "$(key "$norm_scan" found)" = 0 ]; then
    norm_verdict="PASS: marker nowhere in the pool"
else
    norm_verdict="FAIL"
fi
slice=$(fact pool_during)

echo
rule =
printf "%-${label}s%-${col}s | %s\n" "" "CRITICAL VM  (vmm --critical-mem)" "NORMAL VM  (vmm)"
rule
row "memory source" "$(fact crit.memory)" "$(fact normal.memory)"
row "physical range" "$(range "$(fact crit.memory)")" "not in the pool: host pages, anywhere"
row "KVM stage-2 pages" "$(stage2 "$(fact crit.stage2)")" "$(stage2 "$(fact normal.stage2)")"
[ -n "$(fact crit.faults)$(fact normal.faults)" ] &&
    row "vmm page faults" "$(fact crit.faults)" "$(fact normal.faults)"
row "guest wrote" "$(fact crit.marker) at GPA $(fact gpa)" "$(fact normal.marker) at GPA $(fact gpa)"
row "host /dev/mem" "at $phys: $(le_value "$crit_read")" "(no slice to read)"
row "host pool scan" "$(mib_of "$(key "$crit_scan" scanned)") scanned, marker found $(key "$crit_scan" found) time(s), first at $(key "$crit_scan" first)" "$(mib_of "$(key "$norm_scan" scanned)") scanned, marker found $(key "$norm_scan" found) time(s)"
row "placement check" "$crit_verdict" "$norm_verdict"
row "vmm exit status" "$(fact crit.exit)" "$(fact normal.exit)"
rule
# console NAME: that guest's console lines, without terminal escapes
# (the shell's cursor query) and blank lines.
console() {
    sed -n "s/^DEMO-CONSOLE $1|//p" "$log" | tr -d '\r' |
        sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -v '^[[:space:]]*$' || true
}
mapfile -t cl < <(console crit)
mapfile -t nl < <(console normal)
n=$((${#cl[@]} > ${#nl[@]} ? ${#cl[@]} : ${#nl[@]}))
for ((i = 0; i < n; i++)); do
    row "$([ $i = 0 ] && echo "guest console")" "${cl[i]:-}" "${nl[i]:-}"
done
row "" "(+ $(fact crit.kernel_lines) lines of the quiet guest kernel)" "(+ $(fact normal.kernel_lines) lines of the quiet guest kernel)"
rule
echo "critmem pool $(fact pool | cut -d' ' -f1), $(mib_of "$pool_size"), source $(key "$(fact pool)" source), booted with: $params"
echo "  /proc/iomem:       $(fact iomem)"
echo "  before the VMs:    free $(mib_of "$(fact pool_free_before)")"
echo "  both VMs running:  free $(mib_of "$(fact pool_free_during)"); critical VM's slice: ${slice:-none}"
a=$(fact pool_after)
echo "  both VMs exited:   free $(mib_of "$(key "$a" free)") of $(mib_of "$pool_size"), zeroed $(mib_of "$(key "$a" free_zeroed)"), $(key "$a" slices) slices$([ "$(key "$a" free)" = "$pool_size" ] && echo "  -> all free")"
rule =

fails=$(grep -a '^FAIL: ' "$log" | tr -d '\r' || true)
if [ "$rc" = 0 ]; then
    echo "demo: every check held ($(grep -ac '^ok: ' "$log") checks; full console: ${log#"$CRITMEM_ROOT"/}; $((SECONDS - start)) s)"
else
    echo "demo: FAILED (status $rc): ${fails:-see the console below}"
    echo "----- last lines of the emulated host's console ($log) -----"
    tr -d '\r' <"$log" | tail -n 60
    exit 1
fi
