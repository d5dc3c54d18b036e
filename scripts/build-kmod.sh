#!/usr/bin/env bash
# Builds kmod/critmem.ko against a cached test kernel. Prints the .ko path.
#
#   scripts/build-kmod.sh [test|debug]
#
# `test` (the default) builds in kmod/ itself, as the README's commands do.
# `debug` builds a copy of kmod/ and abi/ under target/kmod-debug/ against the
# debug kernel, so the two builds never share objects.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VARIANT=${1:-test}
KDIR=${KDIR:-$(bash "$CRITMEM_ROOT/scripts/build-kernel.sh" "$VARIANT")}
export RUST_LIB_SRC=$TOOLS_DIR/rust-src-$(rustc_version)/usr/lib/rustlib/src/rust/library
SRC=$CRITMEM_ROOT/kmod
if [ "$VARIANT" != test ]; then
    # kmod/ includes ../abi/critmem_abi.rs, so the copy keeps that layout.
    tree=$CRITMEM_ROOT/target/kmod-$VARIANT
    rm -rf "$tree/kmod"
    mkdir -p "$tree/kmod" "$tree/abi"
    # The module's sources: every .rs under kmod/ except the host tests.
    (cd "$CRITMEM_ROOT/kmod" && find . -name '*.rs' -not -path './host-tests/*' -print0 |
        xargs -0 cp --parents -t "$tree/kmod/") || die "cannot copy kmod/ to $tree"
    cp "$CRITMEM_ROOT"/kmod/{Kbuild,Makefile} "$tree/kmod/"
    cp "$CRITMEM_ROOT"/abi/critmem_abi.rs "$tree/abi/"
    SRC=$tree/kmod
fi
log "kmod ($VARIANT): building critmem.ko against $KDIR"
make -s -C "$SRC" KDIR="$KDIR" >&2 || die "critmem.ko failed to build"
echo "$SRC/critmem.ko"
