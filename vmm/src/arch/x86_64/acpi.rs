//! The guest's ACPI tables: how a distribution kernel, which reads no MP
//! table (Debian builds without `CONFIG_X86_MPPARSE`), finds its CPUs, its
//! interrupt routing and its power button.
//!
//! Built with rust-vmm's `acpi_tables`, laid out from [`ACPI_START`]:
//!
//! | table | what it gives the guest |
//! |---|---|
//! | RSDP | where the XSDT is; first, inside the BIOS area a kernel scans |
//! | XSDT | the FADT and the MADT |
//! | FADT | fixed-hardware ACPI: the PM1a blocks and the SCI of [`crate::devices::acpi_pm`], a fixed power button, the reset register; the legacy devices that exist (i8042) and those that do not (VGA, CMOS RTC) |
//! | FACS | required next to a full (not hardware-reduced) FADT |
//! | MADT | every vCPU's local APIC, the I/O APIC, the SCI's interrupt override (level, active high), LINT1 as NMI |
//! | DSDT | `\_S5_` (soft off), COM1 and the i8042 keyboard with their resources, the PCI root bridge `PCI0` with the windows it decodes |
//!
//! Fixed hardware rather than hardware-reduced ACPI with a GED device: the
//! guest arms the fixed power button by setting `PWRBTN_EN`, which `vmm`
//! sees, so a SIGTERM can tell whether pressing the button will reach the
//! guest at all.

use acpi_tables::aml;
use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags, PmProfile};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;

use super::layout::{
    ACPI_MAX_SIZE, ACPI_START, APIC_START, IOAPIC_START, MAX_CPUS, PCI_MMIO32_LAST,
    PCI_MMIO32_START,
};
use super::mptable;
use crate::devices::acpi_pm::{
    PM1A_CNT_PORT, PM1A_EVT_PORT, PM1_CNT_LEN, PM1_EVT_LEN, RESET_PORT, RESET_VALUE, SCI_IRQ,
    SLP_TYP_S5,
};
use crate::devices::serial::{COM1_BASE, COM1_IRQ};
use crate::devices::{i8042, pci};

/// The OEM ID in every table header.
const OEM_ID: [u8; 6] = *b"CRTMEM";
/// The OEM table ID in every table header.
const OEM_TABLE_ID: [u8; 8] = *b"CRITMEM ";
/// The OEM revision in every table header.
const OEM_REVISION: u32 = 1;

/// Length of the header every system description table starts with.
const SDT_HEADER_LEN: usize = 36;
/// MADT structure: Interrupt Source Override.
const MADT_INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
/// MADT structure: Local APIC NMI.
const MADT_LOCAL_APIC_NMI: u8 = 4;
/// MADT flag: the system also has dual 8259 PICs (KVM's in-kernel PIC).
const MADT_PCAT_COMPAT: u32 = 1;
/// MPS INTI flags: active high, level-triggered.
const MPS_INTI_ACTIVE_HIGH_LEVEL: u16 = 0b01 | (0b11 << 2);
/// Processor UID meaning "all processors" in a Local APIC NMI structure.
const ALL_PROCESSORS: u8 = 0xff;
/// The FADT revision-6 `IAPC_BOOT_ARCH` flags: legacy ISA devices exist
/// (COM1); an i8042 exists; there is no VGA; there is no CMOS RTC (the CMOS
/// ports read 0).
const IAPC_BOOT_ARCH: u16 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 5);

/// Errors building the ACPI tables.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcpiError {
    /// Zero vCPUs, or more than the MADT's 8-bit APIC IDs describe.
    #[error("the ACPI tables cannot describe {0} vCPUs (1..={MAX_CPUS})")]
    BadCpuCount(u32),
    /// The tables do not fit their area.
    #[error(
        "the ACPI tables ({0} bytes) do not fit in the {ACPI_MAX_SIZE} bytes at 0x{ACPI_START:x}"
    )]
    TooLarge(usize),
}

/// The tables, laid out as they go into guest memory.
#[derive(Debug)]
pub struct AcpiTables {
    /// Guest address of the first byte of `bytes`; the RSDP is there.
    pub start: u64,
    /// Every table, at its offset from `start`.
    pub bytes: Vec<u8>,
}

impl AcpiTables {
    /// Guest address of the RSDP, for the zero page's `acpi_rsdp_addr`.
    pub fn rsdp_address(&self) -> u64 {
        self.start
    }
}

/// Collects tables at increasing aligned offsets from [`ACPI_START`].
struct Layout {
    bytes: Vec<u8>,
}

impl Layout {
    /// Places `table` at the next multiple of `align` and returns its guest
    /// address.
    fn place(&mut self, table: &[u8], align: usize) -> u64 {
        let offset = self.bytes.len().next_multiple_of(align);
        self.bytes.resize(offset, 0);
        self.bytes.extend_from_slice(table);
        ACPI_START + offset as u64
    }
}

fn aml_bytes(aml: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    aml.to_aml_bytes(&mut v);
    v
}

/// An I/O port range of `len` ports at `port`, as a resource descriptor.
fn io_ports(port: u16, len: u8) -> aml::IO {
    aml::IO::new(port, port, 1, len)
}

/// A device of the DSDT with hardware ID `hid` (an EISA ID), its resources
/// `crs`, and `uid` when several devices may share the ID, as AML.
fn isa_device(name: &str, hid: &str, uid: Option<u8>, crs: &dyn Aml) -> Vec<u8> {
    let hid = aml::Name::new("_HID".into(), &aml::EISAName::new(hid));
    let uid = uid.map(|uid| aml::Name::new("_UID".into(), &uid));
    let crs = aml::Name::new("_CRS".into(), crs);
    let mut children: Vec<&dyn Aml> = vec![&hid];
    if let Some(uid) = &uid {
        children.push(uid);
    }
    children.push(&crs);
    aml_bytes(&aml::Device::new(name.into(), children))
}

/// The PCI root bridge: bus 0, reached through the configuration ports,
/// decoding every I/O port but those and the 32-bit memory window below the
/// I/O APIC, as AML.
fn pci_root() -> Vec<u8> {
    let config_ports = pci::LAST_PORT - pci::CONFIG_ADDRESS_PORT + 1;
    // Name::new serialises at once, so the descriptors may be temporaries.
    let crs = aml::Name::new(
        "_CRS".into(),
        &aml::ResourceTemplate::new(vec![
            &aml::AddressSpace::new_bus_number(0u16, 0u16),
            &aml::IO::new(
                pci::CONFIG_ADDRESS_PORT,
                pci::CONFIG_ADDRESS_PORT,
                1,
                config_ports as u8,
            ),
            &aml::AddressSpace::new_io(0u16, pci::CONFIG_ADDRESS_PORT - 1, None),
            &aml::AddressSpace::new_io(pci::LAST_PORT + 1, u16::MAX, None),
            &aml::AddressSpace::new_memory(
                aml::AddressSpaceCacheable::NotCacheable,
                true,
                PCI_MMIO32_START as u32,
                PCI_MMIO32_LAST as u32,
                None,
            ),
        ]),
    );
    let hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0A03"));
    let adr = aml::Name::new("_ADR".into(), &0u8);
    let seg = aml::Name::new("_SEG".into(), &0u8);
    let uid = aml::Name::new("_UID".into(), &0u8);
    let bbn = aml::Name::new("_BBN".into(), &0u8);
    aml_bytes(&aml::Device::new(
        "PCI0".into(),
        vec![&hid, &adr, &seg, &uid, &bbn, &crs],
    ))
}

/// The DSDT: the soft-off sleep type, and the legacy ISA devices, so that
/// the guest binds their drivers from the firmware's description instead of
/// probing ports.
fn dsdt() -> Vec<u8> {
    let s5 = aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&SLP_TYP_S5, &SLP_TYP_S5, &0u8, &0u8]),
    );
    let com1 = isa_device(
        "COM1",
        "PNP0501",
        Some(1),
        &aml::ResourceTemplate::new(vec![
            &io_ports(COM1_BASE, 8),
            &aml::Interrupt::new(true, true, false, false, COM1_IRQ),
        ]),
    );
    let kbd = isa_device(
        "PS2K",
        "PNP0303",
        None,
        &aml::ResourceTemplate::new(vec![
            &io_ports(i8042::DATA_PORT, 1),
            &io_ports(i8042::COMMAND_PORT, 1),
            &aml::Interrupt::new(true, true, false, false, i8042::IRQ),
        ]),
    );
    let sb = aml::Scope::raw("\\_SB_".into(), [com1, kbd, pci_root()].concat());

    let mut dsdt = Sdt::new(
        *b"DSDT",
        SDT_HEADER_LEN as u32,
        2,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
    );
    dsdt.append_slice(&aml_bytes(&s5));
    dsdt.append_slice(&sb);
    dsdt.as_slice().to_vec()
}

/// The MADT for `cpus` vCPUs with APIC IDs `0..cpus`.
fn madt(cpus: u32) -> Vec<u8> {
    let mut madt = Sdt::new(
        *b"APIC",
        SDT_HEADER_LEN as u32,
        5,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
    );
    let mut body = Vec::new();
    body.extend_from_slice(&(APIC_START as u32).to_le_bytes());
    body.extend_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    for id in 0..cpus {
        let id = u8::try_from(id).expect("cpus checked against MAX_CPUS");
        ProcessorLocalApic::new(id, id, EnabledStatus::Enabled).to_aml_bytes(&mut body);
    }
    IoApic::new(mptable::ioapic_id(cpus), IOAPIC_START as u32, 0).to_aml_bytes(&mut body);
    // The SCI is level-triggered and active high, unlike the ISA default
    // (edge): ISA IRQ 9 to GSI 9 with those flags.
    body.extend_from_slice(&[MADT_INTERRUPT_SOURCE_OVERRIDE, 10, 0, SCI_IRQ as u8]);
    body.extend_from_slice(&SCI_IRQ.to_le_bytes());
    body.extend_from_slice(&MPS_INTI_ACTIVE_HIGH_LEVEL.to_le_bytes());
    // LINT1 of every local APIC is the NMI input, as the MP table says.
    body.extend_from_slice(&[MADT_LOCAL_APIC_NMI, 6, ALL_PROCESSORS, 0, 0, 1]);
    madt.append_slice(&body);
    madt.as_slice().to_vec()
}

/// The FADT pointing at the DSDT, the FACS and the PM registers.
fn fadt(dsdt: u64, facs: u64) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt)
        .firmware_ctrl_64(facs)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        // The sleep button is absent; the power button is the fixed one
        // (its flag clear).
        .flag(Flags::SlpButton)
        .flag(Flags::ResetRegSup)
        .preferred_pm_profile(PmProfile::EnterpriseServer);
    fadt.sci_int = (SCI_IRQ as u16).into();
    fadt.pm1a_evt_blk = u32::from(PM1A_EVT_PORT).into();
    fadt.pm1_evt_len = PM1_EVT_LEN;
    fadt.pm1a_cnt_blk = u32::from(PM1A_CNT_PORT).into();
    fadt.pm1_cnt_len = PM1_CNT_LEN;
    fadt.iapc_boot_arch = IAPC_BOOT_ARCH.into();
    fadt.reset_reg = GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(RESET_PORT),
    );
    fadt.reset_value = RESET_VALUE;
    aml_bytes(&fadt.finalize())
}

/// Builds the tables for `cpus` vCPUs, to be written at [`ACPI_START`].
pub fn build_acpi_tables(cpus: u32) -> Result<AcpiTables, AcpiError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(AcpiError::BadCpuCount(cpus));
    }
    // The RSDP comes first and names the XSDT, which names tables placed
    // after it: both are sized up front, and filled in last.
    let rsdp_len = Rsdp::len();
    let xsdt_offset = rsdp_len.next_multiple_of(16);
    let xsdt_len = SDT_HEADER_LEN + 2 * 8;
    let mut layout = Layout {
        bytes: vec![0; xsdt_offset + xsdt_len],
    };
    let dsdt_at = layout.place(&dsdt(), 16);
    let facs_at = layout.place(&aml_bytes(&FACS::new()), 64);
    let fadt_at = layout.place(&fadt(dsdt_at, facs_at), 16);
    let madt_at = layout.place(&madt(cpus), 16);

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_at);
    xsdt.add_entry(madt_at);
    let xsdt = aml_bytes(&xsdt);
    assert_eq!(xsdt.len(), xsdt_len, "XSDT size computed up front");
    layout.bytes[xsdt_offset..xsdt_offset + xsdt_len].copy_from_slice(&xsdt);
    let rsdp = aml_bytes(&Rsdp::new(OEM_ID, ACPI_START + xsdt_offset as u64));
    layout.bytes[..rsdp_len].copy_from_slice(&rsdp);

    if layout.bytes.len() > ACPI_MAX_SIZE {
        return Err(AcpiError::TooLarge(layout.bytes.len()));
    }
    Ok(AcpiTables {
        start: ACPI_START,
        bytes: layout.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table at guest address `addr` of `t`, by its header's length.
    fn table(t: &AcpiTables, addr: u64) -> &[u8] {
        let off = (addr - t.start) as usize;
        let len = u32::from_le_bytes(t.bytes[off + 4..off + 8].try_into().unwrap()) as usize;
        &t.bytes[off..off + len]
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    fn sums_to_zero(b: &[u8]) -> bool {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
    }

    /// Follows RSDP -> XSDT -> tables as the guest does; returns the tables
    /// by signature.
    fn walk(t: &AcpiTables) -> Vec<([u8; 4], Vec<u8>)> {
        let rsdp = &t.bytes[..36];
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert!(sums_to_zero(&rsdp[..20]), "RSDP 1.0 checksum");
        assert!(sums_to_zero(rsdp), "RSDP extended checksum");
        assert_eq!(rsdp[15], 2, "RSDP revision 2 (XSDT)");
        let xsdt = table(t, u64_at(rsdp, 24));
        assert_eq!(&xsdt[..4], b"XSDT");
        assert!(sums_to_zero(xsdt));
        let mut out = Vec::new();
        for entry in xsdt[36..].chunks(8) {
            let tb = table(t, u64::from_le_bytes(entry.try_into().unwrap()));
            assert!(sums_to_zero(tb), "{:?} checksum", &tb[..4]);
            out.push((tb[..4].try_into().unwrap(), tb.to_vec()));
        }
        out
    }

    fn find(tables: &[([u8; 4], Vec<u8>)], sig: &[u8; 4]) -> Vec<u8> {
        tables.iter().find(|(s, _)| s == sig).unwrap().1.clone()
    }

    #[test]
    fn the_guest_reaches_every_table_from_the_rsdp() {
        let t = build_acpi_tables(4).unwrap();
        assert_eq!(t.rsdp_address(), ACPI_START);
        assert_eq!(ACPI_START % 16, 0, "the RSDP is on a 16-byte boundary");
        let tables = walk(&t);
        let sigs: Vec<_> = tables.iter().map(|(s, _)| *s).collect();
        assert_eq!(sigs, vec![*b"FACP", *b"APIC"]);
        let fadt = find(&tables, b"FACP");
        // X_FIRMWARE_CTRL at 132, X_DSDT at 140.
        let facs = u64_at(&fadt, 132);
        assert_eq!(facs % 64, 0, "the FACS is 64-byte aligned");
        assert_eq!(&t.bytes[(facs - t.start) as usize..][..4], b"FACS");
        let dsdt = table(&t, u64_at(&fadt, 140));
        assert_eq!(&dsdt[..4], b"DSDT");
        assert!(sums_to_zero(dsdt));
    }

    #[test]
    fn fadt_points_at_the_pm_registers() {
        let tables = walk(&build_acpi_tables(1).unwrap());
        let fadt = find(&tables, b"FACP");
        assert_eq!(fadt[8], 6, "FADT revision 6");
        assert_eq!(u16::from_le_bytes([fadt[46], fadt[47]]), SCI_IRQ as u16);
        assert_eq!(
            u32_at(&fadt, 48),
            0,
            "no SMI command port: ACPI mode from reset"
        );
        assert_eq!(u32_at(&fadt, 56), u32::from(PM1A_EVT_PORT));
        assert_eq!(u32_at(&fadt, 64), u32::from(PM1A_CNT_PORT));
        assert_eq!((fadt[88], fadt[89]), (PM1_EVT_LEN, PM1_CNT_LEN));
        let flags = u32_at(&fadt, 112);
        assert_eq!(flags & Flags::PwrButton as u32, 0, "fixed power button");
        assert_ne!(flags & Flags::ResetRegSup as u32, 0);
        assert_eq!(flags & Flags::HwReducedAcpi as u32, 0);
        // RESET_REG: a GAS at 116 (space 1 = I/O, address at +4), value at 128.
        assert_eq!(fadt[116], 1);
        assert_eq!(u64_at(&fadt, 120), u64::from(RESET_PORT));
        assert_eq!(fadt[128], RESET_VALUE);
        let boot_arch = u16::from_le_bytes([fadt[109], fadt[110]]);
        assert_ne!(
            boot_arch & 0b10,
            0,
            "an i8042 exists, so the guest probes it"
        );
    }

    /// The MADT's structures as (type, bytes).
    fn madt_structures(madt: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = 44;
        while off < madt.len() {
            let len = madt[off + 1] as usize;
            assert!(len >= 2 && off + len <= madt.len(), "structure at {off}");
            out.push((madt[off], madt[off..off + len].to_vec()));
            off += len;
        }
        out
    }

    #[test]
    fn madt_lists_every_vcpu_the_ioapic_and_the_sci_override() {
        for cpus in [1, 2, 4, 8, 64, MAX_CPUS] {
            let tables = walk(&build_acpi_tables(cpus).unwrap());
            let madt = find(&tables, b"APIC");
            assert_eq!(u32_at(&madt, 36), APIC_START as u32);
            let s = madt_structures(&madt);
            let lapics: Vec<_> = s.iter().filter(|(t, _)| *t == 0).collect();
            assert_eq!(lapics.len(), cpus as usize);
            for (i, (_, b)) in lapics.iter().enumerate() {
                assert_eq!((b[2], b[3]), (i as u8, i as u8), "UID and APIC ID");
                assert_eq!(u32_at(b, 4), 1, "enabled");
            }
            let ioapics: Vec<_> = s.iter().filter(|(t, _)| *t == 1).collect();
            assert_eq!(ioapics.len(), 1);
            assert_eq!(ioapics[0].1[2], mptable::ioapic_id(cpus));
            assert_eq!(u32_at(&ioapics[0].1, 4), IOAPIC_START as u32);
            let isos: Vec<_> = s.iter().filter(|(t, _)| *t == 2).collect();
            assert_eq!(isos.len(), 1);
            let iso = &isos[0].1;
            assert_eq!((iso[2], iso[3], u32_at(iso, 4)), (0, 9, 9));
            assert_eq!(u16::from_le_bytes([iso[8], iso[9]]), 0b1101);
            assert!(s.iter().any(|(t, b)| *t == 4 && b[2] == 0xff && b[5] == 1));
        }
    }

    #[test]
    fn dsdt_gives_s5_and_the_legacy_devices() {
        let t = build_acpi_tables(1).unwrap();
        let tables = walk(&t);
        let dsdt = table(&t, u64_at(&find(&tables, b"FACP"), 140));
        let has = |needle: &[u8]| dsdt.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"_S5_"));
        // EISAID("PNP0501"), EISAID("PNP0303") and EISAID("PNP0A03"), as
        // AML dword constants.
        assert!(has(&[0x0c, 0x41, 0xd0, 0x05, 0x01]));
        assert!(has(&[0x0c, 0x41, 0xd0, 0x03, 0x03]));
        assert!(has(&[0x0c, 0x41, 0xd0, 0x0a, 0x03]));
        assert!(has(b"PCI0"));
    }

    #[test]
    fn cpu_counts_the_tables_cannot_describe_are_refused() {
        assert_eq!(build_acpi_tables(0).unwrap_err(), AcpiError::BadCpuCount(0));
        assert_eq!(
            build_acpi_tables(MAX_CPUS + 1).unwrap_err(),
            AcpiError::BadCpuCount(MAX_CPUS + 1)
        );
        assert!(build_acpi_tables(MAX_CPUS).unwrap().bytes.len() <= ACPI_MAX_SIZE);
    }
}
