# shellcheck shell=bash
# Common settings for every critmem script. Sourced, never run.
#
# Everything built or downloaded lives in $CRITMEM_CACHE, outside the clone,
# so a fresh clone reuses a warm cache and `git clean` never costs a rebuild.

set -euo pipefail

CRITMEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CRITMEM_CACHE=${CRITMEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/critmem}

# Pinned inputs. Changing one of these changes the cache keys below.
KERNEL_SRC_PKG=linux-source-7.2
KERNEL_SRC_VERSION=7.2.12-1~bpo13+1
KERNEL_SRC_SUITE=trixie-backports
BINDGEN_VERSION=0.72.1
LLVM_VERSION=19
QEMU_SUITE=bookworm-backports
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

TOOLS_DIR=$CRITMEM_CACHE/tools
APT_DIR=$CRITMEM_CACHE/apt
export LIBCLANG_PATH=/usr/lib/llvm-$LLVM_VERSION/lib
export PATH=$TOOLS_DIR/bin:$HOME/.cargo/bin:$PATH

log() { printf '[critmem %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[critmem] error: %s\n' "$*" >&2; exit 1; }

# The rustc that builds the kernel and the userspace: the one on PATH.
rustc_version() { rustc --version | awk '{print $2}'; }

# apt-get (or apt-cache for "madison") restricted to one of the private
# sources lists under $APT_DIR (see setup-toolchain.sh), so the system's own
# sources, and what later `apt-get install` calls pick, are never touched.
private_apt() {
    local kind=$1 tool=apt-get
    shift
    [ "$1" = madison ] && tool=apt-cache
    "$tool" -q -o Dir::Etc::sourcelist="$APT_DIR/$kind/sources.list" \
        -o Dir::Etc::sourceparts=/dev/null \
        -o Dir::State::Lists="$APT_DIR/$kind/lists" \
        -o Dir::Cache::archives="$APT_DIR/$kind/archives" \
        -o APT::Sandbox::User=root "$@"
}

# Runs "$@" while printing elapsed time against an estimate every 20 s, so a
# long step never looks hung in CI logs or on a terminal.
with_progress() {
    local what=$1 estimate=$2
    shift 2
    local start=$SECONDS
    "$@" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        local el=$((SECONDS - start))
        if ((el > 0 && el % 20 == 0)); then
            local left=$((estimate - el))
            if ((left > 0)); then
                log "$what: ${el}s elapsed, about ${left}s left (estimate ${estimate}s on 2 cores)"
            else
                log "$what: ${el}s elapsed, over the ${estimate}s estimate, still working"
            fi
        fi
    done
    wait "$pid"
}
