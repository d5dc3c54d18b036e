#!/usr/bin/env bash
# Builds the userspace binaries as static executables, so they run in the
# emulated host's busybox initramfs with no shared libraries. Prints the
# directory that holds them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGET=x86_64-unknown-linux-gnu
# With an explicit --target, RUSTFLAGS apply to the target binaries only, not
# to build scripts and proc macros, which must stay dynamic.
log "userspace: cargo build --release (static)"
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -q --release --locked --target "$TARGET" \
    --manifest-path "$CRITMEM_ROOT/Cargo.toml" --workspace --bins >&2 ||
    die "userspace build failed"
echo "$CRITMEM_ROOT/target/$TARGET/release"
