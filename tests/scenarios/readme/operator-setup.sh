# ehost-memory: 8G
# ehost-timeout: 90
#
# README, "Check the kernel and reserve the pool at boot": the commands of
# that block, verbatim, on an 8 GiB host with a Debian-like GRUB setup (an
# update-grub that records its runs). tests/readme/check.sh checks that every
# command of the README block is here.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

mkdir -p /etc/default /usr/sbin
printf 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=""\n' >/etc/default/grub
printf '#!/bin/sh\necho run >>/tmp/update-grub.runs\n' >/usr/sbin/update-grub
chmod 755 /usr/sbin/update-grub

out=$(critmem-boot check) || fail "check: $out"
echo "$out"
assert_match "$out" 'kernel supports independent memory configuration: yes' "check says yes"

out=$(critmem-boot plan --size 4G) || fail "plan: $out"
echo "$out"
assert_match "$out" '^kernel parameters: reserve_mem=4G:1G:critmem$' "plan prints the README's parameters"
[ -e /etc/default/grub.d ] && fail "plan wrote files"
ok "plan changed nothing"

out=$(critmem-boot apply --size 4G) || fail "apply: $out"
echo "$out"
assert_match "$(cat /etc/default/grub.d/99-critmem.cfg)" 'reserve_mem=4G:1G:critmem"$' "GRUB drop-in written"
assert_eq "$(wc -l </tmp/update-grub.runs)" 1 "apply ran update-grub"
assert_match "$(cat /etc/udev/rules.d/60-critmem.rules)" 'GROUP="kvm", MODE="0660"' "udev rule written"
assert_eq "$(grep -v '^#' /etc/modules-load.d/critmem.conf)" critmem "modules-load.d written"
