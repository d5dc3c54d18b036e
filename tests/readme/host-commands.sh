#!/usr/bin/env bash
# The README's commands that run on the build machine, verbatim (README
# blocks marked `<!-- readme-test: tests/readme/host-commands.sh -->`).
# tests/readme/check.sh checks that every command of those blocks is here and
# runs this script; `make test` runs check.sh.
#
# Environment a reader would have: KDIR, the kernel build tree (ours, from
# the cache); RUST_LIB_SRC, because our rustc's rust-src comes from Debian
# rather than rustup (as when the kernel was built); INSTALL_MOD_PATH, so
# that modules_install installs into a scratch root instead of this
# machine's /lib/modules.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$CRITMEM_ROOT"

KDIR=$(bash scripts/build-kernel.sh)
export RUST_LIB_SRC=$TOOLS_DIR/rust-src-$(rustc_version)/usr/lib/rustlib/src/rust/library
INSTALL_MOD_PATH=$(mktemp -d)
export INSTALL_MOD_PATH
trap 'rm -rf "$INSTALL_MOD_PATH"' EXIT

step() { printf '\n---- readme (host): %s\n' "$*"; }

step "build and install the module"
make -C kmod KDIR="$KDIR"
make -C "$KDIR" M="$PWD/kmod" modules_install
release=$(cat "$KDIR/include/config/kernel.release")
installed=$(find "$INSTALL_MOD_PATH/lib/modules/$release" -name 'critmem.ko*' | head -n 1)
[ -n "$installed" ] || die "modules_install put no critmem.ko under $INSTALL_MOD_PATH/lib/modules/$release"
grep -q 'critmem.ko' "$INSTALL_MOD_PATH/lib/modules/$release/modules.dep" ||
    die "modules.dep of $release does not list critmem.ko"
echo "ok: installed ${installed#"$INSTALL_MOD_PATH"}, listed in modules.dep"

step "make demo"
make demo
echo "ok: make demo"

step "make demo with 1 GiB stage-2 pages"
out=$(make demo GUEST_MEM=1G POOL=2G ALIGN=1G HOST_MEM=8G) || { echo "$out" && die "make demo with 1 GiB pages failed"; }
echo "$out"
echo "$out" | grep -qE '^KVM stage-2 pages +4 KiB: [0-9]+ +2 MiB: [0-9]+ +1 GiB: [1-9][0-9]* +\|' ||
    die "the critical VM got no 1 GiB stage-2 pages, as the README says it does"
echo "ok: the critical VM has 1 GiB stage-2 pages"
