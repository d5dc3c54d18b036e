#!/usr/bin/env bash
# The README's "Install on Debian 13", command for command, in the trixie
# root: the backports kernel, the two packages, `critmem-boot apply`. Then
# DKMS has built critmem.ko for that kernel, and the boot parameters of the
# pool are in GRUB's configuration.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t debs < <(bash "$CRITMEM_ROOT/scripts/build-packages.sh")
root_enter
mkdir -p "$ROOT/root/debs"
cp "${debs[@]}" "$ROOT/root/debs/"

# The one stand-in: a Debian host boots through GRUB, whose update-grub
# cannot probe a boot disk in a chroot, so the root gets Debian's stock
# /etc/default/grub and an update-grub that records its runs (real GRUB
# boots are bootcfg's scenarios, tests/scenarios/bootcfg/).
printf 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n' >"$ROOT/etc/default/grub"
printf '#!/bin/sh\necho run >>/tmp/update-grub.runs\n' >"$ROOT/usr/sbin/update-grub"
chmod 755 "$ROOT/usr/sbin/update-grub"

in_root sh -ec '
cd /root/debs
echo "deb http://deb.debian.org/debian trixie-backports main" >/etc/apt/sources.list.d/backports.list
apt-get update
apt-get install -y -t trixie-backports linux-image-cloud-amd64 linux-headers-cloud-amd64 linux-source-7.3
apt-get install -y ./critmem-dkms_0.1.0_all.deb ./critmem-tools_0.1.0_amd64.deb
critmem-boot apply --size 1G
' >"$TEST_DIR/readme.log" 2>&1 || { tail -n 40 "$TEST_DIR/readme.log"; fail "a README command failed (above)"; }

release=$(ls "$ROOT/lib/modules" | grep -- '-cloud-amd64$' | sort -V | tail -n 1)
[ -f "$ROOT/lib/modules/$release/updates/dkms/critmem.ko" ] ||
    [ -n "$(ls "$ROOT/lib/modules/$release/updates/dkms/"critmem.ko* 2>/dev/null)" ] ||
    fail "DKMS built no critmem.ko for $release"
echo "ok: DKMS built $(ls "$ROOT/lib/modules/$release/updates/dkms/"critmem.ko*) for $release"
grep -h 'reserve_mem=1G:1G:critmem' "$ROOT"/etc/default/grub.d/*.cfg ||
    fail "critmem-boot apply wrote no reserve_mem=1G:1G:critmem for GRUB"
[ "$(wc -l <"$ROOT/tmp/update-grub.runs")" = 1 ] || fail "critmem-boot apply did not run update-grub once"
echo "ok: critmem-boot apply configured reserve_mem=1G:1G:critmem and ran update-grub"
