# ehost-boot: bash bootcfg/tests/grub-boot.sh reserve
# ehost-memory: 2G
# ehost-timeout: 60
#
# Boots the emulated host through real GRUB (a grub-mkrescue image) whose
# `linux` line was derived from critmem-boot's drop-in the way grub-mkconfig
# does, after a distro drop-in that overwrites GRUB_CMDLINE_LINUX. The
# kernel must get reserve_mem=256M:2M:critmem and critmem.ko's pool must
# match it.
. /lib/critmem/testlib.sh

cmdline=$(cat /proc/cmdline)
echo "/proc/cmdline: $cmdline"
assert_match "$cmdline" ' oops=panic reserve_mem=256M:2M:critmem loglevel=4$' \
    "GRUB passed the drop-in's parameter, appended to the distro drop-in's GRUB_CMDLINE_LINUX"
[ "$(grep -o 'critmem' /proc/cmdline | wc -l)" = 1 ] || fail "critmem parameter passed more than once"
ok "the parameter appears once"

critmem_load
[ -r /proc/critmem ] || fail "/proc/critmem missing after loading critmem.ko"
echo "----- /proc/critmem -----"
cat /proc/critmem
echo "-----"
assert_eq "$(critmem_key source)" reserve_mem "pool source"
assert_eq "$(critmem_key size)" "$((256 << 20))" "pool size"
start=$(critmem_key start)
[ $((start % (2 << 20))) = 0 ] || fail "pool start $start is not 2 MiB aligned"
ok "pool start $start is 2 MiB aligned"
assert_eq "$(critmem_key end_inclusive)" "$(hex $((start + (256 << 20) - 1)))" "pool end"

# critmem-boot inside the booted host: the applied /etc came in the initrd.
echo "----- critmem-boot status -----"
status=$(critmem-boot status) || fail "critmem-boot status failed"
echo "$status"
echo "-----"
assert_match "$status" '^configured \(debian-grub, /etc/critmem/boot.state\): reserve_mem=256M:2M:critmem$' "status: configured"
assert_match "$status" '^booted with \(/proc/cmdline\): reserve_mem=256M:2M:critmem$' "status: booted"
assert_match "$status" 'matches the boot parameters: yes' "status: live pool matches"
assert_match "$status" '^a reboot changes nothing' "status: nothing to change"

# critmem-boot check against the running kernel (/proc/config.gz, IKCONFIG).
echo "----- critmem-boot check -----"
report=$(critmem-boot check) || fail "critmem-boot check says the kernel is unsupported: $report"
echo "$report"
echo "-----"
assert_match "$report" 'configuration: /proc/config.gz' "check: read /proc/config.gz"
assert_match "$report" '^kernel supports independent memory configuration: yes \(reserve and memmap modes\)$' "check: supported"
