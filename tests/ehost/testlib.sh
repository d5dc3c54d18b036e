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

# press_power_button NAME PID: once the guest's acpid listens (its console
# in /tmp/NAME.out), sends vmm PID SIGTERM, which presses the ACPI power
# button, and waits for vmm; prints the console and vmm's stderr
# (/tmp/NAME.err) and leaves vmm's exit status in _rc.
press_power_button() {
    wait_for "/tmp/$1.out" "CRITMEM-GUEST-ACPID" 30 || { cat "/tmp/$1.out" "/tmp/$1.err"; fail "$1: the guest's acpid did not start"; }
    kill -TERM "$2"
    wait "$2"
    _rc=$?
    cat "/tmp/$1.out" "/tmp/$1.err"
}

# slice_read NAME PID GPA LEN: reads LEN bytes of the critical VM PID's
# guest-physical GPA as a third party, through host physical memory at its
# slice's start + GPA; sets _start, _phys and _slice_data (`data=HEX`).
slice_read() {
    _start=$(slice_of "$2" start)
    [ -n "$_start" ] || fail "$1: no slice of pid $2 in /proc/critmem: $(cat /proc/critmem)"
    _phys=$(hex $((_start + $3)))
    _slice_data=$(cmtool physread "$_phys" "$4")
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
        slice_read "$_name" "$_pid" "$_gpa" 4
        _read_back=$_slice_data
    fi
    _during_free=$(critmem_key free)
    _scan=$(cmtool physscan "$(critmem_key start)" "$(critmem_key size)" "$_marker")
    press_power_button "$_name" "$_pid"
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

# refused_at_start WHAT EXPECTED-ERROR-REGEX VMM-ARGS...: vmm, asked for a
# critical VM with VMM-ARGS, exits non-zero before the guest runs, with one
# error line that matches the regex, and takes nothing from the pool
# (whose free bytes were $free0).
refused_at_start() {
    _what=$1 _want=$2
    shift 2
    _out=$(vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --critical-mem --memory 256M "$@" 2>&1 </dev/null)
    _rc=$?
    echo "$_out"
    [ "$_rc" != 0 ] || fail "$_what: vmm exited 0"
    assert_eq "$(echo "$_out" | grep -c '^vmm: error: \|^error: ')" 1 "$_what: exactly one error line (status $_rc)"
    assert_match "$_out" "$_want" "$_what: the error names the problem and the fix"
    assert_eq "$(critmem_key free)" "$free0" "$_what: free bytes unchanged"
    assert_eq "$(critmem_key slices)" 0 "$_what: no live slice"
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
        slice_read "$_name" "$_pid" "$_gpa" 16
        _dma_read=$_slice_data
    fi
    press_power_button "$_name" "$_pid"
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

# The emulated host's end of the guest network, and the guest's address.
NET_HOST_ADDR=10.0.2.1
NET_GUEST_ADDR=10.0.2.2
# How much each TCP transfer of net_case moves.
NET_BYTES=67108864

# make_tap NAME: a persistent tap that only root may attach to, at
# NET_HOST_ADDR/24 and up, as an administrator makes one for vmm (`ip
# tuntap add NAME mode tap user root`). Delete it with `tunctl -d NAME`.
make_tap() {
    # Open to all, as a distribution's udev rule makes it: who may attach
    # to which tap is the tap's owner's business.
    chmod 0666 /dev/net/tun
    cmtool mktap "$1" --owner 0 >/dev/null || fail "cmtool mktap $1 failed"
    ip addr add "$NET_HOST_ADDR/24" dev "$1" && ip link set "$1" up || fail "cannot bring $1 up"
}

# mb_per_s BYTES SECONDS: the rate, in MB/s to one decimal.
mb_per_s() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", b / s / 1000000; else print "inf" }'; }

# net_case NAME critical|normal KERNEL INITRAMFS [CMDLINE...]: a guest on
# the network as a user runs it:
# - the emulated host makes tap cmtap0 at NET_HOST_ADDR, and vmm boots
#   KERNEL with `--net tap=cmtap0,mac=...` on a critmem slice or anonymous
#   memory;
# - the guest finds the virtio-net function at 00:01.0, its eth0 has the
#   MAC given, and it comes up at NET_GUEST_ADDR;
# - the guest pings the host, and the host pings the guest;
# - the guest sends NET_BYTES of a pattern to the host over TCP (busybox
#   nc), and the host checks the sha256 of what arrived; the host sends
#   NET_BYTES of another pattern, and the guest's sha256 of what arrived
#   is checked against it;
# - both directions completed through the device's MSI-X vectors, and
#   each side left checksums and TCP segmentation to the other (the
#   offloads, counted by vmm);
# - SIGTERM powers the guest off; vmm exits 0, counts the frames it moved,
#   and leaves the tap as it was (it is the administrator's to delete).
# Prints the guest's send and receive rates as `note:` lines.
net_case() {
    _name=$1 _mode=$2 _kernel=$3 _initrd=$4
    shift 4
    _out=/tmp/$_name.out _err=/tmp/$_name.err _tap=cmtap0 _mac=52:54:00:c0:ff:ee
    _up_seed=seq:0x7570000000000000 _down_seed=seq:0x646f776e00000000
    _up_want=$(cmtool stream $_up_seed $NET_BYTES | sha256sum | cut -d' ' -f1)
    _down_want=$(cmtool stream $_down_seed $NET_BYTES | sha256sum | cut -d' ' -f1)
    make_tap $_tap
    _memopt=
    [ "$_mode" = critical ] && _memopt=--critical-mem
    note "$_name: $_mode VM, $(basename "$_kernel"), --net tap=$_tap,mac=$_mac; $NET_BYTES bytes each way"
    # The host's two ends: one receives the guest's upload (its standard
    # input a FIFO that never ends, for busybox nc stops at the end of its
    # standard input), the other sends the download.
    rm -f /tmp/$_name.hold /tmp/$_name.up
    mkfifo /tmp/$_name.hold
    (nc -l -p 5001 <>/tmp/$_name.hold | sha256sum | cut -d' ' -f1 >/tmp/$_name.up) &
    _up_pid=$!
    (cmtool stream $_down_seed $NET_BYTES | nc -l -p 5002) &
    _down_pid=$!
    # shellcheck disable=SC2086
    RUST_LOG=info vmm --kernel "$_kernel" --initramfs "$_initrd" --memory 256M $_memopt \
        --net "tap=$_tap,mac=$_mac" --shutdown-timeout 60 \
        --cmdline "console=ttyS0 panic=-1 i8042.noaux guest.net=$NET_GUEST_ADDR/24 guest.net_peer=$NET_HOST_ADDR guest.net_bytes=$NET_BYTES guest.net_seed=$_up_seed guest.sleep=600 $*" \
        >"$_out" 2>"$_err" </dev/null &
    _pid=$!
    wait_for "$_out" "CRITMEM-GUEST-NET-DONE|CRITMEM-GUEST-DONE" 600 ||
        { cat "$_out" "$_err"; kill -KILL $_pid $_up_pid $_down_pid; fail "$_name: the guest did not finish its network work"; }
    _host_ping=$(ping -c 3 -W 10 $NET_GUEST_ADDR 2>&1 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
    press_power_button "$_name" "$_pid"
    wait $_up_pid $_down_pid
    _log=$(cat "$_out")
    _vmm_log=$(cat "$_err")
    assert_eq "$_rc" 0 "$_name: vmm exit status after SIGTERM"
    assert_no_match "$_log" "CRITMEM-GUEST-ERROR" "$_name: no guest-side error"
    assert_match "$_log" "^CRITMEM-GUEST-PCI 0000:00:00\.0=1b36:0008 0000:00:01\.0=1af4:1041[[:space:]]*$" "$_name: the guest enumerated the host bridge and the virtio-net function at 00:01.0"
    assert_match "$_log" "^CRITMEM-GUEST-NET dev=eth0 mac=$_mac" "$_name: the guest's eth0 has the MAC given"
    assert_match "$_log" "^CRITMEM-GUEST-NET-PING to=$NET_HOST_ADDR received=3" "$_name: the guest pinged the host: 3 of 3 replies"
    assert_eq "$_host_ping" 3 "$_name: the host pinged the guest: replies received"
    assert_match "$_log" "^CRITMEM-GUEST-NET-SENT bytes=$NET_BYTES " "$_name: the guest's nc sent its data"
    assert_eq "$(cat /tmp/$_name.up)" "$_up_want" "$_name: sha256 of what the host received from the guest"
    assert_match "$_log" "^CRITMEM-GUEST-NET-RECEIVED sha256=$_down_want " "$_name: sha256 of what the guest received from the host"
    assert_match "$_log" "^CRITMEM-GUEST-NET-IRQS .*virtio0-input\.0=[1-9][0-9]*\(PCI-MSIX" "$_name: received frames completed through the input queue's MSI-X vector"
    assert_match "$_log" "^CRITMEM-GUEST-NET-IRQS .*virtio0-output\.0=[0-9]+\(PCI-MSIX" "$_name: the output queue has its own MSI-X vector"
    assert_match "$_vmm_log" "INFO +vmm::runner\] net0: tap $_tap, mac $_mac$" "$_name: vmm's line for the interface"
    assert_match "$_vmm_log" "INFO +vmm::devices::virtio::net\] net0: [1-9][0-9]* frames received \([0-9]+ with the checksum left to the guest, [0-9]+ segmentation offloads\), [1-9][0-9]* sent \([0-9]+ with the checksum left to the host, [0-9]+ segmentation offloads\); dropped: 0 too big for the guest's buffer, 0 malformed, 0 refused by tap $_tap$" "$_name: vmm's frame counts at the end: none dropped"
    # Each offload, both ways: the host's TCP hands the guest 64 KiB
    # segments and leaves their checksums to it, and the guest's the same.
    assert_match "$_vmm_log" "net0: .* received \([1-9][0-9]* with the checksum left to the guest, [1-9][0-9]* segmentation offloads\)" "$_name: the host left checksums and segmentation to the guest (GUEST_CSUM, GUEST_TSO4)"
    assert_match "$_vmm_log" "net0: .* sent \([1-9][0-9]* with the checksum left to the host, [1-9][0-9]* segmentation offloads\)" "$_name: the guest left checksums and segmentation to the host (CSUM, HOST_TSO4)"
    assert_match "$_log" "^CRITMEM-GUEST-POWEROFF" "$_name: the guest powered off"
    [ -d /sys/class/net/$_tap ] || fail "$_name: vmm took the administrator's tap with it"
    ok "$_name: the tap outlives vmm"
    _sent_s=$(sed -n 's/^CRITMEM-GUEST-NET-SENT .* seconds=\([0-9.]*\).*/\1/p' "$_out")
    _recv_s=$(sed -n 's/^CRITMEM-GUEST-NET-RECEIVED .* seconds=\([0-9.]*\).*/\1/p' "$_out")
    note "$_name: guest to host $(mb_per_s $NET_BYTES "$_sent_s") MB/s ($_sent_s s), host to guest $(mb_per_s $NET_BYTES "$_recv_s") MB/s ($_recv_s s)"
    tunctl -d $_tap >/dev/null
    rm -f /tmp/$_name.hold /tmp/$_name.up
}

# rootdisk_case NAME critical|normal KERNEL [INITRAMFS]: a guest whose root
# is a virtio-blk disk, as a user boots one:
# - the image is an ext4 filesystem made with `mkfs.ext4 -d` from the
#   guest's own busybox root (tests/guest/init as /init), with a marker in
#   /etc/critmem-root;
# - vmm boots KERNEL with `root=/dev/vda rw`: straight from the disk
#   (a kernel with virtio_blk and ext4 built in), or through INITRAMFS,
#   whose init loads the kernel's modules, mounts /dev/vda and switches to
#   its /init (a kernel with virtio_blk as a module, as Debian's);
# - the guest's / is /dev/vda, ext4, and holds the marker; the guest
#   writes /out/root.bin;
# - SIGTERM powers the guest off, which remounts / read-only first; the
#   emulated host mounts the image read-only (which fails on a journal left
#   dirty) and finds /out/root.bin with the guest's sha256.
rootdisk_case() {
    _name=$1 _mode=$2 _kernel=$3 _initrd=${4:-}
    _img=/tmp/$_name.img _out=/tmp/$_name.out _err=/tmp/$_name.err _marker="root of $_name $(random_u32)"
    _tree=$(mktemp -d)
    (cd "$_tree" && zcat "$GUEST_INITRAMFS" | cpio -idm 2>/dev/null) || fail "$_name: cannot unpack $GUEST_INITRAMFS"
    # The modules are the initramfs's to load.
    rm -rf "$_tree/lib/critmem/modules"
    mkdir -p "$_tree/etc" "$_tree/dev"
    echo "$_marker" >"$_tree/etc/critmem-root"
    mknod "$_tree/dev/console" c 5 1
    /sbin/mkfs.ext4 -q -F -d "$_tree" "$_img" 64M >/dev/null 2>&1 || fail "mkfs.ext4 -d $_tree $_img failed"
    rm -rf "$_tree"
    _memopt= _initopt=
    [ "$_mode" = critical ] && _memopt=--critical-mem
    [ -n "$_initrd" ] && _initopt="--initramfs $_initrd"
    note "$_name: $_mode VM, $(basename "$_kernel")${_initrd:+ with $(basename "$_initrd")}, root=/dev/vda on $_img"
    # shellcheck disable=SC2086
    vmm --kernel "$_kernel" $_initopt --memory 256M $_memopt \
        --disk "path=$_img,serial=$_name" --shutdown-timeout 60 \
        --cmdline "console=ttyS0 panic=-1 i8042.noaux root=/dev/vda rw init=/init guest.root=1 guest.sleep=600" \
        >"$_out" 2>"$_err" </dev/null &
    _pid=$!
    wait_for "$_out" "CRITMEM-GUEST-ROOT-WRITTEN|CRITMEM-GUEST-ERROR|CRITMEM-GUEST-DONE|Kernel panic" 240 ||
        { cat "$_out" "$_err"; kill -KILL $_pid; fail "$_name: the guest did not come up on its root disk"; }
    press_power_button "$_name" "$_pid"
    _log=$(cat "$_out")
    assert_eq "$_rc" 0 "$_name: vmm exit status after SIGTERM"
    assert_no_match "$_log" "CRITMEM-GUEST-ERROR|Kernel panic" "$_name: no guest-side error"
    if [ -n "$_initrd" ]; then
        assert_match "$_log" "^CRITMEM-GUEST-SWITCH-ROOT dev=/dev/vda" "$_name: the initramfs mounted /dev/vda and switched to it"
    else
        assert_match "$_log" "VFS: Mounted root \(ext4 filesystem\) on device [0-9]+:0" "$_name: the kernel mounted its root from the disk"
    fi
    _root=$(sed -n 's/^CRITMEM-GUEST-ROOT dev=\([0-9:]*\) vda=\([0-9:]*\) .*/\1 \2/p' "$_out")
    assert_eq "${_root% *}" "${_root#* }" "$_name: the device of the guest's / is /dev/vda's"
    assert_match "$_log" "^CRITMEM-GUEST-ROOT dev=[0-9]+:0 vda=[0-9]+:0 fstype=ext4 marker=$_marker[[:space:]]*$" "$_name: the guest's / is ext4, the image's"
    assert_match "$_log" "^CRITMEM-GUEST-POWEROFF" "$_name: the guest powered off"
    _written=$(sed -n 's/^CRITMEM-GUEST-ROOT-WRITTEN sha256=\([0-9a-f]*\).*/\1/p' "$_out")
    [ -n "$_written" ] || fail "$_name: the guest did not report its write"
    _check=/tmp/$_name.check
    mkdir -p "$_check"
    mount -t ext4 -o loop,ro "$_img" "$_check" || fail "$_name: the image does not mount read-only (a journal left dirty?)"
    assert_eq "$(sha256sum <"$_check/out/root.bin" | cut -d' ' -f1)" "$_written" "$_name: /out/root.bin in the image: sha256 as the guest wrote it"
    umount "$_check"
    rm -f "$_img"
}
