# ehost-cmdline: reserve_mem=256M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 120
# ehost-kernels: test debug debian
#
# Physical placement: a holder ALLOCs, mmaps and writes a pattern of
# unique words; a third party reads the same bytes through /dev/mem at the
# physical address /proc/critmem lists for the slice (on the debug kernel,
# whose STRICT_DEVMEM refuses RAM, through /proc/kcore). The mapping carries
# VM_SHARED|VM_PFNMAP|VM_IO|VM_DONTEXPAND|VM_DONTDUMP|VM_DONTCOPY (smaps).
. /lib/critmem/testlib.sh

critmem_load
out=/tmp/holder
cmtool alloc --size 16M --align 2M --pattern seq:0x5eed0000cafe0000 --hold >$out 2>&1 &
holder=$!
i=0
until grep -q '^ready=1' $out; do
    i=$((i + 1))
    [ $i -lt 600 ] && kill -0 $holder 2>/dev/null || fail "holder: $(cat $out)"
    sleep 0.1
done
cat $out
cat /proc/critmem
line=$(grep '^slice=' /proc/critmem)
assert_match "$line" "pid=$holder state=mapped" "slice owned by the holder, mapped"
pstart=$(echo "$line" | sed -n 's/.* start=\(0x[0-9a-f]*\) .*/\1/p')
assert_eq "$pstart" "$(sed -n 's/^phys_start=//p' $out)" "ALLOC's phys_start is the slice start in /proc/critmem"
if kconfig_enabled STRICT_DEVMEM; then
    assert_devmem_refused "$pstart" "STRICT_DEVMEM, reserve_mem slice (System RAM)"
    cmtool physcheck --via kcore "$pstart" 16M seq:0x5eed0000cafe0000 || fail "/proc/kcore does not show the pattern at $pstart"
    ok "/proc/kcore at physical $pstart holds the 16 MiB pattern"
else
    cmtool physcheck "$pstart" 16M seq:0x5eed0000cafe0000 || fail "/dev/mem does not show the pattern at $pstart"
    ok "/dev/mem at $pstart holds the 16 MiB pattern"
fi
cmtool physcheck "$((pstart + (16 << 20)))" 4K seq:0x5eed0000cafe0000 >/dev/null && fail "pattern past the slice?"
ok "the pattern ends with the slice"
flags=$(awk '/\/dev\/critmem/ { m = 1 } m && /^VmFlags:/ { print; exit }' /proc/$holder/smaps)
echo "$flags"
for f in sh pf io de dd dc; do
    assert_match "$flags" " $f( |\$)" "mapping has VmFlag $f"
done
kill $holder
