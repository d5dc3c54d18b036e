# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
#
# Bad --disk input. Each case: vmm exits non-zero before the guest runs,
# with one error line that names the problem and its fix; no slice is
# taken from the pool, no vmm is left running, and the image is unchanged
# to the byte. The cases: a missing image, a directory, an empty image, an
# image vmm may not write opened read-write (as user nobody), a malformed
# --disk, one image given twice read-write (also through a symlink), an
# image another vmm is using, and more disks than PCI bus 0 has slots.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
truncate -s 16M /tmp/good.img
good_sha=$(sha256sum </tmp/good.img | cut -d' ' -f1)

# bad_disk WHAT EXPECTED-ERROR-REGEX VMM-ARGS...: one case.
bad_disk() {
    refused_at_start "$@"
    assert_eq "$(sha256sum </tmp/good.img | cut -d' ' -f1)" "$good_sha" "$1: /tmp/good.img unchanged"
}

bad_disk "missing image" \
    '^vmm: error: --disk path=/tmp/nope.img: no such file; create the image first \(for example `truncate -s 1G /tmp/nope.img` and `mkfs.ext4 /tmp/nope.img`\)$' \
    --disk path=/tmp/nope.img
mkdir -p /tmp/adir
bad_disk "a directory" \
    '^vmm: error: --disk path=/tmp/adir: is a directory; give the path of a raw image file$' \
    --disk path=/tmp/adir
: >/tmp/empty.img
bad_disk "an empty image" \
    '^vmm: error: --disk path=/tmp/empty.img: the image is 0 bytes, less than one 512-byte sector' \
    --disk path=/tmp/empty.img
bad_disk "a malformed --disk" \
    "invalid value '/tmp/good.img' for '--disk <path=IMAGE,...>': --disk \"/tmp/good.img\": '/tmp/good.img' is not KEY=VALUE; write it as path=IMAGE\[,readonly=on\|off\]\[,serial=ID\]" \
    --disk /tmp/good.img
bad_disk "an unknown key" \
    "--disk \"path=/tmp/good.img,ro=on\": unknown key 'ro'; the keys are path, readonly and serial" \
    --disk path=/tmp/good.img,ro=on
bad_disk "one image twice read-write" \
    '^vmm: error: --disk path=/tmp/good.img and --disk path=/tmp/good.img are the same image, and a guest writing it through two disks would corrupt it; give one of them readonly=on' \
    --disk path=/tmp/good.img --disk path=/tmp/good.img
ln -sf /tmp/good.img /tmp/link.img
bad_disk "one image twice, through a symlink" \
    '^vmm: error: --disk path=/tmp/good.img and --disk path=/tmp/link.img are the same image' \
    --disk path=/tmp/good.img --disk path=/tmp/link.img,readonly=off
set --
i=0
while [ $i -lt 32 ]; do
    truncate -s 1M /tmp/many$i.img
    set -- "$@" --disk path=/tmp/many$i.img
    i=$((i + 1))
done
bad_disk "32 disks" \
    '^vmm: error: 32 devices asked for: PCI bus 0 has room for 31 \(32 slots, the host bridge takes one\); give fewer --disk and --net options$' \
    "$@"

# As user nobody, who may read the image but not write it.
chmod 644 /tmp/good.img
out=$(su -s /bin/sh nobody -c "vmm --kernel $GUEST_KERNEL --disk path=/tmp/good.img" 2>&1 </dev/null)
rc=$?
echo "$out"
[ "$rc" != 0 ] || fail "nobody: vmm exited 0"
assert_match "$out" '^vmm: error: --disk path=/tmp/good.img: cannot open it read-write: permission denied; give this user write access to it, or add readonly=on$' "an image vmm may not write, opened read-write"
# With readonly=on the disk is no longer the problem: /dev/kvm is.
out=$(su -s /bin/sh nobody -c "vmm --kernel $GUEST_KERNEL --disk path=/tmp/good.img,readonly=on" 2>&1 </dev/null)
echo "$out"
assert_match "$out" '^vmm: error: cannot open /dev/kvm' "readonly=on gets nobody past the disk, to /dev/kvm"

# An image another vmm is using: the first holds it read-write while its
# guest runs.
vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M --disk path=/tmp/good.img \
    --cmdline "console=ttyS0 panic=-1 i8042.noaux guest.sleep=600" >/tmp/holder.out 2>&1 </dev/null &
holder=$!
wait_for /tmp/holder.out "CRITMEM-GUEST-UP" 240 || { cat /tmp/holder.out; fail "the first vmm's guest did not come up"; }
bad_disk "an image another vmm uses" \
    '^vmm: error: --disk path=/tmp/good.img: another process is using the image \(it holds the image\); stop it first, or give both readonly=on$' \
    --disk path=/tmp/good.img
bad_disk "an image another vmm uses read-write, asked read-only" \
    '^vmm: error: --disk path=/tmp/good.img: another process is using the image \(it holds the image read-write\); stop it first' \
    --disk path=/tmp/good.img,readonly=on
kill -KILL $holder
wait $holder
pgrep -x vmm && fail "a vmm is still running"
ok "no vmm left running"
