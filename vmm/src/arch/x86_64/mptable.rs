//! The Intel MultiProcessor Specification 1.4 tables: how a guest without
//! ACPI finds its CPUs, its I/O APIC and the ISA interrupt routing.
//!
//! Layout written at [`MPTABLE_START`]: the 16-byte MP floating pointer,
//! immediately followed by the configuration table (header, one processor
//! entry per vCPU, the ISA bus, the I/O APIC, one I/O interrupt entry per
//! I/O APIC pin, and the two local interrupt entries LINT0=ExtINT,
//! LINT1=NMI).

use super::layout::{APIC_START, IOAPIC_START, MAX_CPUS, MPTABLE_MAX_SIZE, MPTABLE_START};

/// Number of I/O APIC pins KVM's in-kernel I/O APIC has.
pub const IOAPIC_PINS: u8 = 24;

const MPC_SIGNATURE: &[u8; 4] = b"PCMP";
const MPF_SIGNATURE: &[u8; 4] = b"_MP_";
const MP_SPEC_REV: u8 = 4;
const MPF_SIZE: usize = 16;
const MPC_HEADER_SIZE: usize = 44;
const MPC_CPU_SIZE: usize = 20;
const MPC_OTHER_SIZE: usize = 8;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IOINT: u8 = 3;
const ENTRY_LINT: u8 = 4;

const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_SIGNATURE: u32 = 0x600; // family 6
const CPU_FEATURES: u32 = 0x201; // FPU | APIC
const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
const BUS_ID_ISA: u8 = 0;

/// Errors building the MP table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MptableError {
    /// Zero vCPUs, or more than fit 8-bit APIC IDs next to the I/O APIC's.
    #[error("the MP table cannot describe {0} vCPUs (1..={MAX_CPUS})")]
    BadCpuCount(u32),
    /// The table does not fit in the BIOS area.
    #[error("the MP table ({0} bytes) does not fit in the BIOS area")]
    TooLarge(usize),
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// Size in bytes of the whole MP table (floating pointer included) for
/// `cpus` vCPUs.
pub fn mptable_size(cpus: u32) -> usize {
    MPF_SIZE
        + MPC_HEADER_SIZE
        + MPC_CPU_SIZE * cpus as usize
        + MPC_OTHER_SIZE * (1 + 1 + IOAPIC_PINS as usize + 2)
}

/// APIC ID of the I/O APIC: the first one after the vCPUs'.
pub fn ioapic_id(cpus: u32) -> u8 {
    cpus as u8
}

/// Builds the MP table for `cpus` vCPUs with APIC IDs `0..cpus`, vCPU 0 the
/// boot processor, to be written at [`MPTABLE_START`].
pub fn build_mptable(cpus: u32) -> Result<Vec<u8>, MptableError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(MptableError::BadCpuCount(cpus));
    }
    let size = mptable_size(cpus);
    if size > MPTABLE_MAX_SIZE {
        return Err(MptableError::TooLarge(size));
    }
    let ioapic = ioapic_id(cpus);

    // Configuration table entries.
    let mut entries = Vec::new();
    for id in 0..cpus {
        entries.push(ENTRY_PROCESSOR);
        entries.push(id as u8);
        entries.push(APIC_VERSION);
        entries.push(CPU_ENABLED | if id == 0 { CPU_BOOTPROCESSOR } else { 0 });
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[ENTRY_BUS, BUS_ID_ISA]);
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    for pin in 0..IOAPIC_PINS {
        // type, irq type, flags (conforming polarity/trigger), bus, bus irq,
        // destination I/O APIC, pin.
        entries.extend_from_slice(&[
            ENTRY_IOINT,
            INT_TYPE_INT,
            0,
            0,
            BUS_ID_ISA,
            pin,
            ioapic,
            pin,
        ]);
    }
    entries.extend_from_slice(&[ENTRY_LINT, INT_TYPE_EXTINT, 0, 0, BUS_ID_ISA, 0, 0xff, 0]);
    entries.extend_from_slice(&[ENTRY_LINT, INT_TYPE_NMI, 0, 0, BUS_ID_ISA, 0, 0xff, 1]);
    let entry_count = cpus as u16 + 1 + 1 + u16::from(IOAPIC_PINS) + 2;

    // Configuration table header.
    let table_len = MPC_HEADER_SIZE + entries.len();
    let mut mpc = Vec::with_capacity(table_len);
    mpc.extend_from_slice(MPC_SIGNATURE);
    mpc.extend_from_slice(&(table_len as u16).to_le_bytes());
    mpc.push(MP_SPEC_REV);
    mpc.push(0); // checksum, below
    mpc.extend_from_slice(b"CRITMEM ");
    mpc.extend_from_slice(b"VMM         ");
    mpc.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    mpc.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    mpc.extend_from_slice(&entry_count.to_le_bytes());
    mpc.extend_from_slice(&(APIC_START as u32).to_le_bytes());
    mpc.extend_from_slice(&0u16.to_le_bytes()); // extended table length
    mpc.push(0); // extended table checksum
    mpc.push(0); // reserved
    debug_assert_eq!(mpc.len(), MPC_HEADER_SIZE);
    mpc.extend_from_slice(&entries);
    mpc[7] = checksum(&mpc);

    // Floating pointer, pointing just behind itself.
    let mut mpf = Vec::with_capacity(MPF_SIZE);
    mpf.extend_from_slice(MPF_SIGNATURE);
    mpf.extend_from_slice(&((MPTABLE_START + MPF_SIZE as u64) as u32).to_le_bytes());
    mpf.push(1); // length in 16-byte units
    mpf.push(MP_SPEC_REV);
    mpf.push(0); // checksum, below
    mpf.extend_from_slice(&[0; 5]); // features: a configuration table is present
    mpf[10] = checksum(&mpf);

    mpf.extend_from_slice(&mpc);
    debug_assert_eq!(mpf.len(), size);
    Ok(mpf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
    }

    #[test]
    fn checksums_and_pointers() {
        for cpus in [1, 2, 32, 64, MAX_CPUS] {
            let t = build_mptable(cpus).unwrap();
            assert_eq!(t.len(), mptable_size(cpus));
            assert_eq!(&t[0..4], b"_MP_");
            assert_eq!(sum(&t[..16]), 0, "floating pointer checksum");
            assert_eq!(u32_at(&t, 4) as u64, MPTABLE_START + 16);
            let mpc = &t[16..];
            assert_eq!(&mpc[0..4], b"PCMP");
            assert_eq!(u16_at(mpc, 4) as usize, mpc.len());
            assert_eq!(sum(mpc), 0, "configuration table checksum");
            assert_eq!(u32_at(mpc, 36) as u64, APIC_START);
        }
    }

    #[test]
    fn entries_describe_every_cpu_and_the_ioapic() {
        let cpus = 32;
        let t = build_mptable(cpus).unwrap();
        let mpc = &t[16..];
        let count = u16_at(mpc, 34) as usize;
        let mut off = MPC_HEADER_SIZE;
        let mut seen_cpus = Vec::new();
        let mut ioapic = None;
        let mut ioints = 0;
        let mut lints = Vec::new();
        for _ in 0..count {
            match mpc[off] {
                ENTRY_PROCESSOR => {
                    seen_cpus.push((mpc[off + 1], mpc[off + 3]));
                    off += MPC_CPU_SIZE;
                }
                ENTRY_IOAPIC => {
                    ioapic = Some((mpc[off + 1], u32_at(mpc, off + 4)));
                    off += 8;
                }
                ENTRY_IOINT => {
                    assert_eq!(mpc[off + 5], mpc[off + 7]);
                    ioints += 1;
                    off += 8;
                }
                ENTRY_LINT => {
                    lints.push((mpc[off + 1], mpc[off + 7]));
                    off += 8;
                }
                ENTRY_BUS => {
                    assert_eq!(&mpc[off + 2..off + 8], b"ISA   ");
                    off += 8;
                }
                other => panic!("unknown entry type {other}"),
            }
        }
        assert_eq!(off, mpc.len());
        assert_eq!(seen_cpus.len(), cpus as usize);
        assert_eq!(seen_cpus[0], (0, CPU_ENABLED | CPU_BOOTPROCESSOR));
        for (i, (id, flags)) in seen_cpus.iter().enumerate().skip(1) {
            assert_eq!((*id as usize, *flags), (i, CPU_ENABLED));
        }
        assert_eq!(ioapic, Some((32, IOAPIC_START as u32)));
        assert_eq!(ioints, IOAPIC_PINS as usize);
        assert_eq!(lints, vec![(INT_TYPE_EXTINT, 0), (INT_TYPE_NMI, 1)]);
    }

    #[test]
    fn bad_cpu_counts() {
        assert_eq!(build_mptable(0), Err(MptableError::BadCpuCount(0)));
        assert_eq!(build_mptable(255), Err(MptableError::BadCpuCount(255)));
        assert!(mptable_size(MAX_CPUS) <= MPTABLE_MAX_SIZE);
    }
}
