#!/usr/bin/env bash
# The two packages install with apt in the trixie root, as on an operator's
# Debian 13 host: DKMS builds and signs critmem.ko for the kernel installed
# before the package, and again when another kernel's headers are
# installed after it (DKMS's kernel hook); critmem-tools gives vmm,
# critmem-boot, their man pages and the udev rule; removal removes it all.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t debs < <(bash "$CRITMEM_ROOT/scripts/build-packages.sh")
root_enter
mkdir -p "$ROOT/tmp/debs"
cp "${debs[@]}" "$ROOT/tmp/debs/"
first=$EHOST_RELEASE
later=$(tr ' ' '\n' <<<"$RELEASES" | grep -vxF "$first" | head -n 1)
[ -n "$later" ] || fail "scripts/debian-kernels lists one kernel; this test needs a second"

# The second kernel arrives after the package: take its headers away first.
in_root apt-get -q -y remove "linux-headers-$later" >/dev/null || fail "cannot remove linux-headers-$later"

in_root apt-get -q -y install --no-install-recommends $(printf '/tmp/debs/%s ' "${debs[@]##*/}") \
    >"$TEST_DIR/install.log" 2>&1 || { cat "$TEST_DIR/install.log"; fail "apt install of the two packages failed"; }
version=$(in_root dpkg-query -W -f='${Version}' critmem-dkms)

# check_module RELEASE: DKMS installed a signed critmem.ko for RELEASE.
check_module() {
    local status ko
    status=$(in_root dkms status -m critmem -v "$version" -k "$1")
    grep -q ': installed' <<<"$status" || {
        cat "$ROOT/var/lib/dkms/critmem/$version/build/make.log" 2>/dev/null | tail -n 30
        fail "dkms status for $1: '$status'"
    }
    echo "ok: dkms status: $status"
    ko=$(in_root find "/lib/modules/$1/updates/dkms" -name 'critmem.ko*' | head -n 1)
    [ -n "$ko" ] || fail "no critmem.ko under /lib/modules/$1/updates/dkms"
    in_root modinfo -F vermagic "$ko" | grep -q "^$1 " || fail "$ko is not built for $1"
    local signer
    signer=$(in_root modinfo -F signer "$ko")
    [ -n "$signer" ] || fail "$ko is not signed (modinfo shows no signer)"
    echo "ok: $ko: vermagic $1, signed by '$signer' ($(in_root modinfo -F sig_hashalgo "$ko"))"
}
check_module "$first"
grep -m1 'symbol check' "$ROOT/var/lib/dkms/critmem/$version/$first/x86_64/log/make.log" 2>/dev/null ||
    grep -m1 'symbol check' "$TEST_DIR/install.log" || echo "(DKMS's make.log kept no symbol-check line)"

# A kernel installed later gets its module from DKMS's own hook.
in_root apt-get -q -y install --no-install-recommends "linux-headers-$later" >"$TEST_DIR/later.log" 2>&1 ||
    { cat "$TEST_DIR/later.log"; fail "installing linux-headers-$later failed"; }
check_module "$later"

# The key DKMS signed with is the one an operator enrolls for Secure Boot.
[ -f "$ROOT/var/lib/dkms/mok.pub" ] || fail "no /var/lib/dkms/mok.pub to enroll"
echo "ok: signing certificate /var/lib/dkms/mok.pub ($(openssl x509 -inform der -in "$ROOT/var/lib/dkms/mok.pub" -noout -subject 2>/dev/null))"

# critmem-tools.
for f in /usr/bin/vmm /usr/sbin/critmem-boot /usr/lib/udev/rules.d/60-critmem.rules \
    /usr/share/man/man1/vmm.1.gz /usr/share/man/man8/critmem-boot.8.gz; do
    [ -e "$ROOT$f" ] || fail "critmem-tools did not install $f"
done
in_root vmm --help | grep -q -- '--critical-mem' || fail "vmm --help in the root does not run"
in_root critmem-boot --help >/dev/null || fail "critmem-boot --help in the root does not run"
grep -q 'GROUP="kvm", MODE="0660"' "$ROOT/usr/lib/udev/rules.d/60-critmem.rules" || fail "the udev rule is not 0660 root:kvm"
zcat "$ROOT/usr/share/man/man1/vmm.1.gz" | grep -q -- 'critical-mem' || fail "vmm(1) lacks --critical-mem"
echo "ok: critmem-tools: vmm, critmem-boot, man pages, udev rule"

# Removal leaves no module behind.
in_root apt-get -q -y purge critmem-dkms critmem-tools >/dev/null || fail "purge failed"
left=$(in_root find /lib/modules -name 'critmem.ko*')
[ -z "$left" ] || fail "purge left $left"
[ ! -e "$ROOT/var/lib/dkms/critmem" ] || fail "purge left /var/lib/dkms/critmem"
echo "ok: purge removed every critmem.ko and DKMS's tree"
