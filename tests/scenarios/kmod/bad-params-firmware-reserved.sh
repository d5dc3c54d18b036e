# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug debian
#
# Bad input: memmap mode pointed at memory the firmware reserved itself.
# QEMU's SeaBIOS reserves its ROM at [0xfffc0000-0xffffffff] in E820; the
# kernel's /proc/iomem shows it as "Reserved", exactly as a memmap=
# reservation, so only the firmware's own map (/sys/firmware/memmap) tells
# them apart. critmem.ko refuses it, naming the range and the fix, zeroes
# nothing and claims nothing. A range the firmware does not describe at
# all is refused too.
. /lib/critmem/testlib.sh

dmesg | grep 'BIOS-e820' || true
assert_match "$(cat /proc/iomem)" 'fffc0000-ffffffff : Reserved' "/proc/iomem: the ROM is Reserved, as a memmap= range would be"
fw=
for d in /sys/firmware/memmap/*; do
    fw="$fw$(cat "$d/start")-$(cat "$d/end") $(cat "$d/type")
"
done
echo "$fw"
assert_match "$fw" '0xfffc0000-0xffffffff Reserved' "the firmware's map: the ROM is Reserved, not RAM"

insmod /lib/critmem/critmem.ko base=0xfffc0000 size=0x40000 && fail "loaded on the firmware's ROM"
msg=$(dmesg | grep 'critmem:' | tail -n 1)
echo "$msg"
assert_match "$msg" 'critmem.base=0xfffc0000 critmem.size=0x40000: \[0xfffc0000-0xffffffff\] is not RAM in the firmware.s memory map' "log names the firmware-reserved range"
assert_match "$msg" 'reserve_mem=<size>:<align>:critmem' "log names the fix"

# Above the top of RAM nothing is described: not a memmap= reservation either.
insmod /lib/critmem/critmem.ko base=0x100000000 size=0x10000000 && fail "loaded on undescribed memory"
msg=$(dmesg | grep 'critmem:' | tail -n 1)
echo "$msg"
assert_match "$msg" '\[0x100000000-0x10fffffff\] is not described by the firmware at all' "log names the hole"

[ -e /dev/critmem ] && fail "/dev/critmem exists"
assert_no_match "$(cat /proc/iomem)" critmem "/proc/iomem has no critmem"
