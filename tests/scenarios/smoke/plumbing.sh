# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 60
#
# Proves the plumbing every other scenario stands on: the boot parameter
# carves a pool, critmem.ko loads and reports it, and KVM runs a guest.
. /lib/critmem/testlib.sh

assert_match "$(cat /proc/cmdline)" 'reserve_mem=256M:2M:critmem' "booted with the pool parameter"

critmem_load
line=$(dmesg | grep 'critmem: pool' | tail -n 1)
echo "$line"
assert_match "$line" 'start=0x[0-9a-f]+ ' "critmem.ko reports the pool start"
assert_match "$line" "size=$((256 << 20)) " "critmem.ko reports the 256 MiB size"

[ -c /dev/kvm ] || fail "/dev/kvm is missing"
ok "/dev/kvm present"
dmesg | grep -i 'nested paging' || note "kvm_amd said nothing about nested paging"
cmtool kvm-selftest || fail "a KVM guest did not run"
