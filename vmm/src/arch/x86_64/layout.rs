//! The guest-physical memory map: every fixed guest address the VMM uses,
//! and how guest RAM is split around the MMIO hole. This is the only place
//! that defines them.
//!
//! ```text
//! 0x0000_0500  GDT                      (boot-time, 64-bit code/data/TSS)
//! 0x0000_0520  IDT                      (empty)
//! 0x0000_7000  zero page                (struct boot_params)
//! 0x0000_8ff0  boot stack pointer
//! 0x0000_9000  PML4, PDPT, PD           (identity map of the first 1 GiB)
//! 0x0002_0000  kernel command line
//! 0x0009_fc00  EBDA ... 1 MiB           e820 reserved
//! 0x000e_0000    ACPI tables            (RSDP first, where the kernel scans)
//! 0x000f_0000    MP floating pointer + MP configuration table
//! 0x0010_0000  kernel (bzImage protected-mode code / vmlinux segments)
//!   ...        initramfs at the top of low RAM
//! 3 GiB..4 GiB MMIO hole                (PCI window, I/O APIC, LAPIC, KVM TSS), no RAM
//! 4 GiB..      RAM above the hole when memory > 3 GiB
//! ```
//!
//! The hole starts and ends on 1 GiB boundaries, so guest RAM split around
//! it stays congruent modulo 1 GiB to one contiguous host mapping: see
//! [`ram_ranges`].

/// Guest address of the boot-time GDT.
pub const GDT_START: u64 = 0x500;
/// Guest address of the boot-time (empty) IDT.
pub const IDT_START: u64 = 0x520;
/// Guest address of the Linux zero page (`struct boot_params`).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer of the boot vCPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Guest address of the boot page tables' PML4.
pub const PML4_START: u64 = 0x9000;
/// Guest address of the boot page tables' PDPT.
pub const PDPTE_START: u64 = 0xa000;
/// Guest address of the boot page tables' page directory.
pub const PDE_START: u64 = 0xb000;
/// Guest address of the kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Room reserved for the kernel command line, including its NUL.
pub const CMDLINE_MAX_SIZE: usize = 0x10000;
/// Start of the Extended BIOS Data Area: RAM below it is usable by the guest.
pub const EBDA_START: u64 = 0x9fc00;
/// Where the ACPI tables are written, the RSDP first. The RSDP must sit in
/// the BIOS area (0xE0000-0xFFFFF) for a guest that scans for it rather than
/// reading `acpi_rsdp_addr` from the zero page.
pub const ACPI_START: u64 = 0xe0000;
/// Room for the ACPI tables (up to the MP table).
pub const ACPI_MAX_SIZE: usize = 0x10000;
/// Where the MP floating pointer and configuration table are written (inside
/// the BIOS area the kernel scans, 0xF0000-0xFFFFF).
pub const MPTABLE_START: u64 = 0xf0000;
/// Room for the MP table (up to the end of the BIOS area).
pub const MPTABLE_MAX_SIZE: usize = 0x10000;
/// Start of high memory: the kernel is loaded here.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the MMIO hole below 4 GiB (1 GiB aligned).
pub const MMIO_GAP_START: u64 = 3 << 30;
/// End of the MMIO hole (exclusive).
pub const MMIO_GAP_END: u64 = 4 << 30;
/// Guest address of the three pages KVM needs for the TSS (Intel), inside the
/// MMIO hole.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// First guest address of the PCI root's 32-bit memory window, where the
/// BARs of PCI devices go: the MMIO hole up to the I/O APIC.
pub const PCI_MMIO32_START: u64 = MMIO_GAP_START;
/// Last guest address (inclusive) of the 32-bit PCI memory window.
pub const PCI_MMIO32_LAST: u64 = IOAPIC_START - 1;
/// Guest address of the I/O APIC.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Guest address of the local APIC.
pub const APIC_START: u64 = 0xfee0_0000;
/// Smallest guest RAM accepted: the kernel must fit above 1 MiB.
pub const MIN_MEMORY: u64 = 32 << 20;
/// Largest guest RAM accepted (keeps guest-physical addresses below 1 TiB).
pub const MAX_MEMORY: u64 = 1 << 39;
/// Largest vCPU count. The MP table and the MADT give each vCPU an 8-bit
/// APIC ID, 0xff is the broadcast ID, and the I/O APIC takes the ID after
/// the last vCPU's: IDs 0..=253 are the vCPUs'.
pub const MAX_CPUS: u32 = 254;
/// 2 MiB.
pub const SIZE_2M: u64 = 2 << 20;
/// 1 GiB: the largest stage-2 page size, and the congruence modulus of the
/// memslot layout.
pub const SIZE_1G: u64 = 1 << 30;

// The fixed addresses do not overlap, checked at compile time: GDT + IDT
// below the zero page; the page tables after the stack; the command line
// below the EBDA; the ACPI tables, then the MP table, inside the BIOS area;
// the kernel above it; the KVM TSS, I/O APIC and LAPIC inside the MMIO
// hole, which is 1 GiB aligned.
const _: () = {
    assert!(IDT_START + 8 <= ZERO_PAGE_START);
    assert!(ZERO_PAGE_START + 4096 <= BOOT_STACK_POINTER);
    assert!(BOOT_STACK_POINTER < PML4_START);
    assert!(PDPTE_START == PML4_START + 0x1000);
    assert!(PDE_START == PDPTE_START + 0x1000);
    assert!(PDE_START + 0x1000 <= CMDLINE_START);
    assert!(CMDLINE_START + CMDLINE_MAX_SIZE as u64 <= EBDA_START);
    assert!(EBDA_START <= ACPI_START);
    assert!(ACPI_START + ACPI_MAX_SIZE as u64 <= MPTABLE_START);
    assert!(MPTABLE_START + MPTABLE_MAX_SIZE as u64 <= HIMEM_START);
    assert!(KVM_TSS_ADDRESS >= MMIO_GAP_START && KVM_TSS_ADDRESS + 3 * 4096 <= MMIO_GAP_END);
    assert!(IOAPIC_START >= MMIO_GAP_START && IOAPIC_START < MMIO_GAP_END);
    assert!(PCI_MMIO32_START >= MMIO_GAP_START && PCI_MMIO32_LAST < IOAPIC_START);
    assert!(APIC_START >= MMIO_GAP_START && APIC_START < MMIO_GAP_END);
    assert!(MMIO_GAP_START & (SIZE_1G - 1) == 0 && MMIO_GAP_END & (SIZE_1G - 1) == 0);
};

/// One contiguous range of guest RAM, backed by `[offset, offset + size)` of
/// the single host mapping of guest memory. Each range is one KVM memslot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRange {
    /// First guest-physical address.
    pub gpa: u64,
    /// Length in bytes.
    pub size: u64,
    /// Offset of `gpa` inside the host mapping of guest memory.
    pub offset: u64,
}

impl RamRange {
    /// One past the last guest-physical address.
    pub fn end(&self) -> u64 {
        self.gpa + self.size
    }
}

/// Splits `mem_size` bytes of RAM around the MMIO hole: RAM from 0 up to the
/// hole, and the rest from 4 GiB up.
///
/// The backing offsets follow the guest addresses without gaps, so one host
/// mapping of `mem_size` bytes backs all ranges. Because the hole is 1 GiB
/// aligned and 1 GiB long, `gpa - offset` is a multiple of 1 GiB for every
/// range: with the host mapping at a 1 GiB-aligned address, guest-physical
/// and host-virtual addresses are congruent modulo 1 GiB, the condition for
/// KVM to map the guest with 1 GiB stage-2 pages.
pub fn ram_ranges(mem_size: u64) -> Vec<RamRange> {
    let low = mem_size.min(MMIO_GAP_START);
    let mut ranges = vec![RamRange {
        gpa: 0,
        size: low,
        offset: 0,
    }];
    if mem_size > low {
        ranges.push(RamRange {
            gpa: MMIO_GAP_END,
            size: mem_size - low,
            offset: low,
        });
    }
    ranges
}

/// End (exclusive) of the RAM below the MMIO hole.
pub fn low_ram_end(mem_size: u64) -> u64 {
    mem_size.min(MMIO_GAP_START)
}

/// True if every range keeps guest-physical and backing offsets congruent
/// modulo `modulus` (a power of two).
pub fn is_congruent(ranges: &[RamRange], modulus: u64) -> bool {
    ranges
        .iter()
        .all(|r| r.gpa.wrapping_sub(r.offset) % modulus == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_memory_is_one_range() {
        let r = ram_ranges(512 << 20);
        assert_eq!(
            r,
            vec![RamRange {
                gpa: 0,
                size: 512 << 20,
                offset: 0
            }]
        );
        assert_eq!(low_ram_end(512 << 20), 512 << 20);
    }

    #[test]
    fn exactly_three_gib_needs_no_high_range() {
        let r = ram_ranges(3 << 30);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].end(), MMIO_GAP_START);
    }

    #[test]
    fn large_memory_is_split_around_the_hole() {
        let mem = 6 << 30;
        let r = ram_ranges(mem);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            RamRange {
                gpa: 0,
                size: 3 << 30,
                offset: 0
            }
        );
        assert_eq!(
            r[1],
            RamRange {
                gpa: 4 << 30,
                size: 3 << 30,
                offset: 3 << 30
            }
        );
        assert_eq!(r.iter().map(|r| r.size).sum::<u64>(), mem);
        assert_eq!(low_ram_end(mem), MMIO_GAP_START);
        // No range touches the hole.
        for range in &r {
            assert!(range.end() <= MMIO_GAP_START || range.gpa >= MMIO_GAP_END);
        }
    }

    #[test]
    fn memslots_are_congruent_modulo_1g() {
        for mem in [
            32 << 20,
            1 << 30,
            (3 << 30) - (2 << 20),
            3 << 30,
            (3 << 30) + (2 << 20),
            5 << 30,
            (7 << 30) + (6 << 20),
        ] {
            let r = ram_ranges(mem);
            assert!(is_congruent(&r, SIZE_1G), "{mem:#x}: {r:?}");
            // Offsets are contiguous in the backing mapping.
            let mut next = 0;
            for range in &r {
                assert_eq!(range.offset, next);
                next += range.size;
            }
            assert_eq!(next, mem);
        }
        let skewed = [RamRange {
            gpa: 4 << 30,
            size: 1 << 30,
            offset: 2 << 20,
        }];
        assert!(!is_congruent(&skewed, SIZE_1G));
        assert!(is_congruent(&skewed, SIZE_2M));
    }
}
