# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
# ehost-kernels: test debug
#
# Who may do what. /dev/critmem is made 0660 root:1000, as bootcfg's udev
# rule makes it root:kvm. ALLOC on a read-only file fails with EBADF and
# cmtool says to open it read-write. An unprivileged user (uid 1000, group
# 1000 only, no capability) gets sizes and ids but 0 for every physical
# address (ALLOC's phys_start, INFO's pool_start and slice_start) and cannot
# read /proc/critmem; root gets the real addresses, as /proc/critmem lists
# them. An ALLOC whose reply cannot be copied out (request in a read-only
# page: EFAULT) leaves the file without a slice and the pool unchanged, and a
# second ALLOC on that file succeeds.
. /lib/critmem/testlib.sh

critmem_load
size=$(critmem_key size)
chown 0:1000 /dev/critmem || fail "chown /dev/critmem"
chmod 0660 /dev/critmem || fail "chmod /dev/critmem"
ls -l /dev/critmem

key() { sed -n "s/^$1=//p" "$2"; }

# A: ALLOC needs a file opened for writing.
cmtool alloc --size 4M --readonly --expect EBADF >/tmp/ro 2>&1 || fail "read-only ALLOC: $(cat /tmp/ro)"
cat /tmp/ro
assert_eq "$(key error /tmp/ro)" EBADF "ALLOC on an O_RDONLY file"
cmtool alloc --size 4M --readonly >/tmp/ro 2>&1 && fail "read-only ALLOC succeeded: $(cat /tmp/ro)"
cat /tmp/ro
assert_match "$(cat /tmp/ro)" '^cmtool: CRITMEM_IOC_ALLOC on /dev/critmem: the file was opened read-only; open it read-write' \
    "cmtool says how to fix the EBADF"
assert_eq "$(critmem_key slices)" 0 "no slice from the read-only file"

# B: an unprivileged caller sees no physical address.
cmtool run-as --uid 1000 --gid 1000 -- alloc --size 4M --info --hold >/tmp/user 2>&1 &
user=$!
holder_ready /tmp/user $user
cat /tmp/user /proc/critmem
assert_eq "$(key phys_start /tmp/user)" 0x0 "unprivileged ALLOC phys_start"
assert_eq "$(key phys_size /tmp/user)" "$((4 << 20))" "unprivileged ALLOC phys_size"
assert_eq "$(key slice_id /tmp/user)" "$(slice_of $user id)" "unprivileged ALLOC slice_id"
assert_eq "$(key info_pool_start /tmp/user)" 0x0 "unprivileged INFO pool_start"
assert_eq "$(key info_slice_start /tmp/user)" 0x0 "unprivileged INFO slice_start"
assert_eq "$(key info_pool_size /tmp/user)" "$size" "unprivileged INFO pool_size"
assert_eq "$(key info_slice_size /tmp/user)" "$((4 << 20))" "unprivileged INFO slice_size"
assert_eq "$(key info_free_bytes /tmp/user)" "$((size - (4 << 20)))" "unprivileged INFO free_bytes"
assert_eq "$(slice_of $user size)" "$((4 << 20))" "/proc/critmem lists the unprivileged slice"
[ "$(slice_of $user start)" != 0x0 ] || fail "the slice's real start is 0"
kill $user
wait $user 2>/dev/null

cmtool run-as --uid 1000 --gid 1000 -- map-file size >/tmp/map 2>&1 && fail "unprivileged read of /proc/critmem: $(cat /tmp/map)"
cat /tmp/map
assert_match "$(cat /tmp/map)" 'cannot read /proc/critmem: Permission denied \(os error 13\)' \
    "an unprivileged user cannot read /proc/critmem (EACCES)"
assert_eq "$(stat -c %a:%u /proc/critmem)" 400:0 "/proc/critmem mode and owner"

# ... and root sees the real ones.
cmtool alloc --size 4M --info --hold >/tmp/root 2>&1 &
root=$!
holder_ready /tmp/root $root
cat /tmp/root
assert_eq "$(key phys_start /tmp/root)" "$(slice_of $root start)" "root ALLOC phys_start is the slice's start"
assert_eq "$(key info_slice_start /tmp/root)" "$(slice_of $root start)" "root INFO slice_start"
assert_eq "$(key info_pool_start /tmp/root)" "$(critmem_key start)" "root INFO pool_start"
kill $root
wait $root 2>/dev/null

# C: a reply that cannot be copied out takes no slice.
i=0
while [ "$(critmem_key free)" != "$size" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "slices not released: $(cat /proc/critmem)"
    sleep 0.1
done
cmtool alloc-efault --size 4M >/tmp/efault 2>&1 || fail "alloc-efault: $(cat /tmp/efault)"
cat /tmp/efault
assert_eq "$(key first_alloc /tmp/efault)" EFAULT "ALLOC with the request in a read-only page"
assert_eq "$(key info_slice_id /tmp/efault)" 0 "the file kept no slice"
assert_eq "$(key free_after /tmp/efault)" "$(key free_before /tmp/efault)" "free unchanged by the failed ALLOC"
assert_eq "$(key second_alloc /tmp/efault)" ok "a second ALLOC on the same file"
assert_eq "$(key second_phys_size /tmp/efault)" "$((4 << 20))" "the second ALLOC's size"
