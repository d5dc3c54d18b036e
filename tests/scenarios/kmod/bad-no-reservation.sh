# ehost-memory: 2G
# ehost-timeout: 60
# ehost-kernels: test debug
#
# Bad input: with no reserve_mem=...:critmem and no module parameters the
# load fails, and the kernel log names the boot parameter to add.
. /lib/critmem/testlib.sh

insmod /lib/critmem/critmem.ko && fail "insmod succeeded without a reservation"
msg=$(dmesg | grep 'critmem:' | tail -n 3)
echo "$msg"
assert_match "$msg" 'reserve_mem=<size>:<align>:critmem' "log names reserve_mem="
[ -e /proc/critmem ] && fail "/proc/critmem exists"
[ -e /dev/critmem ] && fail "/dev/critmem exists"
assert_no_match "$(cat /proc/iomem)" critmem "/proc/iomem has no critmem"
