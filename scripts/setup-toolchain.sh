#!/usr/bin/env bash
# Installs everything critmem needs to build a Rust-for-Linux kernel, the
# out-of-tree module, the userspace and to run the emulated host.
#
# Idempotent: each step checks first and does nothing when already satisfied.
# Packages that bookworm lacks come from other suites through a private
# sources list under $CRITMEM_CACHE/apt, used only through apt options; the
# system's /etc/apt is never modified, so later unrelated `apt-get install`
# calls resolve exactly as before.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# From the system's own sources (bookworm main).
SYSTEM_PKGS=(flex bison bc make gcc libc6-dev libelf-dev libssl-dev cpio gzip xz-utils
    "clang-$LLVM_VERSION" "libclang-$LLVM_VERSION-dev" "lld-$LLVM_VERSION" busybox-static
    grub-pc-bin grub-common xorriso mtools
    kmod) # depmod, run by the README's `make modules_install` (tests/readme)

missing_system_pkgs() {
    local p
    for p in "${SYSTEM_PKGS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
    done
}

install_system_pkgs() {
    local missing
    missing=$(missing_system_pkgs)
    [ -z "$missing" ] && { log "system packages: present"; return; }
    log "system packages: installing $(echo $missing)"
    apt-get -q update >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends $missing >/dev/null
}

# Two private sources lists, never installed into /etc/apt:
#  - "install": bookworm plus bookworm-backports. Packages installed from it
#    resolve their dependencies within bookworm, so the system stays bookworm.
#  - "download": trixie-backports, used only to download Architecture: all
#    packages (rust-src, linux-source) that are unpacked under the cache,
#    never installed.
write_private_sources() {
    local key=/usr/share/keyrings/debian-archive-keyring.gpg kind want
    for kind in install download; do
        mkdir -p "$APT_DIR/$kind/lists/partial" "$APT_DIR/$kind/archives/partial"
        if [ $kind = install ]; then
            want="deb [signed-by=$key] $DEBIAN_MIRROR bookworm main
deb [signed-by=$key] $DEBIAN_MIRROR bookworm-updates main
deb [signed-by=$key] $DEBIAN_MIRROR $QEMU_SUITE main"
        else
            want="deb [signed-by=$key] $DEBIAN_MIRROR $KERNEL_SRC_SUITE main"
        fi
        if [ "$(cat "$APT_DIR/$kind/sources.list" 2>/dev/null)" != "$want" ]; then
            printf '%s\n' "$want" >"$APT_DIR/$kind/sources.list"
            rm -f "$APT_DIR/$kind/.updated"
        fi
        # Refresh the private lists at most once a day.
        if [ -z "$(find "$APT_DIR/$kind/.updated" -mmin -1440 2>/dev/null)" ]; then
            log "private apt lists ($kind): updating"
            private_apt $kind update >/dev/null
            touch "$APT_DIR/$kind/.updated"
        fi
    done
}

install_qemu() {
    local want_suite=$QEMU_SUITE
    if command -v qemu-system-x86_64 >/dev/null &&
        qemu-system-x86_64 --version | grep -qE 'version (9|1[0-9])\.'; then
        log "qemu: $(qemu-system-x86_64 --version | head -1)"
        return
    fi
    write_private_sources
    log "qemu: installing qemu-system-x86 from $want_suite"
    # Pin by target release; the private list is consulted only for this call.
    DEBIAN_FRONTEND=noninteractive private_apt install -y -t "$want_suite" install \
        --no-install-recommends qemu-system-x86 qemu-system-data >/dev/null
    qemu-system-x86_64 --version | head -1 >&2
}

# Debian's rust-src for exactly the installed rustc, extracted under the cache.
install_rust_src() {
    local rv dir
    rv=$(rustc_version)
    dir=$TOOLS_DIR/rust-src-$rv
    if [ -f "$dir/usr/lib/rustlib/src/rust/library/core/src/lib.rs" ]; then
        log "rust-src $rv: present"
        return
    fi
    write_private_sources
    local ver
    ver=$(private_apt download madison rust-src | awk -F'|' '{gsub(/ /,"",$2); print $2}' |
        grep -E "^${rv//./\\.}\+" | sort -V | tail -1 || true)
    [ -n "$ver" ] || die "no Debian rust-src package matches rustc $rv: wanted rust-src=$rv+dfsg* (looked in $KERNEL_SRC_SUITE)"
    log "rust-src: fetching rust-src=$ver for rustc $rv"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && private_apt download download "rust-src=$ver" >/dev/null)
    mkdir -p "$dir.tmp"
    dpkg-deb -x "$tmp"/rust-src_*.deb "$dir.tmp"
    rm -rf "$tmp" "$dir"
    mv "$dir.tmp" "$dir"
}

install_bindgen() {
    if [ -x "$TOOLS_DIR/bin/bindgen" ] &&
        "$TOOLS_DIR/bin/bindgen" --version | grep -q " $BINDGEN_VERSION\$"; then
        log "bindgen $BINDGEN_VERSION: present"
        return
    fi
    log "bindgen: cargo install bindgen-cli $BINDGEN_VERSION"
    with_progress "bindgen-cli build" 90 \
        cargo install -q --root "$TOOLS_DIR" bindgen-cli --version "$BINDGEN_VERSION" --locked
}

check_libclang() {
    [ -f "$LIBCLANG_PATH/libclang.so" ] || ls "$LIBCLANG_PATH"/libclang*.so* >/dev/null 2>&1 ||
        die "libclang $LLVM_VERSION not found in $LIBCLANG_PATH"
}

main() {
    [ "$(id -u)" = 0 ] || die "setup needs root (it installs Debian packages)"
    mkdir -p "$TOOLS_DIR/bin"
    install_system_pkgs
    check_libclang
    install_qemu
    install_rust_src
    install_bindgen
    log "toolchain ready: rustc $(rustc_version), bindgen $BINDGEN_VERSION, libclang $LLVM_VERSION"
}

case "${1:-}" in
    # Only the private apt lists, for scripts that look versions up in them.
    private-lists) write_private_sources ;;
    "") main ;;
    *) die "usage: scripts/setup-toolchain.sh [private-lists]" ;;
esac
