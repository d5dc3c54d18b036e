# ehost-memory: 5G
# ehost-timeout: 1800
# ehost-cmdline: memmap=1G$0x100000000
#
# The inside half of `scripts/bench` (not a test scenario): runs in one
# emulated host, for one guest size, every mode, BENCH_RUNS times, first
# unloaded and then under host memory pressure (swap on zram plus
# `cmtool hog` leaving room for half the guest), and prints one `BENCH ...` line per VM run. scripts/bench
# sets the headers (host memory, pool, hugetlb pools) per size and reads the
# lines back. Environment (from `scripts/ehost run --env`):
#   BENCH_SIZE      guest memory, e.g. 1G
#   BENCH_SIZE_MIB  the same in MiB, e.g. 1024
#   BENCH_MODES     modes, e.g. "critical normal prefault huge2m huge1g"
#   BENCH_RUNS      runs per mode and phase
#   BENCH_POOL      critmem pool size in bytes (at 4 GiB, memmap mode)
#   BENCH_PRESSURE  1: also run the pressure phase
. /lib/critmem/testlib.sh

size=${BENCH_SIZE:-256M}
guest_mb=${BENCH_SIZE_MIB:-256}
modes=${BENCH_MODES:-critical normal prefault huge2m huge1g}
runs=${BENCH_RUNS:-1}
pool=${BENCH_POOL:-$((1 << 30))}
pressure=${BENCH_PRESSURE:-1}

critmem_load base=0x100000000 size="$pool"
# The module zeroes the pool in the background after loading; a slice taken
# before that finishes is zeroed at ALLOC. Measure steady state: wait.
i=0
while [ "$(critmem_key free_zeroed)" != "$(critmem_key free)" ] && [ $i -lt 600 ]; do
    sleep 0.5
    i=$((i + 1))
done
note "pool zeroed after ~$((i / 2)) s"
note "pool: $(grep -E '^(start|size|free)=' /proc/critmem | tr '\n' ' ')"
for d in /sys/kernel/mm/hugepages/hugepages-*; do
    note "hugetlb $(basename "$d"): nr=$(cat "$d/nr_hugepages") free=$(cat "$d/free_hugepages")"
done
dmesg | grep -iE 'hugetlb' | sed 's/^/note: dmesg: /'
note "host: $(grep -E '^(MemTotal|MemAvailable)' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"

now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

mode_args() {
    case $1 in
        critical) echo "--critical-mem" ;;
        normal) echo "" ;;
        prefault) echo "--prefault" ;;
        huge2m) echo "--hugepages 2M" ;;
        huge1g) echo "--hugepages 1G" ;;
        *) fail "unknown mode $1" ;;
    esac
}

# one_run PHASE RUN MODE: boots one VM whose guest writes most of its free
# memory once; prints its BENCH line (fields empty when a figure is missing).
one_run() {
    out=/tmp/vmm-$3.out
    t0=$(now_ms)
    # shellcheck disable=SC2046
    timeout 600 vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory "$size" \
        --cpus 1 --name "$3" $(mode_args "$3") \
        --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux quiet guest.memwrite=auto" 2>&1 |
        awk -v t0="$t0" '{ print }
            /CRITMEM-GUEST-UP/ && !done { getline u < "/proc/uptime"; split(u, f, " ");
                printf "BOOTMS %d\n", f[1] * 1000 - t0; done = 1 }' >"$out"
    boot=$(sed -n 's/^BOOTMS //p' "$out" | head -n 1)
    mbps=$(sed -n 's/.*memwrite: mb=[0-9]* ms=[0-9]* mbps=\([0-9.]*\).*/\1/p' "$out" | head -n 1)
    wmb=$(sed -n 's/.*memwrite: mb=\([0-9]*\).*/\1/p' "$out" | head -n 1)
    s2=$(grep '^kvm-stage2:' "$out" | head -n 1)
    fl=$(grep '^vmm-faults:' "$out" | head -n 1)
    if [ -z "$mbps" ] || [ -z "$s2" ] || [ -z "$fl" ]; then
        note "$1 run $2 mode $3: incomplete output:"
        tail -n 20 "$out"
    fi
    echo "BENCH size=$size mode=$3 phase=$1 run=$2 boot_ms=$boot write_mb=$wmb write_mbps=$mbps" \
        "p4k=$(echo "$s2" | sed -n 's/.*pages_4k=\([0-9]*\).*/\1/p')" \
        "p2m=$(echo "$s2" | sed -n 's/.*pages_2m=\([0-9]*\).*/\1/p')" \
        "p1g=$(echo "$s2" | sed -n 's/.*pages_1g=\([0-9]*\).*/\1/p')" \
        "minflt=$(echo "$fl" | sed -n 's/.*minor=\([0-9]*\).*/\1/p')" \
        "majflt=$(echo "$fl" | sed -n 's/.*major=\([0-9]*\).*/\1/p')"
}

phase() {
    r=1
    while [ $r -le "$runs" ]; do
        for m in $modes; do
            one_run "$1" "$r" "$m"
        done
        r=$((r + 1))
    done
}

phase unloaded

if [ "$pressure" = 1 ]; then
    # Swap on zram: as big as RAM (it only holds what is swapped, compressed).
    total_kb=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo)
    echo lz4 >/sys/block/zram0/comp_algorithm 2>/dev/null || true
    echo "$((total_kb * 1024))" >/sys/block/zram0/disksize || fail "zram disksize"
    mkswap /dev/zram0 >/dev/null || fail "mkswap /dev/zram0"
    swapon /dev/zram0 || fail "swapon /dev/zram0"
    # The hog: mlocked, idle memory that leaves room for only half of a
    # guest's RAM, so reclaim must swap out part of any guest memory it can
    # (anonymous pages; critmem slices and hugetlb pages are not on the LRU).
    # Idle, so the pressure costs reclaim's CPU, not the hog's.
    avail_mb=$(($(sed -n 's/^MemAvailable:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo) >> 10))
    hog_mb=$((avail_mb - guest_mb / 2))
    [ "$hog_mb" -gt 0 ] || fail "host too small for the pressure phase: $avail_mb MiB available, guest $guest_mb MiB"
    cmtool hog --mb "$hog_mb" >/tmp/hog.out 2>&1 &
    hog_pid=$!
    wait_for /tmp/hog.out '^hog: filled' 900 || fail "hog did not fill $hog_mb MiB: $(cat /tmp/hog.out)"
    note "hog: $(cat /tmp/hog.out) (available was $avail_mb MiB)"
    note "swap: $(grep -E '^(SwapTotal|SwapFree|MemAvailable)' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
    phase pressure
    note "swap after: $(grep -E '^(SwapTotal|SwapFree)' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
    kill "$hog_pid"
    wait "$hog_pid" 2>/dev/null
fi
assert_eq "$(critmem_key slices)" 0 "no slice left"
echo "BENCH-DONE size=$size"
