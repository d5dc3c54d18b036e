# ehost-kernels: debian
# ehost-timeout: 60
#
# Debian's unmodified kernel as the emulated host: it is the release (and
# the Debian build) of the `ehost` line of scripts/debian-kernels; the init
# loaded Debian's own irqbypass, kvm and kvm_amd, so /dev/kvm is there,
# kvm_amd found nested paging (QEMU's `-cpu max` SVM) and a KVM guest runs;
# its STRICT_DEVMEM refuses RAM through /dev/mem, and cmtool reads it
# through /proc/kcore instead.
. /lib/critmem/testlib.sh

assert_eq "$(uname -r)" "$(cat /lib/critmem/debian-kernel/release)" "uname -r is the ehost line's release"
version=$(cat /lib/critmem/debian-kernel/version)
assert_match "$(cat /proc/version)" "Debian $(printf '%s' "$version" | sed 's/[.+]/\\&/g') " \
    "/proc/version names Debian's build $version"

for m in irqbypass kvm kvm_amd; do
    assert_match "$(cat /proc/modules)" "^$m " "module $m loaded"
done
[ -c /dev/kvm ] || fail "/dev/kvm is missing"
ok "/dev/kvm present"
assert_match "$(dmesg)" 'kvm_amd: Nested Paging enabled' "kvm_amd: Nested Paging enabled"
cmtool kvm-selftest || fail "a KVM guest did not run on Debian's kvm modules"
ok "a KVM guest ran"

kconfig_enabled STRICT_DEVMEM || fail "kconfig_enabled says Debian's kernel has no STRICT_DEVMEM (read from /lib/critmem/kernel.config)"
ok "STRICT_DEVMEM=y (kernel.config)"
# An address 16 MiB into the first System RAM range above 1 MiB.
ram=$(sed -n 's/^\([0-9a-f]*\)-[0-9a-f]* : System RAM$/\1/p' /proc/iomem | while read -r start; do
    if [ $((0x$start)) -ge $((1 << 20)) ]; then
        echo "0x$start"
        break
    fi
done)
[ -n "$ram" ] || fail "no System RAM above 1 MiB in /proc/iomem: $(cat /proc/iomem)"
addr=$(hex "$ram + (16 << 20)")
assert_devmem_refused "$addr" "STRICT_DEVMEM, System RAM"
out=$(cmtool physread "$addr" 8 2>&1) || fail "cmtool physread $addr: $out"
assert_match "$out" 'phys: via=/proc/kcore' "cmtool physread falls back to /proc/kcore: $out"
