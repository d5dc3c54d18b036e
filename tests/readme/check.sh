#!/usr/bin/env bash
# Keeps README.md honest; part of `make test`.
#
#   tests/readme/check.sh [--static]
#
# 1. Every shell block of README.md (```sh, ```bash, ```shell, ```console)
#    is preceded by `<!-- readme-test: RUNNER... -->`, and every command of
#    the block appears verbatim (whitespace collapsed, trailing comment
#    dropped) in one of its RUNNERs. A runner is a scenario under
#    tests/scenarios/ (the emulated host runs every one), this directory's
#    host-commands.sh (run below) or .ci/run (which is `make test`). The
#    only escape is `<!-- readme-test: uncovered: REASON -->`, listed on
#    every run.
# 2. The options the README shows agree with `vmm --help` and
#    `critmem-boot <command> --help`: the vmm table lists exactly vmm's
#    options with its defaults, and every option used in a README command
#    exists.
# 3. Unless --static: runs host-commands.sh (the commands that run on this
#    machine, `make demo` among them).
#
# Ends with `readme: N passed, M failed`.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
set +e
cd "$CRITMEM_ROOT"
README=${CRITMEM_README:-README.md}
BIN=$CRITMEM_ROOT/target/x86_64-unknown-linux-gnu/release
HOST_RUNNER=tests/readme/host-commands.sh

passed=0
failed=0
pass() { passed=$((passed + 1)) && echo "PASS readme: $*"; }
flunk() { failed=$((failed + 1)) && echo "FAIL readme: $*"; }

# norm: collapse whitespace, trim, drop a trailing ` # comment`, and join
# backslash-continued lines (stdin -> stdout, one command a line).
norm() {
    awk '{
        sub(/[ \t]+#[^"'\'']*$/, "")
        if (sub(/\\[ \t]*$/, "")) { acc = acc $0 " "; next }
        line = acc $0; acc = ""
        gsub(/[ \t]+/, " ", line); sub(/^ /, "", line); sub(/ $/, "", line)
        if (line != "" && line !~ /^#/) print line
    }'
}

# blocks: `START<TAB>LINE<TAB>MARKER` for each shell block, then its lines
# as `CMD<TAB>text`; `ORPHAN<TAB>LINE` for a shell block without a marker.
blocks() {
    awk '
        /^[ \t]*```/ {
            if (inblock) { inblock = 0; next }
            if (skip) { skip = 0; next }
            lang = $0; sub(/^[ \t]*```/, "", lang)
            if (lang ~ /^(sh|bash|shell|console)$/) {
                inblock = 1
                if (prev ~ /^<!-- readme-test: .* -->$/) {
                    m = prev; sub(/^<!-- readme-test: /, "", m); sub(/ -->$/, "", m)
                    print "START\t" NR "\t" m
                } else print "ORPHAN\t" NR
            } else skip = 1
            next
        }
        skip { next }
        inblock { print "CMD\t" $0; next }
        NF { prev = $0 }
    ' "$README"
}

# covered CMD FILE...: CMD appears in one of the FILEs as whole words.
covered() {
    local cmd=$1 f
    shift
    for f in "$@"; do
        norm <"$f" | awk -v c="$cmd" '{
            s = " " $0 " "
            for (p = 1; (i = index(substr(s, p), c)) > 0; p += i) {
                at = p + i - 1
                if (substr(s, at - 1, 1) ~ /[ (;|&`]/ && substr(s, at + length(c), 1) ~ /[ ;|&)`]/) { found = 1; exit }
            }
        } END { exit !found }' && return 0
    done
    return 1
}

# ---- 1. every command has a runner ---------------------------------------
runners=() line=0 uncovered=0
declare -A RUNNERS_USED=()
while IFS=$'\t' read -r kind a b; do
    case "$kind" in
        ORPHAN) flunk "README.md:$a: shell block without a <!-- readme-test: RUNNER --> line before it" ;;
        START)
            line=$a runners=() uncovered=0
            if [[ "$b" == uncovered:* ]]; then
                uncovered=1
                echo "UNCOVERED README.md:$line: ${b#uncovered: }"
                continue
            fi
            for r in $b; do
                case "$r" in
                    tests/scenarios/*.sh | tests/debian/*.sh | "$HOST_RUNNER" | .ci/run) ;;
                    *) flunk "README.md:$line: runner $r is not a scenario, $HOST_RUNNER or .ci/run" && continue ;;
                esac
                [ -f "$r" ] || { flunk "README.md:$line: runner $r does not exist" && continue; }
                runners+=("$r")
                RUNNERS_USED[$r]=1
            done
            ;;
        CMD)
            [ $uncovered = 1 ] && continue
            while IFS= read -r cmd; do
                if [ ${#runners[@]} -gt 0 ] && covered "$cmd" "${runners[@]}"; then
                    pass "'$cmd' (README.md:$line) is run by ${runners[*]}"
                else
                    flunk "'$cmd' (README.md:$line) is in none of: ${runners[*]:-no runner}"
                fi
            done < <(printf '%s\n' "$a" | norm)
            ;;
        *) flunk "internal: unexpected line from the README parser: $kind" ;;
    esac
done < <(blocks | awk -F'\t' '
    # Join a block`s continued lines before handing them out one by one.
    $1 == "CMD" { l = $2; more = sub(/\\[ \t]*$/, "", l); acc = acc l " "; if (more) next; print "CMD\t" acc; acc = ""; next }
    { print }')

# ---- 2. --help agrees with the README ---------------------------------------
if [ ! -x "$BIN/vmm" ] || [ ! -x "$BIN/critmem-boot" ]; then
    bash scripts/build-userspace.sh >/dev/null || die "cannot build vmm and critmem-boot"
fi
# long_opts: the --options of a --help text (stdin), sorted, without --help/--version.
long_opts() { grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z-]*' | grep -oE -- '--[a-z-]+' | grep -vxE -- '--(help|version)' | sort -u; }

vmm_help=$("$BIN/vmm" --help)
readme_vmm=$(sed -n 's/^| `\(--[a-z-]*\).*/\1/p' "$README" | sort -u)
if [ "$readme_vmm" = "$(echo "$vmm_help" | long_opts)" ]; then
    pass "the README's vmm option table lists exactly the options of vmm --help"
else
    flunk "vmm options: README table vs vmm --help: $(diff <(echo "$readme_vmm") <(echo "$vmm_help" | long_opts) | grep '^[<>]' | tr '\n' ' ')"
fi
# Defaults: `| `--opt ...` | ... | `DEFAULT` |` against `[default: DEFAULT]`.
while IFS=$'\t' read -r opt def; do
    got=$(echo "$vmm_help" | awk -v o="$opt" '
        $0 ~ "^ +" o "( |$)" { on = 1 } on && /\[default: / { sub(/.*\[default: /, ""); sub(/\].*/, ""); gsub(/"/, ""); print; exit }
        on && /^ +--/ && $0 !~ "^ +" o "( |$)" { exit }')
    if [ "$got" = "$def" ]; then
        pass "vmm $opt default '$def' as in vmm --help"
    else
        flunk "vmm $opt: README says default '$def', vmm --help says '${got:-none}'"
    fi
done < <(sed -n 's/^| `\(--[a-z-]*\)[^|]*|[^|]*| `\([^`]*\)` |$/\1\t\2/p' "$README")

# Options used in README commands exist.
while IFS= read -r cmd; do
    read -ra w <<<"$cmd"
    case "${w[0]}" in
        vmm) help=$vmm_help ;;
        critmem-boot) help=$("$BIN/critmem-boot" "${w[1]}" --help 2>&1) || {
            flunk "README command '$cmd': critmem-boot has no command '${w[1]}'"
            continue
        } ;;
        *) continue ;;
    esac
    bad=
    for o in $(printf '%s\n' "${w[@]}" | grep -oE -- '^--[a-z-]+'); do
        echo "$help" | long_opts | grep -qx -- "$o" || bad="$bad $o"
    done
    if [ -z "$bad" ]; then
        pass "'$cmd': every option is in ${w[0]} --help"
    else
        flunk "'$cmd': not in ${w[0]} --help:$bad"
    fi
done < <(blocks | awk -F'\t' '$1 == "CMD" { print $2 }' | norm | grep -E '^(vmm|critmem-boot) ')
# critmem-boot commands named in the text exist.
cb_help=$("$BIN/critmem-boot" --help)
for sub in $(grep -oE 'critmem-boot (plan|apply|remove|status|check|[a-z]+)\b' "$README" | awk '{print $2}' | sort -u); do
    if echo "$cb_help" | grep -qE "^  $sub( |$)"; then
        pass "critmem-boot $sub (named in the README) is in critmem-boot --help"
    else
        flunk "the README names critmem-boot $sub, which critmem-boot --help does not list"
    fi
done

# ---- 3. the host-side runner -----------------------------------------------
if [ "${1:-}" != --static ]; then
    if [ -n "${RUNNERS_USED[$HOST_RUNNER]:-}" ]; then
        if bash "$HOST_RUNNER"; then
            pass "$HOST_RUNNER ran"
        else
            flunk "$HOST_RUNNER failed"
        fi
    fi
fi

echo "readme: $passed passed, $failed failed"
[ $failed = 0 ]
