# ehost-kernels: debian
# ehost-cmdline: reserve_mem=256M:2M:critmem module.sig_enforce=1
# ehost-memory: 2G
# ehost-timeout: 90
#
# Enforced module signing on Debian's unmodified kernel: booted with
# module.sig_enforce=1 (what Secure Boot's lockdown amounts to for modules),
# it refuses an unsigned critmem.ko, and `critmem-boot check` says so
# beforehand, naming the fix (DKMS's signing key, enrolled), and exits 1.
. /lib/critmem/testlib.sh

assert_eq "$(cat /sys/module/module/parameters/sig_enforce)" Y "the kernel enforces module signatures"
# Installed as DKMS installs it, and with the config file a Debian host has.
release=$(uname -r)
mkdir -p "/lib/modules/$release/updates/dkms" /boot
cp "$CRITMEM_KO" "/lib/modules/$release/updates/dkms/critmem.ko"
cp /lib/critmem/kernel.config "/boot/config-$release"
depmod

out=$(critmem-boot check 2>&1)
rc=$?
echo "$out"
assert_eq "$rc" 1 "critmem-boot check exit status"
assert_match "$out" "critmem.ko \(/lib/modules/[^)]*/updates/dkms/critmem.ko\) is not signed, and this kernel \(module.sig_enforce=Y\) loads only signed modules: install it through critmem-dkms, which signs it with DKMS's key, and enroll that key \(mokutil --import /var/lib/dkms/mok.pub" \
    "check names the unsigned module and the fix"

# The kernel's own verdict agrees.
if modprobe critmem 2>/tmp/modprobe.err; then
    fail "an unsigned critmem.ko loaded under module.sig_enforce=1"
fi
cat /tmp/modprobe.err
ok "modprobe critmem refused: $(dmesg | grep -i 'critmem\|unsigned\|signature' | tail -n 1)"
[ -e /proc/critmem ] && fail "/proc/critmem exists after the refused load"
ok "no /proc/critmem"
