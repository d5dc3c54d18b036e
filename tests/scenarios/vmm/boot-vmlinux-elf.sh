# ehost-memory: 2G
# ehost-timeout: 120
#
# An ELF vmlinux boots too: the vmlinux compressed inside /guest/bzImage is
# extracted (gzip stream after the setup code), checked to be ELF, and
# booted with 2 vCPUs through linux-loader's ELF path.
. /lib/critmem/testlib.sh

# Offset of the first gzip header (1f 8b 08 00) in the bzImage.
off=$(od -A d -v -t x1 -w1 "$GUEST_KERNEL" | awk '
    { b[NR % 4] = $2; o[NR % 4] = $1 }
    NR >= 4 && b[(NR - 3) % 4] == "1f" && b[(NR - 2) % 4] == "8b" && b[(NR - 1) % 4] == "08" && b[NR % 4] == "00" {
        print o[(NR - 3) % 4]; exit }')
[ -n "$off" ] || fail "no gzip stream in $GUEST_KERNEL"
note "gzip stream at offset $off"
tail -c +$((off + 1)) "$GUEST_KERNEL" | gunzip >/tmp/vmlinux 2>/dev/null
assert_eq "$(head -c 4 /tmp/vmlinux | od -A n -t x1 | tr -d ' ')" "7f454c46" "extracted image is ELF"
out=$(vmm --kernel /tmp/vmlinux --initramfs "$GUEST_INITRAMFS" --memory 256M --cpus 2 \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux" 2>&1)
rc=$?
echo "$out" | tail -n 20
assert_eq "$rc" 0 "vmm exit status"
assert_match "$out" "CRITMEM-GUEST-UP cpus=2 " "guest marker with 2 CPUs"
assert_match "$out" "CRITMEM-GUEST-DONE" "guest init finished"
