#!/usr/bin/env bash
# critmem-kbuild refuses what cannot give a loadable module, each time with
# an error that names the fix, and builds nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root_enter
install -m 755 "$CRITMEM_ROOT/dist/critmem-kbuild" "$ROOT/usr/sbin/critmem-kbuild"
rel=$EHOST_RELEASE
hdr=/usr/src/linux-headers-$rel
series=$(grep -oE '^[0-9]+\.[0-9]+' <<<"$rel")

# Missing headers.
expect_error "no kernel headers for 7.9.9-nothing: install them (apt install linux-headers-7.9.9-nothing)" \
    critmem-kbuild check -k 7.9.9-nothing

# fake_kernel NAME EDIT: headers of release NAME, a copy of the real ones
# changed by the sed script EDIT on their .config.
fake_kernel() {
    rm -rf "$ROOT/usr/src/linux-headers-$1"
    cp -a "$ROOT$hdr" "$ROOT/usr/src/linux-headers-$1"
    sed -i "s/\"$rel\"/\"$1\"/" "$ROOT/usr/src/linux-headers-$1/include/generated/utsrelease.h"
    sed -i "$2" "$ROOT/usr/src/linux-headers-$1/.config"
}

# A kernel without CONFIG_RUST.
fake_kernel "${rel/+/-norust+}" 's/^CONFIG_RUST=y$/# CONFIG_RUST is not set/'
expect_error "was built without CONFIG_RUST, so no Rust module can be built for it or load into it" \
    critmem-kbuild check -k "${rel/+/-norust+}"

# A kernel older than reserve_mem and the Rust APIs critmem uses: Debian 12's.
fake_kernel 6.1.0-41-cloud-amd64 's/^CONFIG_RUST=y$/# CONFIG_RUST is not set/'
expect_error "6.1.0-41-cloud-amd64 is Linux 6.1.0; critmem needs Linux 7.2 or newer (reserve_mem" \
    critmem-kbuild check -k 6.1.0-41-cloud-amd64

# A rustc other than the kernel's: this machine's rustup toolchain.
sysroot=$(rustc --print sysroot)
mkdir -p "$ROOT/opt/other-rust"
mount --bind "$sysroot" "$ROOT/opt/other-rust"
want=$(sed -n 's/^CONFIG_RUSTC_VERSION_TEXT="\(.*\)"$/\1/p' "$ROOT$hdr/.config")
expect_error "$rel was built with '$want', but '/opt/other-rust/bin/rustc' is '$(rustc --version)': install rustc=" \
    env RUSTC=/opt/other-rust/bin/rustc critmem-kbuild check -k "$rel"
umount "$ROOT/opt/other-rust"

# A kernel source of another version than the kernel's.
mkdir -p "$TEST_DIR/src/linux-source-$series"
printf 'VERSION = 7\nPATCHLEVEL = 3\nSUBLEVEL = 1\n' >"$TEST_DIR/src/linux-source-$series/Makefile"
tar -cJf "$ROOT/tmp/linux-source-old.tar.xz" -C "$TEST_DIR/src" "linux-source-$series"
expect_error "/tmp/linux-source-old.tar.xz holds Linux 7.3.1, but $rel is Linux 7.3.4: install linux-source-$series at the version of linux-headers-$rel" \
    critmem-kbuild check -k "$rel" --source /tmp/linux-source-old.tar.xz

# No kernel source at all.
headers_ver=$(in_root dpkg-query -W -f='${Version}' "linux-headers-$rel")
rm "$ROOT/usr/src/linux-source-$series.tar.xz"
expect_error "no kernel source /usr/src/linux-source-$series.tar.xz: apt install linux-source-$series=$headers_ver" \
    critmem-kbuild check -k "$rel"

# Nothing was prepared or built by any of these.
leftover=$(ls "$ROOT/var/cache/critmem-kbuild" | grep -v -xF -e "$rel" $(for r in $RELEASES; do printf -- '-e %s ' "$r"; done) || true)
[ -z "$leftover" ] || fail "the refused runs left prepared trees: $leftover"
echo "ok: no refused run left anything in /var/cache/critmem-kbuild"
