# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 3G
# ehost-timeout: 180
#
# The demo's in-host half (`make demo` runs it with the kernel parameters of
# `critmem-boot plan`; `make test` runs it with the defaults above): load
# critmem, start a critical VM (--critical-mem) and a normal VM at the same
# time, and compare them: memory source, KVM stage-2 page sizes, and the
# third-party placement check through /dev/mem. Each guest writes a random
# marker at the same guest-physical address and then waits in a shell on its
# console (guest.shell=1) while the host looks: the critical VM's marker is at
# slice start + GPA, the normal VM's is nowhere in the pool. Then the host
# types `exit` into each console, the guests reboot, the VMs exit, and the
# pool is all free again.
#
# Besides ok:/FAIL: lines it prints `DEMO key=value` facts and
# `DEMO-CONSOLE crit|normal LINE` guest console lines, which scripts/demo.sh
# lays out side by side. Environment (scripts/ehost run --env):
#   GUEST_MEM   memory of each VM (default 256M)
#   GUEST_CPUS  vCPUs of each VM (default 1)
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

GUEST_MEM=${GUEST_MEM:-256M}
GUEST_CPUS=${GUEST_CPUS:-1}

demo() { echo "DEMO $1=$2"; }

# guest_bytes SIZE: bytes of a K/M/G size.
guest_bytes() {
    case "$1" in
        *[kK]) echo $((${1%?} << 10)) ;;
        *[mM]) echo $((${1%?} << 20)) ;;
        *[gG]) echo $((${1%?} << 30)) ;;
        *) echo $(($1)) ;;
    esac
}

demo host_cmdline "$(cat /proc/cmdline)"
critmem_load
size=$(critmem_key size)
demo pool "$(critmem_key start)-$(critmem_key end_inclusive) size=$size source=$(critmem_key source)"
demo pool_free_before "$(critmem_key free)"
demo iomem "$(grep critmem /proc/iomem | sed 's/^ *//')"

# The same guest-physical address in both guests: half of guest memory, at
# most 192 MiB, 2 MiB aligned; each guest kernel keeps that page to itself
# (memmap=4K$GPA) and busybox devmem writes the marker there.
mem_b=$(guest_bytes "$GUEST_MEM")
gpa=$(((mem_b / 2) & ~((2 << 20) - 1)))
[ $gpa -gt $((0x0c000000)) ] && gpa=$((0x0c000000))
gpa=$(hex $gpa)
crit_marker=$(random_u32)
norm_marker=$(random_u32)
demo gpa "$gpa"
demo crit.marker "$crit_marker"
demo normal.marker "$norm_marker"

# Each vmm's stdin (the guest's console input) is a fifo the host writes.
start_vm() { # NAME MARKER [vmm options...]
    n=$1 m=$2
    shift 2
    mkfifo "/tmp/$n.in"
    vmm --name "$n" --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" \
        --memory "$GUEST_MEM" --cpus "$GUEST_CPUS" "$@" \
        --cmdline "console=ttyS0 reboot=k panic=-1 quiet memmap=4K\$$gpa guest.devmem=$gpa:$m guest.shell=1" \
        <"/tmp/$n.in" >"/tmp/$n.out" 2>&1 &
}
start_vm crit "$crit_marker" --critical-mem
crit_pid=$!
exec 3>/tmp/crit.in
start_vm normal "$norm_marker"
norm_pid=$!
exec 4>/tmp/normal.in
note "critical VM: vmm pid $crit_pid; normal VM: vmm pid $norm_pid"

for n in crit normal; do
    wait_for "/tmp/$n.out" "CRITMEM-GUEST-DEVMEM|^vmm: error" 60 ||
        { cat "/tmp/$n.out"; fail "$n VM: the guest did not write its marker"; }
done
# Both guests are up, waiting in their shells: look at them from outside.
during=$(cat /proc/critmem)
free_during=$(critmem_key free)
slice_start=$(slice_of $crit_pid start)
[ -n "$slice_start" ] || { cat /tmp/crit.out; fail "no slice of the critical vmm (pid $crit_pid): $during"; }
phys=$(hex $((slice_start + gpa)))
crit_read=$(cmtool physread "$phys" 4)
crit_scan=$(cmtool physscan "$(critmem_key start)" "$size" "$crit_marker")
norm_scan=$(cmtool physscan "$(critmem_key start)" "$size" "$norm_marker")
# Still alive while we looked? (Otherwise "not found" would prove nothing.)
alive=yes
for p in $crit_pid $norm_pid; do kill -0 "$p" 2>/dev/null || alive=no; done

# Done looking: type `exit` into each guest's shell until its vmm exits (a
# line sent before the shell opened the console would be lost).
i=0
while [ $i -lt 60 ] && { kill -0 $crit_pid || kill -0 $norm_pid; } 2>/dev/null; do
    kill -0 $crit_pid 2>/dev/null && echo exit >&3
    kill -0 $norm_pid 2>/dev/null && echo exit >&4
    sleep 1
    i=$((i + 1))
done
demo pool_during "$(echo "$during" | grep '^slice=' | sed 's/^slice=//')"
demo pool_free_during "$free_during"

wait $crit_pid
crit_rc=$?
wait $norm_pid
norm_rc=$?
exec 3>&- 4>&-

for n in crit normal; do
    out=$(cat "/tmp/$n.out")
    demo "$n.memory" "$(echo "$out" | sed -n 's/^vmm: guest memory: //p' | head -n 1)"
    demo "$n.stage2" "$(echo "$out" | sed -n 's/^kvm-stage2: //p' | head -n 1)"
    demo "$n.faults" "$(echo "$out" | sed -n 's/^vmm-faults: //p' | head -n 1)"
    # The guest init's lines; the guest kernel's own (quiet) lines are only
    # counted here, they are in the full console.
    echo "$out" | grep -v -e '^vmm: ' -e '^kvm-stage2: ' -e '^vmm-faults: ' -e '^\[' | tr -d '\r' |
        sed "s/^/DEMO-CONSOLE $n|/"
    demo "$n.kernel_lines" "$(echo "$out" | grep -c '^\[')"
done
demo crit.exit "$crit_rc"
demo normal.exit "$norm_rc"
demo crit.phys "$phys"
demo crit.read "$crit_read"
demo crit.expect "data=$(le_hex "$crit_marker")"
demo crit.scan "$crit_scan"
demo normal.scan "$norm_scan"
demo alive_during_check "$alive"

# The pool is all free again once both VMs have exited, and background
# zeroing makes all of it ready to hand out at once.
i=0
while [ "$(critmem_key free_zeroed)" != "$size" ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
demo pool_after "free=$(critmem_key free) free_zeroed=$(critmem_key free_zeroed) slices=$(critmem_key slices) of size=$size"

cat /tmp/crit.out /tmp/normal.out
echo "$during"
assert_eq "$crit_rc" 0 "critical vmm exit status"
assert_eq "$norm_rc" 0 "normal vmm exit status"
assert_eq "$alive" yes "both VMs were running during the checks"
assert_match "$(cat /tmp/crit.out)" "^vmm: guest memory: critmem slice $slice_start-0x[0-9a-f]+ " "critical VM on its critmem slice"
assert_match "$(cat /tmp/normal.out)" "^vmm: guest memory: anonymous" "normal VM on anonymous memory"
assert_match "$(cat /tmp/crit.out)" "CRITMEM-GUEST-DEVMEM addr=$gpa value=$crit_marker" "critical guest read its marker back"
assert_match "$(cat /tmp/normal.out)" "CRITMEM-GUEST-DEVMEM addr=$gpa value=$norm_marker" "normal guest read its marker back"
assert_eq "$crit_read" "data=$(le_hex "$crit_marker")" "critical marker at slice start + GPA in /dev/mem"
assert_eq "$crit_scan" "found=1 first=$phys scanned=$size" "critical marker found once in the pool, there"
assert_eq "$norm_scan" "found=0 first=none scanned=$size" "normal marker not in the pool"
assert_eq "$free_during" "$((size - mem_b))" "only the critical VM took memory from the pool"
assert_eq "$(critmem_key free)" "$size" "pool all free after both VMs exited"
assert_eq "$(critmem_key slices)" 0 "no live slice after both VMs exited"
