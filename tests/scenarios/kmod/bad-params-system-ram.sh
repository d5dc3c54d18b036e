# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: critmem.base/critmem.size pointing at System RAM (no memmap=)
# are refused; the log says to reserve it with memmap=. A partly reserved
# range and a zero size are refused too.
. /lib/critmem/testlib.sh

grep 'System RAM' /proc/iomem
insmod /lib/critmem/critmem.ko base=0x40000000 size=0x10000000 && fail "loaded on System RAM"
msg=$(dmesg | grep 'critmem:' | tail -n 1)
echo "$msg"
assert_match "$msg" 'covers System RAM.*memmap=0x10000000\$0x40000000' "log names memmap="
insmod /lib/critmem/critmem.ko base=0x40000000 && fail "loaded without critmem.size"
assert_match "$(dmesg | grep 'critmem:' | tail -n 1)" 'critmem.size=' "log names critmem.size="
insmod /lib/critmem/critmem.ko base=0x40000800 size=0x10000000 && fail "loaded misaligned"
assert_match "$(dmesg | grep 'critmem:' | tail -n 1)" '4 KiB' "misalignment named"
[ -e /dev/critmem ] && fail "/dev/critmem exists"
assert_no_match "$(cat /proc/iomem)" critmem "/proc/iomem has no critmem"
