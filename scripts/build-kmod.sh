#!/usr/bin/env bash
# Builds kmod/critmem.ko against the cached test kernel. Prints the .ko path.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KDIR=${KDIR:-$("$CRITMEM_ROOT/scripts/build-kernel.sh")}
export RUST_LIB_SRC=$TOOLS_DIR/rust-src-$(rustc_version)/usr/lib/rustlib/src/rust/library
log "kmod: building critmem.ko against $KDIR"
make -s -C "$CRITMEM_ROOT/kmod" KDIR="$KDIR" >&2 || die "critmem.ko failed to build"
echo "$CRITMEM_ROOT/kmod/critmem.ko"
