# Runs inside the emulated host for scripts/reliability: boots the test
# guest again and again under each VMM, vCPU count and memory mode, and
# prints one line per boot and the counts. It prints counts, never times.
#
# Environment (set by scripts/reliability):
#   REL_BOOTS   boots per configuration
#   REL_CPUS    vCPU counts, e.g. "1 2 8"
#   REL_VMMS    "vmm qemu" (qemu: this machine's QEMU, -accel kvm, as the
#               control)
#   REL_MODES   "normal critical"
#   REL_TIMEOUT seconds one boot may take before it counts as a hang
#   REL_PIN     1: the VMMs run pinned to CPU 0, as in the test scenarios
#
# Per boot: `REL-BOOT vmm=V cpus=N mode=M boot=I outcome=O status=S`, where
# O is ok (marker with N CPUs, init done, clean exit), cpus (came up with
# fewer CPUs), reset (exited 0 before the guest's marker: a silent reset),
# fault (vmm status 3-6), hang (killed after REL_TIMEOUT) or error. A boot
# that is not ok also prints its console's last lines and the host's
# kernel log. At the end: `REL-COUNTS vmm=V cpus=N mode=M boots=B ok=.. ...`.
. /lib/critmem/testlib.sh

critmem_load
[ "${REL_PIN:-1}" = 1 ] && nested_vms_on_one_cpu
cmdline="console=ttyS0 earlycon=uart8250,io,0x3f8 reboot=k panic=-1 i8042.noaux"

# boot VMM CPUS MODE LOG: one boot; prints its exit status.
boot() {
    case "$1/$3" in
        vmm/normal) set -- vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" \
            --memory 256M --cpus "$2" --cmdline "$cmdline" ;;
        vmm/critical) set -- vmm --critical-mem --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" \
            --memory 256M --cpus "$2" --cmdline "$cmdline" ;;
        qemu/normal) set -- qemu-system-x86_64 -accel kvm -cpu host -smp "$2" -m 256M \
            -nodefaults -no-user-config -display none -serial stdio -no-reboot \
            -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRAMFS" -append "$cmdline" ;;
        qemu/critical) set -- qemu-system-x86_64 -accel kvm -cpu host -smp "$2" -m 256M \
            -nodefaults -no-user-config -display none -serial stdio -no-reboot \
            -object memory-backend-file,id=mem,size=256M,mem-path=/dev/critmem,share=on \
            -machine memory-backend=mem \
            -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRAMFS" -append "$cmdline" ;;
    esac
    # busybox timeout: the VMM's own status, or 137 when it was killed.
    timeout -s KILL "$REL_TIMEOUT" "$@" >"$REL_LOG" 2>&1 </dev/null
    echo $?
}

# classify CPUS STATUS: the outcome of the boot logged in $REL_LOG.
classify() {
    if [ "$2" = 137 ]; then
        echo hang
    elif grep -q "CRITMEM-GUEST-UP cpus=$1 " "$REL_LOG" && grep -q CRITMEM-GUEST-DONE "$REL_LOG" && [ "$2" = 0 ]; then
        echo ok
    elif grep -q "CRITMEM-GUEST-UP" "$REL_LOG" && [ "$2" = 0 ]; then
        echo cpus
    elif [ "$2" = 0 ]; then
        echo reset
    elif [ "$2" -ge 3 ] && [ "$2" -le 6 ]; then
        echo fault
    else
        echo error
    fi
}

REL_LOG=/tmp/rel-boot.log
for vmm_name in $REL_VMMS; do
    for cpus in $REL_CPUS; do
        for mode in $REL_MODES; do
            ok=0 bad_cpus=0 reset=0 fault=0 hang=0 error=0
            i=1
            while [ $i -le "$REL_BOOTS" ]; do
                dmesg -c >/dev/null
                rc=$(boot "$vmm_name" "$cpus" "$mode")
                outcome=$(classify "$cpus" "$rc")
                echo "REL-BOOT vmm=$vmm_name cpus=$cpus mode=$mode boot=$i outcome=$outcome status=$rc"
                case $outcome in
                    ok) ok=$((ok + 1)) ;;
                    cpus) bad_cpus=$((bad_cpus + 1)) ;;
                    reset) reset=$((reset + 1)) ;;
                    fault) fault=$((fault + 1)) ;;
                    hang) hang=$((hang + 1)) ;;
                    *) error=$((error + 1)) ;;
                esac
                if [ "$outcome" != ok ]; then
                    echo "----- console of the failed boot (last 40 lines) -----"
                    tail -n 40 "$REL_LOG"
                    echo "----- host kernel log during it -----"
                    dmesg | tail -n 20
                    echo "----- end -----"
                fi
                i=$((i + 1))
            done
            echo "REL-COUNTS vmm=$vmm_name cpus=$cpus mode=$mode boots=$REL_BOOTS ok=$ok cpus=$bad_cpus reset=$reset fault=$fault hang=$hang error=$error"
        done
    done
done
