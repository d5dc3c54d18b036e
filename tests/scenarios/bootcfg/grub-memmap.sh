# ehost-boot: bash bootcfg/tests/grub-boot.sh memmap
# ehost-memory: 2G
# ehost-timeout: 60
#
# Boots the emulated host through real GRUB with critmem-boot's memmap-mode
# drop-in, where `$` is written `\\\$`: the shell that sources the drop-in
# leaves `\$` in grub.cfg, and GRUB turns that into the `$` the kernel
# needs. The kernel must mark 0x40000000-0x4fffffff reserved, and critmem.ko,
# given the critmem.* words of the command line as modprobe would, must
# publish exactly that range.
. /lib/critmem/testlib.sh

cmdline=$(cat /proc/cmdline)
echo "/proc/cmdline: $cmdline"
printf '%s\n' "$cmdline" | grep -qF ' memmap=256M$0x40000000 critmem.base=0x40000000 critmem.size=0x10000000 ' ||
    fail "GRUB did not pass memmap=256M\$0x40000000 critmem.base=0x40000000 critmem.size=0x10000000 verbatim"
ok "GRUB passed memmap=256M\$0x40000000 with a literal \$"
assert_no_match "$cmdline" '\\' "no backslash reached the kernel"

iomem=$(grep -i '^40000000-4fffffff' /proc/iomem || true)
echo "/proc/iomem: $iomem"
assert_match "$iomem" 'Reserved|critmem' "the kernel reserved 0x40000000-0x4fffffff"
dmesg | grep -iE 'user-defined|memmap' | head -n 5

# modprobe applies critmem.* words of the command line; busybox insmod does
# not, so pass them the same way.
args=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^critmem\.//p' | tr '\n' ' ')
echo "module parameters from /proc/cmdline: $args"
# shellcheck disable=SC2086
critmem_load $args
[ -r /proc/critmem ] || fail "/proc/critmem missing after loading critmem.ko"
echo "----- /proc/critmem -----"
cat /proc/critmem
echo "-----"
assert_eq "$(critmem_key source)" memmap "pool source"
assert_eq "$(critmem_key start)" 0x40000000 "pool start"
assert_eq "$(critmem_key size)" "$((256 << 20))" "pool size"
assert_eq "$(critmem_key end_inclusive)" 0x4fffffff "pool end"

echo "----- critmem-boot status -----"
status=$(critmem-boot status) || fail "critmem-boot status failed"
echo "$status"
echo "-----"
assert_match "$status" '^configured \(debian-grub, /etc/critmem/boot.state\): memmap=256M\$0x40000000 critmem.base=0x40000000 critmem.size=0x10000000$' "status: configured"
assert_match "$status" 'booted with \(/proc/cmdline\): memmap=256M\$0x40000000 critmem.base=0x40000000 critmem.size=0x10000000$' "status: booted"
assert_match "$status" 'matches the boot parameters: yes' "status: live pool matches"
assert_match "$status" '^a reboot changes nothing' "status: nothing to change"

# Re-planning on the booted host: /proc/iomem now shows the range as
# Reserved with the critmem pool in it, which still counts as RAM, and the
# pool held back is added to MemTotal.
out=$(critmem-boot plan --size 256M --mode memmap --base 0x40000000 --force) ||
    fail "re-planning the booted memmap pool was refused: $out"
assert_match "$out" 'nothing to change' "re-plan on the booted host: nothing to change"
