#!/usr/bin/env bash
# Builds critmem's test kernel (bzImage + Module.symvers + modules_prepare'd
# tree for out-of-tree modules) from the pinned Debian linux-source package
# and the committed Kconfig fragments.
#
#   scripts/build-kernel.sh [test|debug]
#
# `test` (the default) is tinyconfig + scripts/kernel/test-kernel.config.
# `debug` adds scripts/kernel/debug-kernel.config (DEBUG_VM, lockdep,
# STRICT_DEVMEM, KASAN, ...) and is compiled with clang, since Linux 7.2 allows
# Rust with KASAN only under clang (RUST depends on `!KASAN || CC_IS_CLANG`).
#
# The make variables that choose the compiler are written to
# KDIR/.critmem-make-vars; scripts/build-kmod.sh passes them to the module
# build, which must use the kernel's compiler.
#
# The build is cached in $CRITMEM_CACHE/kernel/<key>, where the key hashes
# the kernel package version, the fragments, the compilers' versions and
# KERNEL_RECIPE. A run with nothing changed only prints the path.
#
# Prints the build directory (KDIR) on stdout.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VARIANT=${1:-test}
case "$VARIANT" in
    test)
        FRAGMENTS=("$CRITMEM_ROOT/scripts/kernel/test-kernel.config")
        MAKE_VARS=()
        ;;
    debug)
        FRAGMENTS=("$CRITMEM_ROOT/scripts/kernel/test-kernel.config" "$CRITMEM_ROOT/scripts/kernel/debug-kernel.config")
        MAKE_VARS=("CC=clang-$LLVM_VERSION")
        ;;
    *) die "unknown kernel variant '$VARIANT': use test or debug" ;;
esac
# Bump when this script changes how the kernel is built.
KERNEL_RECIPE=1

kernel_key() {
    {
        echo "$KERNEL_SRC_PKG=$KERNEL_SRC_VERSION"
        rustc --version
        bindgen --version 2>/dev/null || true
        gcc --version | head -1
        # Only a variant with make variables adds lines, so the keys of
        # the others stay as they were.
        local v
        for v in ${MAKE_VARS[@]+"${MAKE_VARS[@]}"}; do
            echo "make $v"
            case "$v" in CC=*) "${v#CC=}" --version | head -1 ;; esac
        done
        echo "recipe $KERNEL_RECIPE"
        cat "${FRAGMENTS[@]}"
    } | sha256sum | cut -c1-16
}

fetch_source() {
    local upstream=${KERNEL_SRC_VERSION%%-*}
    SRC_DIR=$CRITMEM_CACHE/src/linux-$KERNEL_SRC_VERSION
    if [ -f "$SRC_DIR/Makefile" ]; then
        return
    fi
    mkdir -p "$APT_DIR/download"
    [ -f "$APT_DIR/download/sources.list" ] || die "run scripts/setup-toolchain.sh first"
    local tmp
    tmp=$(mktemp -d)
    log "kernel source: downloading $KERNEL_SRC_PKG=$KERNEL_SRC_VERSION ($upstream) from $KERNEL_SRC_SUITE"
    (cd "$tmp" && private_apt download download "$KERNEL_SRC_PKG=$KERNEL_SRC_VERSION" >/dev/null) ||
        die "cannot fetch $KERNEL_SRC_PKG=$KERNEL_SRC_VERSION from $KERNEL_SRC_SUITE; that exact version is required (see KERNEL_SRC_VERSION in scripts/lib.sh)"
    dpkg-deb --fsys-tarfile "$tmp"/${KERNEL_SRC_PKG}_*.deb |
        tar -x -C "$tmp" --wildcards './usr/src/*.tar.*'
    mkdir -p "$SRC_DIR.tmp"
    tar -x -C "$SRC_DIR.tmp" --strip-components=1 -f "$tmp"/usr/src/${KERNEL_SRC_PKG}.tar.*
    rm -rf "$tmp" "$SRC_DIR"
    mv "$SRC_DIR.tmp" "$SRC_DIR"
}

main() {
    local rv key
    rv=$(rustc_version)
    export RUST_LIB_SRC=$TOOLS_DIR/rust-src-$rv/usr/lib/rustlib/src/rust/library
    [ -d "$RUST_LIB_SRC" ] || die "rust-src for rustc $rv missing; run scripts/setup-toolchain.sh"
    command -v bindgen >/dev/null || die "bindgen missing; run scripts/setup-toolchain.sh"

    key=$(kernel_key)
    KDIR=$CRITMEM_CACHE/kernel/$key
    if [ -f "$KDIR/.critmem-complete" ]; then
        log "kernel ($VARIANT): cached build $KDIR"
        echo "$KDIR"
        return
    fi

    fetch_source
    rm -rf "$KDIR"
    mkdir -p "$KDIR"
    local cc
    for cc in ${MAKE_VARS[@]+"${MAKE_VARS[@]}"}; do
        case "$cc" in CC=*) command -v "${cc#CC=}" >/dev/null || die "${cc#CC=} missing; run scripts/setup-toolchain.sh" ;; esac
    done
    local mk=(make -s -C "$SRC_DIR" O="$KDIR" ARCH=x86_64 LLVM= "RUST_LIB_SRC=$RUST_LIB_SRC" ${MAKE_VARS[@]+"${MAKE_VARS[@]}"})
    log "kernel ($VARIANT): configuring (tinyconfig + ${FRAGMENTS[*]##*/})"
    "${mk[@]}" tinyconfig >/dev/null
    (cd "$KDIR" && "$SRC_DIR/scripts/kconfig/merge_config.sh" -m .config "${FRAGMENTS[@]}" >/dev/null)
    "${mk[@]}" olddefconfig >/dev/null
    # merge_config warns but does not fail when a symbol is dropped; a missing
    # requirement must stop the build instead of producing a kernel that
    # fails tests in confusing ways later. A later fragment overrides an
    # earlier one, as in merge_config.
    local line sym val got
    declare -A wanted=()
    while IFS= read -r line; do
        case "$line" in CONFIG_*=*) ;; *) continue ;; esac
        wanted[${line%%=*}]=${line#*=}
    done < <(cat "${FRAGMENTS[@]}")
    for sym in "${!wanted[@]}"; do
        val=${wanted[$sym]}
        got=$(grep -E "^$sym=|^# $sym is not set" "$KDIR/.config" || true)
        if [ "$val" = n ]; then
            case "$got" in "" | "# $sym is not set") ;; *) die "kernel config: $sym should be off, got '$got'" ;; esac
        elif [ "$got" != "$sym=$val" ]; then
            die "kernel config: wanted $sym=$val, got '${got:-unset}' (a dependency is missing from the fragment)"
        fi
    done
    "${mk[@]}" rustavailable >/dev/null || die "make rustavailable failed"
    # Measured on 2 cores: about 6 minutes, and about 10 for the clang-built
    # KASAN debug kernel.
    local estimate=360
    [ "$VARIANT" = debug ] && estimate=600
    with_progress "kernel build ($VARIANT: bzImage modules_prepare)" "$estimate" \
        "${mk[@]}" -j"$(nproc)" bzImage modules_prepare
    # `make modules` writes Module.symvers, which out-of-tree Rust modules
    # need to resolve the kernel crate's symbols at modpost.
    "${mk[@]}" -j"$(nproc)" modules
    [ -f "$KDIR/Module.symvers" ] || die "kernel build produced no Module.symvers"
    echo "$SRC_DIR" >"$KDIR/.critmem-src"
    : >"$KDIR/.critmem-make-vars"
    for cc in ${MAKE_VARS[@]+"${MAKE_VARS[@]}"}; do
        echo "$cc" >>"$KDIR/.critmem-make-vars"
    done
    touch "$KDIR/.critmem-complete"
    log "kernel ($VARIANT): built $KDIR"
    echo "$KDIR"
}

main "$@"
