//! CPUID for a vCPU: KVM's supported set (`KVM_GET_SUPPORTED_CPUID`) with
//! the per-vCPU and topology fields filled in.
//!
//! The VM is presented as one socket with `cpus` cores of one thread each,
//! APIC IDs `0..cpus` (matching the MP table):
//! - leaf 0x1: initial APIC ID, logical processor count, HTT, and the
//!   hypervisor bit;
//! - leaf 0x4 (Intel cache topology): cores per package, sharing of caches;
//! - leaves 0xB and 0x1F (extended topology): an SMT level of 1 thread and
//!   a core level of `cpus` cores, x2APIC ID in EDX. KVM returns only
//!   subleaf 0 of these (and zeroed), which says "no topology"; the core
//!   level (subleaf 1) and the terminating invalid level (subleaf 2) are
//!   added, as Firecracker does;
//! - leaf 0x8000_0008 (AMD): core count and APIC ID size;
//! - leaf 0x8000_001E (AMD): extended APIC ID and core ID.
//!
//! Everything else is KVM's supported value, which already hides features
//! KVM cannot virtualize and includes the KVM paravirtual leaves.

use kvm_bindings::{kvm_cpuid_entry2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

/// Leaf 1 ECX: running under a hypervisor.
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX: the logical processor count in EBX 23:16 is valid.
pub const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Topology level type "SMT" in leaves 0xB/0x1F ECX 15:8.
pub const LEVEL_TYPE_SMT: u32 = 1;
/// Topology level type "core" in leaves 0xB/0x1F ECX 15:8.
pub const LEVEL_TYPE_CORE: u32 = 2;

/// Number of bits needed to hold IDs `0..count` (ceil(log2(count))).
pub fn id_bits(count: u32) -> u32 {
    if count <= 1 {
        0
    } else {
        32 - (count - 1).leading_zeros()
    }
}

/// The extended-topology leaves, which have one subleaf per level.
const TOPOLOGY_LEAVES: [u32; 2] = [0xb, 0x1f];
/// Subleaves 0 (SMT), 1 (core) and 2 (invalid: the end of the list).
const TOPOLOGY_SUBLEAVES: u32 = 3;

/// Adds the subleaves of the extended-topology leaves that KVM left out, for
/// each such leaf it reported.
fn add_topology_subleaves(entries: &mut Vec<kvm_cpuid_entry2>) {
    for leaf in TOPOLOGY_LEAVES {
        if !entries.iter().any(|e| e.function == leaf) {
            continue;
        }
        for index in 0..TOPOLOGY_SUBLEAVES {
            if !entries
                .iter()
                .any(|e| e.function == leaf && e.index == index)
            {
                entries.push(kvm_cpuid_entry2 {
                    function: leaf,
                    index,
                    flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                    ..Default::default()
                });
            }
        }
    }
}

/// Applies the per-vCPU filtering to `entries` (KVM's supported CPUID) for
/// vCPU `cpu` (its APIC ID) of `cpus`.
pub fn filter_cpuid(entries: &mut Vec<kvm_cpuid_entry2>, cpu: u32, cpus: u32) {
    add_topology_subleaves(entries);
    let apic_id = cpu;
    let core_bits = id_bits(cpus);
    for e in entries.iter_mut() {
        match e.function {
            0x1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (apic_id << 24) | ((cpus.min(255)) << 16);
                e.ecx |= LEAF1_ECX_HYPERVISOR;
                if cpus > 1 {
                    e.edx |= LEAF1_EDX_HTT;
                } else {
                    e.edx &= !LEAF1_EDX_HTT;
                }
            }
            0x4 => {
                // EAX 31:26 cores per package - 1; 25:14 logical processors
                // sharing this cache - 1 (the last level is shared by all).
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { cpus - 1 } else { 0 };
                e.eax =
                    (e.eax & 0x3fff) | (((cpus - 1).min(63)) << 26) | ((sharing.min(0xfff)) << 14);
            }
            0xb | 0x1f => {
                let (eax, ebx, level_type) = match e.index {
                    0 => (0, 1, LEVEL_TYPE_SMT),
                    1 => (core_bits, cpus, LEVEL_TYPE_CORE),
                    _ => (0, 0, 0),
                };
                e.eax = eax;
                e.ebx = ebx;
                e.ecx = (level_type << 8) | (e.index & 0xff);
                e.edx = apic_id;
            }
            0x8000_0008 => {
                // ECX 7:0 number of cores - 1; 15:12 APIC ID size.
                e.ecx = (e.ecx & !0xf0ff) | (core_bits << 12) | ((cpus - 1) & 0xff);
            }
            0x8000_001e => {
                e.eax = apic_id;
                e.ebx = (e.ebx & !0xffff) | (apic_id & 0xff); // 1 thread per core
                e.ecx &= !0xff; // node 0
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0xdead_0000,
            ebx: 0x00ff_0800,
            ecx: 0,
            edx: 0,
            ..Default::default()
        }
    }

    fn find(e: &[kvm_cpuid_entry2], f: u32, i: u32) -> kvm_cpuid_entry2 {
        *e.iter().find(|x| x.function == f && x.index == i).unwrap()
    }

    fn sample() -> Vec<kvm_cpuid_entry2> {
        let mut l4 = entry(0x4, 3);
        l4.eax = (3 << 5) | 0x3; // L3 unified cache
                                 // What KVM returns for leaf 0xB: subleaf 0 only.
        let mut topology = entry(0xb, 0);
        topology.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        vec![
            entry(0x1, 0),
            l4,
            topology,
            entry(0x8000_0008, 0),
            entry(0x8000_001e, 0),
            entry(0x4000_0000, 0),
        ]
    }

    #[test]
    fn id_bits_values() {
        assert_eq!(id_bits(1), 0);
        assert_eq!(id_bits(2), 1);
        assert_eq!(id_bits(3), 2);
        assert_eq!(id_bits(4), 2);
        assert_eq!(id_bits(32), 5);
        assert_eq!(id_bits(33), 6);
    }

    #[test]
    fn leaf1_per_vcpu() {
        let mut e = sample();
        filter_cpuid(&mut e, 5, 8);
        let l1 = find(&e, 1, 0);
        assert_eq!(l1.ebx >> 24, 5, "initial APIC ID");
        assert_eq!((l1.ebx >> 16) & 0xff, 8, "logical processors");
        assert_eq!(l1.ebx & 0xffff, 0x0800, "CLFLUSH size kept");
        assert_ne!(l1.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_ne!(l1.edx & LEAF1_EDX_HTT, 0);

        let mut e = sample();
        e[0].edx = LEAF1_EDX_HTT;
        filter_cpuid(&mut e, 0, 1);
        assert_eq!(find(&e, 1, 0).edx & LEAF1_EDX_HTT, 0);
    }

    #[test]
    fn extended_topology() {
        let mut e = sample();
        filter_cpuid(&mut e, 3, 4);
        let smt = find(&e, 0xb, 0);
        assert_eq!(
            (smt.eax, smt.ebx, smt.ecx >> 8, smt.edx),
            (0, 1, LEVEL_TYPE_SMT, 3)
        );
        let core = find(&e, 0xb, 1);
        assert_eq!(
            (
                core.eax,
                core.ebx,
                (core.ecx >> 8) & 0xff,
                core.ecx & 0xff,
                core.edx
            ),
            (2, 4, LEVEL_TYPE_CORE, 1, 3)
        );
        let end = find(&e, 0xb, 2);
        assert_eq!((end.eax, end.ebx, end.ecx >> 8, end.edx), (0, 0, 0, 3));
        assert!(
            e.iter()
                .filter(|x| x.function == 0xb)
                .all(|x| x.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX != 0),
            "KVM must match leaf 0xB by subleaf"
        );
        assert_eq!(e.iter().filter(|x| x.function == 0xb).count(), 3);
        assert!(
            !e.iter().any(|x| x.function == 0x1f),
            "no 0x1F leaf is made up where KVM reported none"
        );
    }

    #[test]
    fn cache_and_amd_leaves() {
        let mut e = sample();
        filter_cpuid(&mut e, 1, 2);
        let l4 = find(&e, 4, 3);
        assert_eq!(l4.eax >> 26, 1, "cores per package - 1");
        assert_eq!((l4.eax >> 14) & 0xfff, 1, "L3 shared by both");
        assert_eq!(l4.eax & 0x3fff, (3 << 5) | 3, "cache descriptor kept");
        let a8 = find(&e, 0x8000_0008, 0);
        assert_eq!(a8.ecx & 0xff, 1);
        assert_eq!((a8.ecx >> 12) & 0xf, 1);
        let a1e = find(&e, 0x8000_001e, 0);
        assert_eq!(a1e.eax, 1);
        assert_eq!(a1e.ebx & 0xff, 1);
        // Untouched leaf.
        assert_eq!(find(&e, 0x4000_0000, 0).eax, 0xdead_0000);
    }
}
