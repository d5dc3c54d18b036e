# ehost-tsc-skew-ppm: -5000
# ehost-memory: 2G
# ehost-timeout: 120
#
# A host whose TSC rate changed after KVM loaded: the emulated host boots
# with an early TSC rate 0.5 % low, and its refined calibration corrects it
# a second later. KVM keeps the early rate as every new vCPU's default, and
# with no TSC scaling it cannot give a vCPU that rate ("user requested TSC
# rate below hardware speed"). Before vmm set each vCPU's TSC rate itself,
# such a guest hung in boot (its TSC-deadline timer never fired); this is
# what made nested 2-vCPU boots hang now and then on busy CI machines,
# where the early calibration is noisy.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

early=$(sed -n 's/.*tsc_early_khz=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$early" ] || fail "no tsc_early_khz= on the emulated host's command line"
# The refinement is delayed work; give it up to 10 s.
i=0
while [ $i -lt 20 ]; do
    refined=$(dmesg | sed -n 's/.*Refined TSC clocksource calibration: \([0-9]*\)\.\([0-9]*\) MHz.*/\1\2/p' | head -n 1)
    [ -n "$refined" ] && break
    sleep 0.5
    i=$((i + 1))
done
[ -n "$refined" ] || fail "the emulated host never refined its TSC calibration; the case is not set up"
note "TSC rate at KVM load $early kHz, refined $refined kHz"
diff=$((refined > early ? refined - early : early - refined))
# KVM tolerates 250 ppm before it needs to scale the TSC.
[ $((diff * 1000000 / refined)) -gt 250 ] || fail "early and refined TSC rates are within KVM's 250 ppm; the case is not set up"
ok "TSC rates differ by $((diff * 1000000 / refined)) ppm"

out=$(timeout 90 vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M --cpus 2 2>&1)
rc=$?
echo "$out" | tail -n 5
dmesg | grep -i 'tsc rate' | tail -n 2
assert_eq "$rc" 0 "vmm exit status (a hung guest is killed: 143)"
assert_match "$out" "CRITMEM-GUEST-UP cpus=2 " "guest up with 2 CPUs"
