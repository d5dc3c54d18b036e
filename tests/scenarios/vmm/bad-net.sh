# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
#
# Bad --net input. Each case: vmm exits non-zero before the guest runs,
# with one error line that names the problem and its fix; no slice is
# taken from the pool, no vmm is left running, and the host's interfaces
# are what they were (vmm creates no tap and deletes none). The cases: a
# tap that does not exist, an interface that is no tap, a tun, a
# malformed --net, a bad MAC, one tap or one MAC given twice, more
# devices than PCI bus 0 has slots, a tap user nobody may not attach to,
# and a tap another vmm holds.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
make_tap cmtap0
cmtool mktap cmtun0 --owner 0 --tun >/dev/null || fail "cannot make a tun"
interfaces0=$(ls /sys/class/net | tr '\n' ' ')
note "interfaces: $interfaces0"

# bad_net WHAT EXPECTED-ERROR-REGEX VMM-ARGS...: one case.
bad_net() {
    refused_at_start "$@"
    assert_eq "$(ls /sys/class/net | tr '\n' ' ')" "$interfaces0" "$1: the host's interfaces unchanged"
}

bad_net "a tap that does not exist" \
    '^vmm: error: --net tap=nosuch0: no such interface; create it first \(`ip tuntap add nosuch0 mode tap user \$\(id -un\)` and `ip link set nosuch0 up`, as root\)$' \
    --net tap=nosuch0
bad_net "an interface that is no tap" \
    '^vmm: error: --net tap=lo: is a network interface but not a tap; give a tap made by `ip tuntap add NAME mode tap`$' \
    --net tap=lo
bad_net "a tun" \
    '^vmm: error: --net tap=cmtun0: is a tun \(layer 3\) device, and a NIC needs Ethernet frames; recreate it with `ip tuntap add cmtun0 mode tap`$' \
    --net tap=cmtun0
bad_net "a malformed --net" \
    "invalid value 'cmtap0' for '--net <tap=NAME,...>': --net \"cmtap0\": 'cmtap0' is not KEY=VALUE; write it as tap=NAME\[,mac=MAC\]" \
    --net cmtap0
bad_net "an unknown key" \
    "--net \"tap=cmtap0,ip=10.0.2.2\": unknown key 'ip'; the keys are tap and mac" \
    --net tap=cmtap0,ip=10.0.2.2
bad_net "a malformed MAC" \
    '--net "tap=cmtap0,mac=52:54:00:12:34": mac="52:54:00:12:34": write six hex bytes, as 52:54:00:12:34:56' \
    --net tap=cmtap0,mac=52:54:00:12:34
bad_net "a multicast MAC" \
    'mac="01:00:5e:00:00:01": a multicast address \(the first byte is odd\) cannot be a NIC.s own; clear its lowest bit' \
    --net tap=cmtap0,mac=01:00:5e:00:00:01
bad_net "a name too long for an interface" \
    'tap="a-name-of-16-chr": an interface name of 1 to 15 characters' \
    --net tap=a-name-of-16-chr
bad_net "one tap twice" \
    '^vmm: error: --net tap=cmtap0 is given twice; a tap carries one interface: create another \(`ip tuntap add NAME mode tap`\) for the second$' \
    --net tap=cmtap0 --net tap=cmtap0
bad_net "one MAC twice" \
    '^vmm: error: --net mac=52:54:00:00:00:01 is given twice; two NICs with one address break the network' \
    --net tap=cmtap0,mac=52:54:00:00:00:01 --net tap=cmtun0,mac=52:54:00:00:00:01
set --
i=0
while [ $i -lt 31 ]; do
    truncate -s 1M /tmp/many$i.img
    set -- "$@" --disk path=/tmp/many$i.img
    i=$((i + 1))
done
bad_net "31 disks and a network" \
    '^vmm: error: 32 devices asked for: PCI bus 0 has room for 31 \(32 slots, the host bridge takes one\); give fewer --disk and --net options$' \
    "$@" --net tap=cmtap0

# As user nobody, to root's tap: refused at the tap, before /dev/kvm.
out=$(su -s /bin/sh nobody -c "vmm --kernel $GUEST_KERNEL --net tap=cmtap0" 2>&1 </dev/null)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "nobody: vmm exited 0"
assert_match "$out" '^vmm: error: --net tap=cmtap0: permission denied: the tap belongs to another user; recreate it for this one \(`ip tuntap add cmtap0 mode tap user \$\(id -un\)`\), or run vmm as its owner$' "a tap nobody may not attach to"
assert_eq "$(ls /sys/class/net | tr '\n' ' ')" "$interfaces0" "nobody: the host's interfaces unchanged"

# A tap another vmm holds while its guest runs.
vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M --net tap=cmtap0 \
    --cmdline "console=ttyS0 panic=-1 i8042.noaux guest.sleep=600" >/tmp/holder.out 2>&1 </dev/null &
holder=$!
wait_for /tmp/holder.out "CRITMEM-GUEST-UP" 240 || { cat /tmp/holder.out; fail "the first vmm's guest did not come up"; }
bad_net "a tap another vmm holds" \
    '^vmm: error: --net tap=cmtap0: another process is attached to the tap; stop it first, or give this VM another tap$' \
    --net tap=cmtap0
kill -KILL $holder
wait $holder
pgrep -x vmm && fail "a vmm is still running"
ok "no vmm left running"
[ -d /sys/class/net/cmtap0 ] || fail "the tap went with the killed vmm"
ok "the tap outlives a killed vmm"
