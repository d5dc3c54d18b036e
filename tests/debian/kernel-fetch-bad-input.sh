#!/usr/bin/env bash
# The bad inputs of `scripts/debian-kernel fetch`: each stops with an error
# that names the fix, and downloads nothing. Each case runs a copy of the
# script beside an edited copy of scripts/debian-kernels, against this
# machine's private apt list (scripts/setup-toolchain.sh writes it).
#
#   bash tests/debian/kernel-fetch-bad-input.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/scripts"
cp "$CRITMEM_ROOT/scripts/lib.sh" "$CRITMEM_ROOT/scripts/debian-kernel" "$TMP/scripts/"
ORIG=$CRITMEM_ROOT/scripts/debian-kernels
EHOST=$(grep -vE '^\s*(#|$)' "$ORIG" | awk '$5 == "ehost" {print $1; exit}')
[ -n "$EHOST" ] || fail "scripts/debian-kernels has no ehost line"

# expect_error NAME REGEX [ARG...]: `debian-kernel ARG...` fails and its
# error matches REGEX (CASE_CACHE, when set, is its $CRITMEM_CACHE).
expect_error() {
    local name=$1 want=$2 out rc=0
    shift 2
    out=$(CRITMEM_CACHE=${CASE_CACHE:-$CRITMEM_CACHE} bash "$TMP/scripts/debian-kernel" "$@" 2>&1) || rc=$?
    [ "$rc" != 0 ] || fail "$name: exited 0: $out"
    grep -qE -- "$want" <<<"$out" || fail "$name: error '$out' does not match /$want/"
    echo "ok: $name: $out"
}

# edit SED-EXPRESSION: the copy of scripts/debian-kernels, edited.
edit() { sed "$1" "$ORIG" >"$TMP/scripts/debian-kernels"; }

edit ''
expect_error "no subcommand" 'usage: scripts/debian-kernel fetch \[RELEASE\]'
expect_error "two releases" 'usage: scripts/debian-kernel fetch \[RELEASE\]' fetch a b
expect_error "unknown release" "'no-such-release' is not a release of scripts/debian-kernels .*add a line for it there" fetch no-such-release

edit "/ ehost\$/s/\\S*\\(\\s*trixie-backports\\)/7.3.4-0~gone1,7.3.4-0~gone2\\1/"
expect_error "no listed version" 'none of the versions 7\.3\.4-0~gone1 7\.3\.4-0~gone2 .*madison lists now: linux-binary-\S*: \S.*linux-base-.*linux-modules-.*add that version to scripts/debian-kernels' fetch

edit "/ ehost\$/s/trixie-backports/forky/"
expect_error "suite not in the private list" "names suite 'forky'.*list that suite in write_private_sources" fetch

edit "s/ ehost\$/ build/"
expect_error "no ehost line" "no line of scripts/debian-kernels has role 'ehost'" fetch

edit "s/ build\$/ ehost/"
expect_error "two ehost lines" "several lines of scripts/debian-kernels have role 'ehost'" fetch

edit ''
CASE_CACHE=$TMP/empty-cache expect_error "no private list" 'no private apt list at .*run scripts/setup-toolchain.sh first' fetch
echo "debian-kernel fetch: every bad input refused"
