# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
#
# Time from vmm start to the guest's CRITMEM-GUEST-UP marker, 5 runs per
# memory mode (256 MiB, 1 vCPU, quiet guest console), and the median of
# each. Passes when every run boots; prints `BOOT-TIME mode=... median_ms=...`.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load

now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

# one_run MODE-ARGS...: prints the milliseconds from start to the marker.
one_run() {
    t0=$(now_ms)
    vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M --cpus 1 "$@" \
        --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux quiet" 2>&1 |
        awk -v t0="$t0" '/CRITMEM-GUEST-UP/ { getline u < "/proc/uptime"; split(u, f, " "); printf "%d\n", f[1] * 1000 - t0 }'
}

for mode in normal critical; do
    args=""
    [ $mode = critical ] && args="--critical-mem"
    times=""
    for i in 1 2 3 4 5; do
        # shellcheck disable=SC2086
        ms=$(one_run $args)
        [ -n "$ms" ] || fail "$mode run $i: no marker"
        times="$times $ms"
    done
    median=$(echo $times | tr ' ' '\n' | sort -n | sed -n 3p)
    echo "BOOT-TIME mode=$mode runs_ms=$(echo $times | tr ' ' ',') median_ms=$median"
done
assert_eq "$(critmem_key slices)" 0 "no slice left"
