#!/usr/bin/env bash
# Builds the two Debian packages into target/debian/ and prints their paths:
#
#   critmem-dkms_VERSION_all.deb     the module source, dkms.conf and
#                                    critmem-kbuild (dist/)
#   critmem-tools_VERSION_amd64.deb  vmm and critmem-boot (static), their
#                                    man pages, the udev rule
#
# VERSION is the workspace's. dpkg-deb alone builds them (no debhelper), so
# this runs on the build machine; they are installed and tested in the
# trixie root (tests/debian/).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT=$CRITMEM_ROOT/target/debian
DIST=$CRITMEM_ROOT/dist
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$CRITMEM_ROOT/Cargo.toml" | head -n 1)
[ -n "$VERSION" ] || die "no version in the workspace Cargo.toml"

# fill FILE...: replaces @VERSION@ in place.
fill() { sed -i "s/@VERSION@/$VERSION/g" "$@"; }

# man_page NAME SECTION BINARY: a man page from BINARY --help, so the page
# and the command's own help never disagree.
man_page() {
    local name=$1 section=$2 bin=$3 summary
    summary=$("$bin" --help | sed -n 1p)
    {
        printf '.TH %s %s "" "critmem %s" "critmem"\n' "${name^^}" "$section" "$VERSION"
        printf '.SH NAME\n%s \\- %s\n' "$name" "$summary"
        printf '.SH DESCRIPTION\n.nf\n'
        "$bin" --help | tail -n +2 | sed -e 's/\\/\\\\/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"
        printf '.fi\n.SH SEE ALSO\n/usr/share/doc/critmem-tools/README.md\n'
    } | gzip -9n >"$4"
}

build_dkms() {
    local stage=$OUT/stage/critmem-dkms src
    rm -rf "$stage"
    src=$stage/usr/src/critmem-$VERSION
    mkdir -p "$stage/DEBIAN" "$stage/usr/sbin" "$src/kmod" "$src/abi" "$stage/usr/share/doc/critmem-dkms"
    (cd "$CRITMEM_ROOT/kmod" && find . -name '*.rs' -not -path './host-tests/*' -print0 |
        xargs -0 cp --parents -t "$src/kmod/") || die "cannot copy kmod/"
    cp "$CRITMEM_ROOT"/kmod/{Kbuild,Makefile} "$src/kmod/"
    cp "$CRITMEM_ROOT/abi/critmem_abi.rs" "$src/abi/"
    cp "$DIST/debian/critmem-dkms/dkms.conf" "$src/dkms.conf"
    install -m 755 "$DIST/critmem-kbuild" "$stage/usr/sbin/critmem-kbuild"
    cp "$CRITMEM_ROOT/kmod/README.md" "$stage/usr/share/doc/critmem-dkms/README.md"
    cp "$DIST/debian/critmem-dkms/control" "$stage/DEBIAN/control"
    install -m 755 "$DIST/debian/critmem-dkms/postinst" "$DIST/debian/critmem-dkms/prerm" "$stage/DEBIAN/"
    fill "$stage/DEBIAN/control" "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$src/dkms.conf" \
        "$stage/usr/sbin/critmem-kbuild"
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$OUT/critmem-dkms_${VERSION}_all.deb" >/dev/null
    echo "$OUT/critmem-dkms_${VERSION}_all.deb"
}

build_tools() {
    local stage=$OUT/stage/critmem-tools bindir=$1 b
    rm -rf "$stage"
    mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/sbin" "$stage/usr/share/man/man1" \
        "$stage/usr/share/man/man8" "$stage/usr/lib/udev/rules.d" "$stage/usr/share/doc/critmem-tools"
    install -m 755 "$bindir/vmm" "$stage/usr/bin/vmm"
    install -m 755 "$bindir/critmem-boot" "$stage/usr/sbin/critmem-boot"
    man_page vmm 1 "$bindir/vmm" "$stage/usr/share/man/man1/vmm.1.gz"
    man_page critmem-boot 8 "$bindir/critmem-boot" "$stage/usr/share/man/man8/critmem-boot.8.gz"
    # The packaged rule is the one critmem-boot writes, as the vendor default.
    sed '1s/^#.*$/# critmem-tools: \/dev\/critmem for root and the kvm group. A rule of the same name in \/etc\/udev\/rules.d overrides this one./' \
        "$CRITMEM_ROOT/bootcfg/files/udev/rules.d/60-critmem.rules" >"$stage/usr/lib/udev/rules.d/60-critmem.rules"
    cp "$CRITMEM_ROOT/README.md" "$stage/usr/share/doc/critmem-tools/README.md"
    cp "$DIST/debian/critmem-tools/control" "$stage/DEBIAN/control"
    install -m 755 "$DIST/debian/critmem-tools/postinst" "$stage/DEBIAN/"
    fill "$stage/DEBIAN/control"
    for b in "$stage/usr/bin/vmm" "$stage/usr/sbin/critmem-boot"; do
        file "$b" | grep -q 'static' || die "$b is not static: it must run on Debian 13 as built here"
    done
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$OUT/critmem-tools_${VERSION}_amd64.deb" >/dev/null
    echo "$OUT/critmem-tools_${VERSION}_amd64.deb"
}

mkdir -p "$OUT"
bindir=$(bash "$CRITMEM_ROOT/scripts/build-userspace.sh")
log "packages: critmem-dkms and critmem-tools $VERSION"
build_dkms
build_tools "$bindir"
