# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 200
#
# A supervisor's stop: SIGTERM, a wait, SIGKILL (what systemd does). On
# SIGTERM vmm presses the ACPI power button if the guest armed it, or types
# Ctrl-Alt-Del if not, and gives the guest --shutdown-timeout seconds:
# 1. a guest whose acpid powers off on the button ends the VM cleanly:
#    status 0, `vmm: guest powered off`, stats line, slice returned;
# 2. a guest booted acpi=off never arms the button: vmm says so and types
#    Ctrl-Alt-Del, on which the guest reboots (the kernel's default):
#    status 0. It has 2 vCPUs, which it finds in the MP table;
# 3. a guest that ignores the button (no acpid) is stopped when the grace
#    period ends: status 7, and the state of the vCPU where it was stopped
#    is dumped, as for a fault, so that a hung guest shows where;
# 4. a second SIGTERM during the grace period stops it at once: status 7.
# No case needs the SIGKILL that follows.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load

# start_guest NAME EXTRA-CMDLINE GRACE [CPUS]: a critical VM whose guest
# stays up. The guest's console goes to /tmp/NAME.out and vmm's own lines
# to /tmp/NAME.err: vmm writes its SIGTERM line while the guest's console
# is busy answering the press, and in one file the two can interleave
# mid-line.
start_guest() {
    vmm --critical-mem --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M \
        --cpus "${4:-1}" \
        --shutdown-timeout "$3" \
        --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux guest.sleep=600 $2" \
        >/tmp/$1.out 2>/tmp/$1.err </dev/null &
    pid=$!
    wait_for /tmp/$1.out 'CRITMEM-GUEST-UP' 60 || { cat /tmp/$1.out; fail "$1: guest did not come up"; }
    # Let the guest finish probing its keyboard (the acpi=off case).
    sleep 2
}

# supervise NAME: SIGTERM now; SIGKILL 30 s later unless vmm is gone.
supervise() {
    kill -TERM $pid
    ( sleep 30; kill -KILL $pid 2>/dev/null ) &
    killer=$!
    wait $pid
    rc=$?
    kill $killer 2>/dev/null
    tail -n 4 /tmp/$1.out
    cat /tmp/$1.err
}

start_guest button "" 20
supervise button
assert_eq "$rc" 0 "guest that powers off on the power button: vmm exit status"
assert_match "$(cat /tmp/button.err)" '^vmm: SIGTERM: asking the guest to shut down \(ACPI power button\); 20 s until it is stopped$' "the request is logged"
assert_match "$(cat /tmp/button.out)" '^CRITMEM-GUEST-POWEROFF' "the guest powered itself off"
assert_match "$(cat /tmp/button.err)" '^vmm: guest powered off$' "vmm says how the guest ended"
assert_match "$(cat /tmp/button.err)" '^kvm-stage2: ' "stats line"
assert_eq "$(critmem_key slices)" 0 "slice returned"

start_guest noacpi "acpi=off" 20 2
supervise noacpi
assert_match "$(cat /tmp/noacpi.out)" 'CRITMEM-GUEST-UP cpus=2 ' "without ACPI the guest finds both vCPUs in the MP table"
assert_eq "$rc" 0 "guest without ACPI that reboots on Ctrl-Alt-Del: vmm exit status"
assert_match "$(cat /tmp/noacpi.err)" '^vmm: SIGTERM: asking the guest to shut down \(Ctrl-Alt-Del, as the guest never armed the ACPI power button\); 20 s until it is stopped$' "the fallback is logged"
assert_match "$(cat /tmp/noacpi.err)" '^vmm: guest reset$' "the guest rebooted"
assert_match "$(cat /tmp/noacpi.err)" '^kvm-stage2: ' "stats line"
assert_eq "$(critmem_key slices)" 0 "slice returned"

start_guest deaf "guest.acpid=0" 3
supervise deaf
assert_eq "$rc" 7 "guest that ignores the power button: vmm exit status after the grace period"
assert_match "$(cat /tmp/deaf.err)" '^vmm: error: stopped by SIGTERM: the guest did not shut down within the grace period$' "the reason is named"
assert_match "$(cat /tmp/deaf.err)" '^vmm: vcpu0 rip=0x[0-9a-f]+ ' "the stopped vCPU's registers are dumped"
assert_match "$(cat /tmp/deaf.err)" '^vmm: vcpu0 lapic id=0x0 ' "and its LAPIC"
assert_match "$(cat /tmp/deaf.err)" '^vmm: vcpu0 tsc=0x[0-9a-f]+ tsc_deadline=0x[0-9a-f]+ \((disarmed|due in [0-9]+ cycles|passed [0-9]+ cycles ago)\)$' "and its TSC and TSC-deadline timer"
assert_match "$(cat /tmp/deaf.err)" '^kvm-stage2: ' "stats line"
assert_eq "$(critmem_key slices)" 0 "slice returned"

start_guest twice "guest.acpid=0" 60
kill -TERM $pid
sleep 1
supervise twice
assert_eq "$rc" 7 "second SIGTERM: vmm exit status"
assert_match "$(cat /tmp/twice.err)" '^vmm: error: stopped by a second SIGTERM before the guest shut down$' "the reason is named"
assert_eq "$(critmem_key slices)" 0 "slice returned"
