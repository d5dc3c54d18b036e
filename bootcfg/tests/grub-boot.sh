#!/usr/bin/env bash
# Builds a bootable GRUB image (Debian's grub-pc-bin, via grub-mkrescue)
# whose kernel command line comes from critmem-boot's GRUB drop-in, the way
# grub-mkconfig computes it. Used by the emulated-host harness for scenarios
# with `# ehost-boot: bash bootcfg/tests/grub-boot.sh MODE`:
#
#   grub-boot.sh MODE KERNEL INITRD APPEND OUT.iso
#
# MODE is `reserve` or `memmap`. Steps:
#  1. make a fake Debian system root (/etc/default/grub, a distro drop-in
#     that overwrites GRUB_CMDLINE_LINUX as cloud images do, the emulated
#     host's 2 GiB memory map) and run `critmem-boot --root R apply` on it;
#  2. source /etc/default/grub, then /etc/default/grub.d/*.cfg in order, in
#     a shell, exactly as grub-mkconfig does, and take GRUB_CMDLINE_LINUX
#     and GRUB_CMDLINE_LINUX_DEFAULT;
#  3. write grub.cfg with `linux KERNEL APPEND $GRUB_CMDLINE_LINUX
#     $GRUB_CMDLINE_LINUX_DEFAULT` inserted verbatim, as 10_linux does (so a
#     `\$` reaches GRUB's own parser, which must turn it into `$`);
#  4. pack KERNEL, INITRD plus the applied /etc (state, drop-in, modprobe.d,
#     modules-load.d, udev rule) into an ISO with grub-mkrescue.
# Everything it does is logged on stderr, including the drop-in and the
# resulting `linux` line.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

[ $# = 5 ] || die "usage: grub-boot.sh reserve|memmap KERNEL INITRD APPEND OUT.iso"
mode=$1 kernel=$2 initrd=$3 append=$4 out=$5

case $mode in
reserve) pool=(--size 256M --align 2M) ;;
memmap) pool=(--size 256M --mode memmap --base 0x40000000) ;;
*) die "grub-boot.sh: unknown mode '$mode' (reserve or memmap)" ;;
esac

for tool in grub-mkrescue xorriso mformat cpio; do
    command -v $tool >/dev/null || die "grub-boot.sh: $tool missing; run scripts/setup-toolchain.sh"
done
[ -d /usr/lib/grub/i386-pc ] || die "grub-boot.sh: /usr/lib/grub/i386-pc missing (package grub-pc-bin)"

# critmem-boot: the static binary the harness puts in the emulated host, or
# a fresh build.
boot_bin=${CRITMEM_BOOT:-}
if [ -z "$boot_bin" ]; then
    boot_bin=$CRITMEM_ROOT/target/ehost/host-root/usr/bin/critmem-boot
    if [ ! -x "$boot_bin" ]; then
        cargo build -q --locked -p critmem-boot --manifest-path "$CRITMEM_ROOT/Cargo.toml" >&2
        boot_bin=$CRITMEM_ROOT/target/debug/critmem-boot
    fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

# 1. The fake system: Debian's stock /etc/default/grub, a distro drop-in
# that overwrites GRUB_CMDLINE_LINUX, and QEMU's `-m 2G` memory map.
mkdir -p "$root"/etc/default/grub.d "$root"/proc "$root"/sys/firmware/memmap
cat >"$root/etc/default/grub" <<'GRUB'
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`( . /etc/os-release 2>/dev/null; echo ${NAME:-Debian} ) 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
GRUB
cat >"$root/etc/default/grub.d/50-cloudimg-settings.cfg" <<'GRUB'
# Like a cloud image's drop-in: sets, rather than appends to, the command line.
GRUB_CMDLINE_LINUX="oops=panic"
GRUB_CMDLINE_LINUX_DEFAULT="loglevel=4"
GRUB
printf 'MemTotal:        2014604 kB\nMemFree:         1900000 kB\n' >"$root/proc/meminfo"
i=0
for r in "0x0 0x9fbff" "0x100000 0x7ffdffff"; do
    mkdir -p "$root/sys/firmware/memmap/$i"
    set -- $r
    echo "$1" >"$root/sys/firmware/memmap/$i/start"
    echo "$2" >"$root/sys/firmware/memmap/$i/end"
    echo "System RAM" >"$root/sys/firmware/memmap/$i/type"
    i=$((i + 1))
done

# The emulated host has 2 GiB, under the 2 GiB safe minimum: --force.
log "grub-boot: critmem-boot --root R apply ${pool[*]} --force"
"$boot_bin" --root "$root" apply "${pool[@]}" --force >&2 ||
    die "grub-boot: critmem-boot apply failed"
echo "----- /etc/default/grub.d/99-critmem.cfg -----" >&2
cat "$root/etc/default/grub.d/99-critmem.cfg" >&2
echo "-----" >&2

# 2. What grub-mkconfig does: source the defaults, then every drop-in.
# shellcheck disable=SC2016
cmdline=$(sh -c '
    . "$1/etc/default/grub"
    for x in "$1"/etc/default/grub.d/*.cfg; do
        if [ -e "$x" ]; then . "$x"; fi
    done
    printf "%s %s" "$GRUB_CMDLINE_LINUX" "$GRUB_CMDLINE_LINUX_DEFAULT"
' sh "$root")

# 3. grub.cfg, the `linux` line written verbatim as 10_linux writes it.
iso=$tmp/iso
mkdir -p "$iso/boot/grub"
cp "$kernel" "$iso/boot/bzImage"
(cd "$root" && find etc -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc -R 0:0 --quiet) | gzip -9 >"$tmp/etc.cpio.gz"
cat "$initrd" "$tmp/etc.cpio.gz" >"$iso/boot/initrd"
{
    echo "serial --unit=0 --speed=115200"
    echo "terminal_input serial"
    echo "terminal_output serial"
    echo "set timeout=0"
    echo "set default=0"
    echo "menuentry 'critmem emulated host, critmem-boot $mode mode' {"
    printf '\tlinux /boot/bzImage %s %s\n' "$append" "$cmdline"
    printf '\tinitrd /boot/initrd\n'
    echo "}"
} >"$iso/boot/grub/grub.cfg"
echo "----- grub.cfg -----" >&2
cat "$iso/boot/grub/grub.cfg" >&2
echo "-----" >&2

# 4. The image: BIOS El Torito through grub-pc-bin's i386-pc modules.
grub-mkrescue -o "$out" "$iso" >"$tmp/mkrescue.log" 2>&1 || {
    cat "$tmp/mkrescue.log" >&2
    die "grub-boot: grub-mkrescue failed"
}
log "grub-boot: $out ($(du -h "$out" | cut -f1))"
