# ehost-cmdline: reserve_mem=64M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# critmem-boot acting on a real running system (--root /, the emulated
# host): validation against the real /proc/meminfo and /proc/iomem, apply
# running update-grub, idempotence, status against the real /proc/cmdline
# and /proc/critmem, remove, and check against /proc/config.gz.
. /lib/critmem/testlib.sh

critmem_load

# Validation on the real machine (2 GiB; safe minimum 2 GiB).
out=$(critmem-boot plan --size 4G 2>&1) && fail "a 4 GiB pool on a 2 GiB host was accepted: $out"
assert_match "$out" "is larger than this machine's RAM" "4G refused: larger than RAM"
out=$(critmem-boot plan --size 512M 2>&1) && fail "512M without --force was accepted: $out"
assert_match "$out" 'less than the safe minimum of 2 GiB .* pass --force' "512M refused without --force"
out=$(critmem-boot plan --size 512M --mode memmap --base 0xfec00000 --force 2>&1) &&
    fail "a base outside RAM was accepted: $out"
# The test kernel has the firmware's own map (CONFIG_FIRMWARE_MEMMAP), which
# critmem-boot prefers to /proc/iomem, as critmem.ko's memmap mode does.
assert_match "$out" 'is not inside System RAM according to /sys/firmware/memmap' "base outside RAM refused"
out=$(critmem-boot plan --size 3G --align 3M 2>&1) && fail "align 3M accepted"
assert_match "$out" 'must be a power of two' "align 3M refused"

# A Debian-like GRUB setup on the real root, with an update-grub that
# records its runs.
mkdir -p /etc/default /usr/sbin
printf 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=""\n' >/etc/default/grub
printf '#!/bin/sh\necho run >>/tmp/update-grub.runs\necho "Generating grub configuration file ..."\n' >/usr/sbin/update-grub
chmod 755 /usr/sbin/update-grub
runs() { wc -l </tmp/update-grub.runs 2>/dev/null || echo 0; }

out=$(critmem-boot apply --size 128M --align 2M --force) || fail "apply failed: $out"
echo "$out"
assert_eq "$(runs)" 1 "apply on / ran update-grub"
assert_match "$(cat /etc/default/grub.d/99-critmem.cfg)" 'reserve_mem=128M:2M:critmem"$' "drop-in written"
assert_match "$(cat /etc/udev/rules.d/60-critmem.rules)" 'GROUP="kvm", MODE="0660"' "udev rule written"
assert_eq "$(grep -v '^#' /etc/modules-load.d/critmem.conf)" critmem "modules-load.d written"

out=$(critmem-boot apply --size 128M --align 2M --force) || fail "second apply failed: $out"
assert_match "$out" 'nothing to change' "second apply changes nothing"
assert_eq "$(runs)" 1 "second apply did not run update-grub"

status=$(critmem-boot status) || fail "status failed"
echo "$status"
assert_match "$status" '^booted with \(/proc/cmdline\): reserve_mem=64M:2M:critmem$' "status: booted"
assert_match "$status" 'matches the boot parameters: yes' "status: live pool matches /proc/cmdline"
assert_match "$status" '^a reboot changes the pool: reserve_mem=64M:2M:critmem -> reserve_mem=128M:2M:critmem$' "status: what a reboot changes"

out=$(critmem-boot remove) || fail "remove failed: $out"
echo "$out"
assert_eq "$(runs)" 2 "remove ran update-grub"
[ ! -e /etc/default/grub.d ] && [ ! -e /etc/critmem ] && [ ! -e /etc/udev ] || fail "remove left files: $(find /etc)"
ok "remove deleted every file and directory apply created"

report=$(critmem-boot check) || fail "check: $report"
assert_match "$report" 'yes \(reserve and memmap modes\)' "check: supported"
