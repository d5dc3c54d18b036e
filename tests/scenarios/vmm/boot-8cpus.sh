# ehost-skip: 8 vCPUs on the 2-CPU TCG emulated host fail under any VMM: the guest's own IPIs between vCPUs are cross-CPU wake-ups inside the emulated host, which QEMU's TCG emulation of nested SVM does not survive at that rate; on 2026-12-01 vmm lost 1 of 6 boots (a triple fault in SMP bring-up) and QEMU -accel kvm 3 of 20 (README, limitations). Run it with scripts/ehost run.
# ehost-memory: 2G
# ehost-timeout: 150
#
# The MP table and per-vCPU CPUID scale: a normal VM with 8 vCPUs (one
# thread each) boots with all 8 online. (32 vCPUs booted once in 27 s, but
# on a 2-CPU TCG emulated host 32 spinning vCPU threads can wedge the host
# itself, so the suite stays at 8.)
. /lib/critmem/testlib.sh

vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 512M --cpus 8 \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux" >/tmp/vmm.out 2>&1 &
pid=$!
( sleep 120; kill $pid ) &
wait $pid
rc=$?
out=$(cat /tmp/vmm.out)
echo "$out" | tail -n 40
assert_eq "$rc" 0 "vmm exit status"
assert_match "$out" "CRITMEM-GUEST-UP cpus=8 " "guest marker with 8 CPUs"
