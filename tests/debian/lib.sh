# shellcheck shell=bash
# Shared by the tests of tests/debian/: each runs on the build machine,
# against a throw-away overlay of the trixie root (scripts/debian-root) that
# stands in for an operator's Debian 13 host. Sourced, never run.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

# The emulated host's Debian kernel, and the other (build-only) one.
EHOST_RELEASE=$(grep -vE '^\s*(#|$)' "$CRITMEM_ROOT/scripts/debian-kernels" | awk '$5 == "ehost" {print $1; exit}')
RELEASES=$(grep -vE '^\s*(#|$)' "$CRITMEM_ROOT/scripts/debian-kernels" | awk '{print $1}')

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# root_enter: mounts the overlay on $ROOT (torn down at exit), with the
# prepared-tree cache of scripts/debian-kbuild, so that a test pays for
# `make modules_prepare` only when that cache is cold.
root_enter() {
    TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/critmem-debian-test.XXXXXX")
    ROOT=$TEST_DIR/root
    bash "$CRITMEM_ROOT/scripts/debian-root" enter "$ROOT" >/dev/null
    trap root_leave EXIT
    mkdir -p "$CRITMEM_CACHE/debian-kbuild" "$ROOT/var/cache/critmem-kbuild"
    mount --bind "$CRITMEM_CACHE/debian-kbuild" "$ROOT/var/cache/critmem-kbuild"
}
root_leave() {
    local m
    for m in $(awk -v r="$ROOT/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    bash "$CRITMEM_ROOT/scripts/debian-root" leave "$ROOT"
    rm -rf "$TEST_DIR"
}

# in_root CMD...: runs CMD in the root as its root user, with its own PATH.
in_root() {
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# expect_error WANT CMD...: CMD fails, and its stderr has the text WANT.
expect_error() {
    local want=$1 out rc=0
    shift
    out=$(in_root "$@" 2>&1 >/dev/null) || rc=$?
    [ "$rc" != 0 ] || fail "'$*' succeeded; wanted an error with: $want"
    grep -qF -- "$want" <<<"$out" || fail "'$*' failed without the error '$want'; it said: $out"
    printf 'ok: %s\n    -> %s\n' "$*" "$(grep -m1 'error:' <<<"$out")"
}
