# ehost-cmdline: reserve_mem=512M:2M:critmem
# ehost-memory: 2G
# ehost-timeout: 300
# ehost-extra: debian-guest
#
# The ACPI MADT and per-vCPU CPUID scale: Debian's stock cloud kernel as a
# critical VM with 8 vCPUs (one thread each) boots with all 8 online, and
# passes every check of guest_whole in testlib.sh (no ACPI errors,
# placement, SIGTERM -> power button -> S5). 1, 2 and 4 vCPUs are
# acpi-debian-cpus and acpi-debian-guest; the MP table's SMP path is
# sigterm-shutdown's acpi=off guest.
#
# Like every scenario that boots nested guests, it runs pinned to the
# emulated host's CPU 0 (`nested_vms_on_one_cpu`, README limitations):
# unpinned, 8-vCPU guests are where the emulated host fails most.
. /lib/critmem/testlib.sh
nested_vms_on_one_cpu

critmem_load
guest_whole debian-8cpus critical 8 "$DEBIAN_GUEST_KERNEL" "$DEBIAN_GUEST_INITRAMFS"
