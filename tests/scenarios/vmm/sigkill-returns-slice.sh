# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debian
#
# SIGKILL of a running critical vmm: its slice returns to the pool.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
free0=$(critmem_key free)
vmm --kernel "$GUEST_KERNEL" --initramfs "$GUEST_INITRAMFS" --memory 256M --cpus 2 --critical-mem \
    --cmdline "console=ttyS0 reboot=k panic=-1 i8042.noaux guest.sleep=60" >/tmp/vmm.out 2>&1 &
pid=$!
wait_for /tmp/vmm.out "CRITMEM-GUEST-UP" 60 || { cat /tmp/vmm.out; fail "guest did not come up"; }
assert_eq "$(critmem_key free)" "$((free0 - (256 << 20)))" "free bytes while the VM runs"
assert_match "$(cat /proc/critmem)" "^slice=.* pid=$pid " "slice owned by the vmm"
kill -9 $pid
wait $pid
rc=$?
assert_eq "$rc" 137 "vmm killed by SIGKILL"
i=0
while [ "$(critmem_key free)" != "$free0" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
assert_eq "$(critmem_key free)" "$free0" "free bytes after SIGKILL"
assert_eq "$(critmem_key slices)" 0 "no live slice"
