# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# A guest that triple-faults is a failure, never a clean reboot: vmm exits
# with status 3 and one `vmm: error:` line naming the vCPU and the exit
# reason, then dumps the vCPU's state. The "kernel" is cmtool's tiny ELF
# that loads an empty IDT and executes ud2 (tests/ehost-tools/src/fault_kernel.rs),
# run on anonymous memory and on a critmem slice.
#
# The emulated host is AMD (SVM). There KVM reinitialises the vCPU on a
# shutdown intercept before it reports KVM_EXIT_SHUTDOWN, so the dumped
# registers are the reset state (rip=0xfff0, cs=0xf000); the vector of the
# last exception (6, #UD from the ud2) survives in the events line. On Intel
# hosts the registers show the state at the fault.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

cmtool fault-kernel --out /tmp/fault.elf || fail "cmtool fault-kernel"
critmem_load

for mode in normal critical; do
    flag=
    [ $mode = critical ] && flag=--critical-mem
    vmm --kernel /tmp/fault.elf --memory 64M $flag >/tmp/vmm.out 2>/tmp/vmm.err </dev/null
    rc=$?
    cat /tmp/vmm.err
    assert_eq "$rc" 3 "$mode: vmm exit status of a triple fault"
    errors=$(grep -c '^vmm: error:' /tmp/vmm.err)
    assert_eq "$errors" 1 "$mode: one error line"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: error: vCPU 0: triple fault \(KVM_EXIT_SHUTDOWN\)$' "$mode: the error names the vCPU and the exit"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: vcpu0 rip=0x[0-9a-f]+ rsp=' "$mode: the dump shows the registers"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: vcpu0 cr0=.* idt=0x[0-9a-f]+/0x[0-9a-f]+$' "$mode: the dump shows control registers and descriptor tables"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: vcpu0 cs=0x[0-9a-f]+/' "$mode: the dump shows the segments"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: vcpu0 exception injected=[01] pending=[01] nr=6 ' "$mode: the dump shows the last exception: #UD"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: vcpu0 mp_state=' "$mode: the dump shows the MP state"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: vcpu0 lapic id=0x0 ' "$mode: the dump shows the LAPIC"
    assert_match "$(cat /tmp/vmm.err)" '^vmm: vcpu0 tsc=0x[0-9a-f]+ tsc_deadline=0x0 \(disarmed\)$' "$mode: the dump shows the TSC, and the deadline timer this tiny kernel never armed"
    assert_match "$(cat /tmp/vmm.err)" '^kvm-stage2: ' "$mode: the stats line is still printed"
done
assert_eq "$(critmem_key slices)" 0 "the critical VM's slice went back"
