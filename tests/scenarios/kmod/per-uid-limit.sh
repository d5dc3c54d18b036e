# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
# ehost-kernels: test debug
#
# Module parameter max_bytes_per_uid: with a limit of 64 MiB, uid 1000's
# two 32 MiB ALLOCs (on two files) succeed, a third ALLOC and an implicit
# mmap fail with EDQUOT (cmtool names the limit), uid 1001 can still ALLOC
# 32 MiB, and once uid 1000's files are closed it can ALLOC again.
. /lib/critmem/testlib.sh

critmem_load max_bytes_per_uid=$((64 << 20))
size=$(critmem_key size)
chown 0:1000 /dev/critmem || fail "chown /dev/critmem"
chmod 0660 /dev/critmem || fail "chmod /dev/critmem"
# A zeroed pool, so that the implicit mmap below can only fail on the limit.
critmem_wait_zeroed 300

# hold NAME UID: a holder of a 32 MiB slice as UID (group 1000); its pid
# in $held.
hold() {
    cmtool run-as --uid "$2" --gid 1000 -- alloc --size 32M --hold >/tmp/"$1" 2>&1 &
    held=$!
    i=0
    until grep -q '^ready=1' /tmp/"$1"; do
        i=$((i + 1))
        [ $i -lt 600 ] && kill -0 $held 2>/dev/null || fail "$1: $(cat /tmp/"$1")"
        sleep 0.1
    done
    ok "$1: uid $2 holds 32 MiB"
}
as() { # UID CMTOOL-ARGS...
    _uid=$1
    shift
    cmtool run-as --uid "$_uid" --gid 1000 -- "$@"
}

hold a1 1000
a1=$held
hold a2 1000
a2=$held
as 1000 alloc --size 32M --expect EDQUOT >/tmp/a3 2>&1 || fail "third ALLOC of uid 1000: $(cat /tmp/a3)"
cat /tmp/a3
assert_eq "$(sed -n 's/^error=//p' /tmp/a3)" EDQUOT "third 32 MiB ALLOC of uid 1000"
assert_match "$(cat /tmp/a3)" "^message=.*per-user limit \(module parameter max_bytes_per_uid\)" "cmtool names the limit"
as 1000 mmap --size 32M --expect EDQUOT >/tmp/a4 2>&1 || fail "implicit mmap of uid 1000: $(cat /tmp/a4)"
cat /tmp/a4
assert_eq "$(sed -n 's/^error=//p' /tmp/a4)" EDQUOT "implicit mmap of uid 1000 over the limit"
as 1000 alloc --size 2M --expect EDQUOT >/tmp/a5 2>&1 || fail "small ALLOC of uid 1000: $(cat /tmp/a5)"
assert_eq "$(sed -n 's/^error=//p' /tmp/a5)" EDQUOT "even 2 MiB more is over the limit"
assert_eq "$(critmem_key slices)" 2 "the refused calls took no slice"

as 1001 alloc --size 32M >/tmp/b1 2>&1 || fail "uid 1001: $(cat /tmp/b1)"
ok "uid 1001 can ALLOC 32 MiB while uid 1000 is at its limit"

kill $a1 $a2
wait $a1 $a2 2>/dev/null
i=0
while [ "$(critmem_key slices)" != 0 ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "uid 1000's slices not released: $(cat /proc/critmem)"
    sleep 0.1
done
as 1000 alloc --size 32M >/tmp/a6 2>&1 || fail "uid 1000 after its files closed: $(cat /tmp/a6)"
ok "uid 1000 can ALLOC again once its files are closed"
as 1000 alloc --size 64M >/tmp/a7 2>&1 || fail "uid 1000, exactly the limit: $(cat /tmp/a7)"
ok "an ALLOC of exactly max_bytes_per_uid is allowed"
