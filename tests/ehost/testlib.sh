# shellcheck shell=sh
# Helpers for emulated-host scenarios. Sourced first by every scenario:
#     . /lib/critmem/testlib.sh
# A scenario passes when it exits 0; `fail` ends it with a message.

set -u

CRITMEM_KO=/lib/critmem/critmem.ko
GUEST_KERNEL=/guest/bzImage
GUEST_INITRAMFS=/guest/initramfs.cpio.gz
# Debian's stock kernel as a guest, with `# ehost-extra: debian-guest`.
DEBIAN_GUEST_KERNEL=/guest/debian/vmlinuz
DEBIAN_GUEST_INITRAMFS=/guest/debian/initramfs.cpio.gz

fail() {
    echo "FAIL: $*"
    exit 1
}

note() { echo "note: $*"; }

ok() { echo "ok: $*"; }

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
    ok "$3 = $1"
}

# assert_match TEXT EXTENDED-REGEX WHAT
assert_match() {
    printf '%s\n' "$1" | grep -qE -- "$2" || fail "$3: '$1' does not match /$2/"
    ok "$3"
}

# assert_no_match TEXT EXTENDED-REGEX WHAT
assert_no_match() {
    if printf '%s\n' "$1" | grep -qE -- "$2"; then
        fail "$3: '$1' matches /$2/"
    fi
    ok "$3"
}

# critmem_load [module params...]: insmod critmem.ko, failing the scenario
# with the kernel's messages when it refuses.
critmem_load() {
    insmod "$CRITMEM_KO" "$@" || fail "insmod critmem.ko $*: $(dmesg | grep critmem | tail -n 3)"
}

# critmem_key KEY: the value of KEY in /proc/critmem, as the kernel writes
# it; empty, with the reason on stderr, when the file is missing or
# malformed. Read by the one parser of the file (cmtool map-file).
critmem_key() {
    cmtool map-file "$1"
}

# critmem_wait_zeroed [SECONDS]: waits until the background worker has
# zeroed all free memory (free_zeroed == free), as a first mmap without
# ALLOC needs (it takes only zeroed memory); fails after SECONDS (120).
critmem_wait_zeroed() {
    _i=0
    until [ "$(critmem_key free_zeroed)" = "$(critmem_key free)" ]; do
        _i=$((_i + 1))
        [ $_i -lt $((${1:-120} * 10)) ] || fail "free memory not zeroed after ${1:-120} s: $(cat /proc/critmem)"
        sleep 0.1
    done
}

# critmem_wait_free [SECONDS]: waits until every slice is back, free ==
# size (default 10 s); fails with /proc/critmem otherwise.
critmem_wait_free() {
    _i=0
    until [ "$(critmem_key free)" = "$(critmem_key size)" ]; do
        _i=$((_i + 1))
        [ $_i -lt $((${1:-10} * 10)) ] || fail "slices not released after ${1:-10} s: $(cat /proc/critmem)"
        sleep 0.1
    done
}

# holder_ready FILE PID [SECONDS]: waits until the `cmtool ... --hold`
# process PID, whose output goes to FILE, prints `ready=1` (default 60 s);
# fails with its output if it exits or the time runs out first.
holder_ready() {
    _i=0
    until grep -q '^ready=1' "$1"; do
        _i=$((_i + 1))
        [ $_i -lt $((${3:-60} * 10)) ] && kill -0 "$2" 2>/dev/null || fail "holder: $(cat "$1")"
        sleep 0.1
    done
}

# kconfig_enabled SYMBOL: succeeds when the running kernel was built with
# CONFIG_SYMBOL=y: read from /proc/config.gz (the test kernels), or from
# /lib/critmem/kernel.config, the config file that scripts/ehost ships with
# Debian's kernel, which has no /proc/config.gz. The debug test kernel and
# Debian's have STRICT_DEVMEM=y, so scenarios ask `kconfig_enabled
# STRICT_DEVMEM` to learn that /dev/mem refuses RAM there.
kconfig_enabled() {
    if [ -r /proc/config.gz ]; then
        zcat /proc/config.gz | grep -qx "CONFIG_$1=y"
    elif [ -r /lib/critmem/kernel.config ]; then
        grep -qx "CONFIG_$1=y" /lib/critmem/kernel.config
    else
        fail "neither /proc/config.gz nor /lib/critmem/kernel.config: the test kernels need CONFIG_IKCONFIG_PROC=y, and scripts/ehost ships another kernel's config file"
    fi
}

# assert_devmem_refused ADDR WHAT: a /dev/mem read at ADDR fails with EPERM,
# as a STRICT_DEVMEM kernel answers for System RAM and for ranges a driver
# claimed exclusively.
assert_devmem_refused() {
    if _out=$(cmtool physread --via devmem "$1" 8 2>&1); then
        fail "$2: /dev/mem read at $1 succeeded ($_out), expected EPERM"
    fi
    assert_match "$_out" 'Operation not permitted' "$2: /dev/mem refuses $1 with EPERM"
}

# nested_vms_on_one_cpu: pins this scenario, and so every VMM it starts
# (children inherit the affinity), to the emulated host's CPU 0. A nested
# guest's IPIs between its vCPUs are otherwise cross-CPU wake-ups inside
# the emulated host, which QEMU's TCG emulation of nested SVM does not
# always survive (README, limitations: 5 of 6 8-vCPU boots unpinned, 19 of
# 20 pinned); on one CPU they are wake-ups on that CPU. A setting of the
# test harness only: vmm itself pins nothing.
nested_vms_on_one_cpu() {
    taskset -p 1 $$ >/dev/null || fail "cannot pin the scenario to CPU 0 (taskset)"
}

# hex VALUE: prints VALUE (decimal or 0x-hex) as 0x-hex.
hex() { printf '0x%x' "$(($1))"; }

# wait_for FILE EXTENDED-REGEX SECONDS: returns 0 as soon as a line of FILE
# matches, 1 after SECONDS without one.
wait_for() {
    _i=0
    while [ $_i -lt $(($3 * 10)) ]; do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
        _i=$((_i + 1))
    done
    return 1
}

# le_hex VALUE: the 4 bytes of the 32-bit VALUE in memory order (little
# endian), as `cmtool physread ADDR 4` prints them after `data=`.
le_hex() {
    printf '%02x%02x%02x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) \
        $((($1 >> 16) & 255)) $((($1 >> 24) & 255))
}

# random_u32: a random 32-bit value as 0x-hex (8 digits), for markers.
random_u32() { echo "0x$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"; }

# slice_of PID KEY: KEY (start, end_inclusive, size, id, state) of the live
# slice owned by PID in /proc/critmem; empty when PID owns none.
slice_of() {
    cmtool map-file --slice-of "$1" "$2"
}

# guest_whole NAME critical|normal CPUS KERNEL INITRAMFS [CMDLINE...]: a
# guest's whole life as a user runs it, with every check a user would make:
# - vmm boots KERNEL with CPUS vCPUs, 256 MiB and the extra CMDLINE, on a
#   critmem slice (critical) or anonymous memory (normal);
# - the guest sees CPUS CPUs online, and its log has no ACPI error or
#   warning (`ACPI Error`, `ACPI BIOS Error`, `ACPI Warning`, ...);
# - the guest finds the PCI root bridge in the DSDT and, on bus 0, the host
#   bridge;
# - the guest writes a random marker at guest-physical 0x0c000000, which a
#   third party reading host physical memory finds at slice start + GPA and
#   only there (critical), or nowhere in the pool (normal);
# - SIGTERM presses the ACPI power button; the guest's acpid and init power
#   off: vmm exits 0 with `vmm: guest powered off` and its statistics, and
#   the slice returns to the pool.
# The guest's console is in /tmp/NAME.out and vmm's own lines in
# /tmp/NAME.err: vmm writes its SIGTERM line while the guest's console is
# busy answering the press, and in one file the two can interleave
# mid-line.
guest_whole() {
    _name=$1 _mode=$2 _cpus=$3 _kernel=$4 _initrd=$5
    shift 5
    _out=/tmp/$_name.out _err=/tmp/$_name.err _gpa=0x0c000000 _marker=$(random_u32)
    _free0=$(critmem_key free)
    _memopt=
    [ "$_mode" = critical ] && _memopt=--critical-mem
    note "$_name: $_mode VM, $_cpus vCPUs, $(basename "$_kernel"); marker $_marker at guest-physical $_gpa"
    # shellcheck disable=SC2086
    vmm --kernel "$_kernel" --initramfs "$_initrd" --memory 256M --cpus "$_cpus" $_memopt \
        --shutdown-timeout 60 \
        --cmdline "console=ttyS0 panic=-1 i8042.noaux memmap=4K\$$_gpa guest.devmem=$_gpa:$_marker guest.sleep=600 $*" \
        >"$_out" 2>"$_err" </dev/null &
    _pid=$!
    wait_for "$_out" "CRITMEM-GUEST-DEVMEM|CRITMEM-GUEST-DONE" 240 || { cat "$_out" "$_err"; fail "$_name: the guest did not write its marker"; }
    if [ "$_mode" = critical ]; then
        _start=$(slice_of "$_pid" start)
        [ -n "$_start" ] || fail "$_name: no slice of pid $_pid in /proc/critmem: $(cat /proc/critmem)"
        _phys=$(hex $((_start + _gpa)))
        _read_back=$(cmtool physread "$_phys" 4)
    fi
    _during_free=$(critmem_key free)
    _scan=$(cmtool physscan "$(critmem_key start)" "$(critmem_key size)" "$_marker")
    # Let acpid start before the press.
    wait_for "$_out" "CRITMEM-GUEST-ACPID" 30 || { cat "$_out" "$_err"; fail "$_name: the guest's acpid did not start"; }
    kill -TERM $_pid
    wait $_pid
    _rc=$?
    cat "$_out" "$_err"
    _log=$(cat "$_out")
    _vmm_log=$(cat "$_err")
    assert_eq "$_rc" 0 "$_name: vmm exit status after SIGTERM"
    assert_match "$_log" "CRITMEM-GUEST-UP cpus=$_cpus " "$_name: the guest sees $_cpus CPUs online"
    if [ "$_cpus" -gt 1 ]; then
        assert_match "$_log" "smp: Brought up 1 node, $_cpus CPUs" "$_name: the kernel brought up every vCPU"
    fi
    assert_match "$_log" "ACPI: button: Power Button \[PWRF\]" "$_name: the guest found the ACPI power button"
    assert_match "$_log" "ACPI: PCI Root Bridge \[PCI0\] \(domain 0000 \[bus 00\]\)" "$_name: the guest found the PCI root bridge in the DSDT"
    assert_match "$_log" "^CRITMEM-GUEST-PCI 0000:00:00\.0=1b36:0008[[:space:]]*$" "$_name: the guest enumerated bus 0: the host bridge, nothing else"
    assert_no_match "$_log" "ACPI( BIOS)? (Error|Warning)|ACPI[^:]*: .*(FW_BUG|\[Firmware Bug\])" "$_name: no ACPI error or warning in the guest log"
    assert_match "$_log" "CRITMEM-GUEST-DEVMEM addr=$_gpa value=$_marker" "$_name: the guest read its marker back"
    if [ "$_mode" = critical ]; then
        assert_match "$_vmm_log" "^vmm: guest memory: critmem slice " "$_name: backing line"
        assert_eq "$_read_back" "data=$(le_hex "$_marker")" "$_name: host physical memory at slice start $_start + $_gpa = $_phys"
        assert_eq "$_scan" "found=1 first=$_phys scanned=$(critmem_key size)" "$_name: a pool scan finds the marker only there"
    else
        assert_match "$_vmm_log" "^vmm: guest memory: anonymous" "$_name: backing line"
        assert_eq "$_during_free" "$_free0" "$_name: the normal VM took nothing from the pool"
        assert_eq "$_scan" "found=0 first=none scanned=$(critmem_key size)" "$_name: a pool scan does not find the marker"
    fi
    assert_match "$_vmm_log" "^vmm: SIGTERM: asking the guest to shut down \(ACPI power button\); 60 s until it is stopped$" "$_name: SIGTERM pressed the power button"
    assert_match "$_log" "^CRITMEM-GUEST-POWER-BUTTON" "$_name: the guest's acpid saw the press"
    assert_match "$_log" "^CRITMEM-GUEST-POWEROFF" "$_name: the guest's init powered off"
    assert_match "$_log" "ACPI: PM: Preparing to enter system sleep state S5" "$_name: the guest entered S5"
    assert_match "$_vmm_log" "^vmm: guest powered off$" "$_name: vmm saw the power-off"
    assert_match "$_vmm_log" "^kvm-stage2: " "$_name: statistics line"
    assert_eq "$(critmem_key free)" "$_free0" "$_name: free bytes after exit"
}

# make_disk_image IMAGE: a 64 MiB ext4 image made with `mkfs.ext4 -d`,
# holding in/known.bin (1 MiB and 3 bytes of random data, so its last
# sector is partial) and in/hello.txt; prints the sha256 of in/known.bin.
make_disk_image() {
    _tree=$(mktemp -d)
    mkdir -p "$_tree/in"
    { head -c 1048576 /dev/urandom; printf 'end'; } >"$_tree/in/known.bin"
    echo "hello from the emulated host" >"$_tree/in/hello.txt"
    /sbin/mkfs.ext4 -q -F -d "$_tree" "$1" 64M >/dev/null 2>&1 || fail "mkfs.ext4 -d $_tree $1 failed"
    echo "$(sha256sum <"$_tree/in/known.bin" | cut -d' ' -f1) $(od -An -tx1 -N16 "$_tree/in/known.bin" | tr -d ' \n')"
    rm -rf "$_tree"
}

# disk_case NAME critical|normal rw|ro KERNEL INITRAMFS [CMDLINE...]: a
# guest's life with a virtio-blk disk as a user runs it:
# - vmm boots KERNEL with `--disk path=/tmp/NAME.img,serial=NAME` (and
#   readonly=on for `ro`) on a critmem slice or anonymous memory;
# - the guest finds the virtio-blk function on bus 0, with the serial and
#   read-only flag set, mounts the disk, and reads in/known.bin with the
#   sha256 the emulated host made, its requests completing through the
#   device's MSI-X vector;
# - critical: the page that virtio-blk DMA'd in/known.bin's first bytes
#   into is, read by a third party through host physical memory, at slice
#   start + its guest-physical address;
# - rw: the guest writes out/guest.bin; ro: its write is refused;
# - SIGTERM powers the guest off, which unmounts the disk; vmm exits 0;
# - the emulated host mounts the image read-only (which fails on a journal
#   left dirty) and finds out/guest.bin with the guest's sha256 (rw), or
#   the image unchanged to the byte (ro).
disk_case() {
    _name=$1 _mode=$2 _access=$3 _kernel=$4 _initrd=$5
    shift 5
    _img=/tmp/$_name.img _out=/tmp/$_name.out _err=/tmp/$_name.err
    read -r _known _head <<EOF_IMAGE
$(make_disk_image "$_img")
EOF_IMAGE
    _img_sha0=$(sha256sum <"$_img" | cut -d' ' -f1)
    _memopt= _ro=
    [ "$_mode" = critical ] && _memopt=--critical-mem
    [ "$_access" = ro ] && _ro=,readonly=on
    note "$_name: $_mode VM, $(basename "$_kernel"), disk $_img ($_access), in/known.bin sha256 $_known"
    # shellcheck disable=SC2086
    vmm --kernel "$_kernel" --initramfs "$_initrd" --memory 256M $_memopt \
        --disk "path=$_img,serial=$_name$_ro" --shutdown-timeout 60 \
        --cmdline "console=ttyS0 panic=-1 i8042.noaux guest.disk=vda guest.sleep=600 $*" \
        >"$_out" 2>"$_err" </dev/null &
    _pid=$!
    wait_for "$_out" "CRITMEM-GUEST-DISK-(WRITTEN|READONLY)|CRITMEM-GUEST-ERROR|CRITMEM-GUEST-DONE" 240 ||
        { cat "$_out" "$_err"; kill -KILL $_pid; fail "$_name: the guest did not finish its disk work"; }
    if [ "$_mode" = critical ]; then
        # The page the device filled with in/known.bin's first sector, read
        # from outside while the guest still runs.
        _gpa=$(sed -n 's/^CRITMEM-GUEST-DISK-GPA file-gpa: gpa=\(0x[0-9a-f]*\) .*/\1/p' "$_out")
        [ -n "$_gpa" ] || { cat "$_out" "$_err"; kill -KILL $_pid; fail "$_name: the guest did not say where its page is"; }
        _start=$(slice_of "$_pid" start)
        [ -n "$_start" ] || fail "$_name: no slice of pid $_pid in /proc/critmem: $(cat /proc/critmem)"
        _phys=$(hex $((_start + _gpa)))
        _dma_read=$(cmtool physread "$_phys" 16)
    fi
    wait_for "$_out" "CRITMEM-GUEST-ACPID" 30 || { cat "$_out" "$_err"; fail "$_name: the guest's acpid did not start"; }
    kill -TERM $_pid
    wait $_pid
    _rc=$?
    cat "$_out" "$_err"
    _log=$(cat "$_out")
    assert_eq "$_rc" 0 "$_name: vmm exit status after SIGTERM"
    assert_match "$_log" "^CRITMEM-GUEST-PCI 0000:00:00\.0=1b36:0008 0000:00:01\.0=1af4:1042[[:space:]]*$" "$_name: the guest enumerated the host bridge and the virtio-blk function at 00:01.0"
    assert_match "$_log" "^CRITMEM-GUEST-DISK dev=/dev/vda serial=$_name ro=$([ "$_access" = ro ] && echo 1 || echo 0) sectors=131072" "$_name: the guest's disk: serial, read-only flag, size"
    assert_match "$_log" "^CRITMEM-GUEST-DISK-FILE name=known\.bin sha256=$_known" "$_name: the guest read in/known.bin with the host's sha256"
    assert_no_match "$_log" "CRITMEM-GUEST-ERROR" "$_name: no guest-side error"
    assert_match "$_log" "^CRITMEM-GUEST-DISK-IRQS .*virtio0-req\.0=[1-9][0-9]*\(PCI-MSIX" "$_name: the disk's requests completed through its MSI-X vector"
    assert_match "$_log" "^CRITMEM-GUEST-DISK-GPA file-gpa: gpa=0x[0-9a-f]+ head=$_head" "$_name: the guest's page cache holds in/known.bin's first bytes"
    if [ "$_mode" = critical ]; then
        assert_eq "$_dma_read" "data=$_head" "$_name: host physical memory at slice start $_start + GPA $_gpa = $_phys holds the bytes virtio-blk DMA'd"
    fi
    assert_match "$_log" "^CRITMEM-GUEST-DISK-UNMOUNTED" "$_name: the guest unmounted the disk at power-off"
    assert_match "$_log" "^CRITMEM-GUEST-POWEROFF" "$_name: the guest powered off"
    _check=/tmp/$_name.check
    mkdir -p "$_check"
    if [ "$_access" = ro ]; then
        assert_match "$_log" "^CRITMEM-GUEST-DISK-READONLY write=refused" "$_name: the guest's write to the read-only disk was refused"
        assert_eq "$(sha256sum <"$_img" | cut -d' ' -f1)" "$_img_sha0" "$_name: sha256 of the whole image after the run (unchanged)"
    else
        _written=$(printf '%s\n' "$_log" | sed -n 's/^CRITMEM-GUEST-DISK-WRITTEN sha256=\([0-9a-f]*\) bytes=\([0-9]*\).*/\1 \2/p')
        [ -n "$_written" ] || fail "$_name: the guest did not report its write"
        mount -t ext4 -o loop,ro "$_img" "$_check" || fail "$_name: the image does not mount read-only (a journal left dirty?)"
        assert_eq "$(sha256sum <"$_check/out/guest.bin" | cut -d' ' -f1) $(wc -c <"$_check/out/guest.bin")" "$_written" "$_name: out/guest.bin in the image: sha256 and size as the guest wrote it"
        assert_eq "$(sha256sum <"$_check/in/known.bin" | cut -d' ' -f1)" "$_known" "$_name: in/known.bin in the image, unchanged"
        umount "$_check"
    fi
    rm -f "$_img"
}
