//! Boot-time CPU state of a vCPU for the Linux 64-bit boot protocol:
//! general registers, special registers (GDT, page tables, long mode), FPU,
//! MSRs and the local APIC's LINT pins.
//!
//! The boot vCPU starts at the kernel's 64-bit entry point in long mode, with
//! the first 1 GiB identity-mapped, `rsi` pointing at the zero page.
//! Application processors are started later by the guest (INIT/SIPI through
//! the in-kernel LAPIC) and only need CPUID, MSRs and LAPIC set.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_msr_entry, kvm_regs, kvm_sregs, Msrs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt::{self, kvm_segment_from_gdt};
use super::layout::{
    BOOT_STACK_POINTER, GDT_START, IDT_START, PDE_START, PDPTE_START, PML4_START, ZERO_PAGE_START,
};

/// CR0: protected mode enable.
pub const X86_CR0_PE: u64 = 1 << 0;
/// CR0: extension type (always 1 on modern CPUs).
pub const X86_CR0_ET: u64 = 1 << 4;
/// CR0: paging.
pub const X86_CR0_PG: u64 = 1 << 31;
/// CR4: physical address extension.
pub const X86_CR4_PAE: u64 = 1 << 5;
/// EFER: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER: long mode active.
pub const EFER_LMA: u64 = 1 << 10;

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_HUGE: u64 = 1 << 7;

/// MSR indices set at boot.
pub mod msr_index {
    /// IA32_TSC.
    pub const IA32_TSC: u32 = 0x10;
    /// IA32_SYSENTER_CS.
    pub const IA32_SYSENTER_CS: u32 = 0x174;
    /// IA32_SYSENTER_ESP.
    pub const IA32_SYSENTER_ESP: u32 = 0x175;
    /// IA32_SYSENTER_EIP.
    pub const IA32_SYSENTER_EIP: u32 = 0x176;
    /// IA32_MISC_ENABLE.
    pub const IA32_MISC_ENABLE: u32 = 0x1a0;
    /// IA32_TSC_DEADLINE: the TSC value at which the LAPIC timer fires in
    /// TSC-deadline mode; 0 disarms it. Only read, for fault reports.
    pub const IA32_TSC_DEADLINE: u32 = 0x6e0;
    /// STAR.
    pub const STAR: u32 = 0xc000_0081;
    /// LSTAR.
    pub const LSTAR: u32 = 0xc000_0082;
    /// CSTAR.
    pub const CSTAR: u32 = 0xc000_0083;
    /// SYSCALL_MASK.
    pub const SYSCALL_MASK: u32 = 0xc000_0084;
    /// KERNEL_GS_BASE.
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
}

/// IA32_MISC_ENABLE: fast string operations enabled.
pub const MISC_ENABLE_FAST_STRING: u64 = 1;

/// Offset of LVT LINT0 in the LAPIC register page.
pub const APIC_LVT0: usize = 0x350;
/// Offset of LVT LINT1 in the LAPIC register page.
pub const APIC_LVT1: usize = 0x360;
/// LVT delivery mode ExtINT (the legacy PIC's INTR).
pub const APIC_MODE_EXTINT: u32 = 0x7;
/// LVT delivery mode NMI.
pub const APIC_MODE_NMI: u32 = 0x4;

/// Errors of boot-time register setup.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// Writing the GDT, IDT or page tables to guest memory failed.
    #[error("cannot write the boot {what} to guest memory")]
    WriteGuestMemory {
        /// Which structure.
        what: &'static str,
        /// The guest memory error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    /// Building the MSR list failed.
    #[error("cannot build the MSR list")]
    MsrList,
}

/// General registers of the boot vCPU: `rip` at the kernel's 64-bit entry,
/// `rsi` at the zero page, a small stack below the page tables.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: 0x2, // bit 1 is reserved and always set
        rip: entry,
        rsp: BOOT_STACK_POINTER,
        rbp: BOOT_STACK_POINTER,
        rsi: ZERO_PAGE_START,
        ..Default::default()
    }
}

/// FPU state after reset: x87 control word 0x37f, MXCSR 0x1f80.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// Writes the identity page tables of the first 1 GiB (2 MiB pages) and
/// returns the value for CR3.
pub fn write_page_tables(mem: &GuestMemoryMmap) -> Result<u64, RegsError> {
    let err = |source| RegsError::WriteGuestMemory {
        what: "page tables",
        source,
    };
    mem.write_obj(
        PDPTE_START | PTE_PRESENT | PTE_WRITABLE,
        GuestAddress(PML4_START),
    )
    .map_err(err)?;
    mem.write_obj(
        PDE_START | PTE_PRESENT | PTE_WRITABLE,
        GuestAddress(PDPTE_START),
    )
    .map_err(err)?;
    for i in 0..512u64 {
        mem.write_obj(
            (i << 21) | PTE_PRESENT | PTE_WRITABLE | PTE_HUGE,
            GuestAddress(PDE_START + i * 8),
        )
        .map_err(err)?;
    }
    Ok(PML4_START)
}

/// Writes the boot GDT and an empty IDT to guest memory.
pub fn write_gdt(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    let err = |source| RegsError::WriteGuestMemory {
        what: "GDT",
        source,
    };
    for (i, entry) in gdt::boot_gdt().iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_START + 8 * i as u64))
            .map_err(err)?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START)).map_err(err)?;
    Ok(())
}

/// Puts `sregs` into 64-bit long mode with the boot GDT's segments and the
/// page tables at `cr3`. Other fields keep the values KVM reported.
pub fn configure_long_mode(sregs: &mut kvm_sregs, cr3: u64) {
    let table = gdt::boot_gdt();
    let code = kvm_segment_from_gdt(table[gdt::CODE_INDEX as usize], gdt::CODE_INDEX);
    let data = kvm_segment_from_gdt(table[gdt::DATA_INDEX as usize], gdt::DATA_INDEX);
    let tss = kvm_segment_from_gdt(table[gdt::TSS_INDEX as usize], gdt::TSS_INDEX);

    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&table) - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;

    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;

    sregs.cr3 = cr3;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
}

/// The MSRs every vCPU starts with: SYSENTER/SYSCALL state cleared, TSC 0,
/// fast strings enabled.
pub fn boot_msrs() -> Result<Msrs, RegsError> {
    use msr_index::*;
    let entries: Vec<kvm_msr_entry> = [
        (IA32_SYSENTER_CS, 0),
        (IA32_SYSENTER_ESP, 0),
        (IA32_SYSENTER_EIP, 0),
        (STAR, 0),
        (CSTAR, 0),
        (KERNEL_GS_BASE, 0),
        (SYSCALL_MASK, 0),
        (LSTAR, 0),
        (IA32_TSC, 0),
        (IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    ]
    .iter()
    .map(|&(index, data)| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    })
    .collect();
    Msrs::from_entries(&entries).map_err(|_| RegsError::MsrList)
}

fn lapic_reg(lapic: &kvm_lapic_state, offset: usize) -> u32 {
    let b = &lapic.regs[offset..offset + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

fn set_lapic_reg(lapic: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, byte) in value.to_le_bytes().iter().enumerate() {
        lapic.regs[offset + i] = *byte as _;
    }
}

fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Wires LINT0 to ExtINT (the 8259 PIC) and LINT1 to NMI, as the MP table
/// declares and as a PC BIOS leaves them.
pub fn configure_lint(lapic: &mut kvm_lapic_state) {
    let lvt0 = lapic_reg(lapic, APIC_LVT0);
    set_lapic_reg(lapic, APIC_LVT0, with_delivery_mode(lvt0, APIC_MODE_EXTINT));
    let lvt1 = lapic_reg(lapic, APIC_LVT1);
    set_lapic_reg(lapic, APIC_LVT1, with_delivery_mode(lvt1, APIC_MODE_NMI));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let m = mem();
        assert_eq!(write_page_tables(&m).unwrap(), PML4_START);
        let pml4: u64 = m.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 3);
        let pdpte: u64 = m.read_obj(GuestAddress(PDPTE_START)).unwrap();
        assert_eq!(pdpte, PDE_START | 3);
        let pde0: u64 = m.read_obj(GuestAddress(PDE_START)).unwrap();
        assert_eq!(pde0, 0x83);
        let pde_last: u64 = m.read_obj(GuestAddress(PDE_START + 511 * 8)).unwrap();
        assert_eq!(pde_last, (511 << 21) | 0x83);
        // Each entry maps 2 MiB: together they cover exactly 1 GiB.
        assert_eq!((pde_last & !0xfff) + (2 << 20), 1 << 30);
    }

    #[test]
    fn gdt_is_written() {
        let m = mem();
        write_gdt(&m).unwrap();
        let code: u64 = m.read_obj(GuestAddress(GDT_START + 8)).unwrap();
        assert_eq!(code, 0x00af_9b00_0000_ffff);
        let idt: u64 = m.read_obj(GuestAddress(IDT_START)).unwrap();
        assert_eq!(idt, 0);
    }

    #[test]
    fn long_mode_sregs() {
        let mut s = kvm_sregs::default();
        configure_long_mode(&mut s, PML4_START);
        assert_eq!(s.cr3, PML4_START);
        assert_ne!(s.cr0 & X86_CR0_PG, 0);
        assert_ne!(s.cr0 & X86_CR0_PE, 0);
        assert_ne!(s.cr4 & X86_CR4_PAE, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.cs.selector, 8);
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.ss.selector, 0x10);
        assert_eq!(s.tr.selector, 0x18);
        assert_eq!(s.gdt.base, GDT_START);
        assert_eq!(s.gdt.limit, 31);
    }

    #[test]
    fn boot_registers() {
        let r = boot_regs(0x100200);
        assert_eq!(r.rip, 0x100200);
        assert_eq!(r.rsi, ZERO_PAGE_START);
        assert_eq!(r.rsp, BOOT_STACK_POINTER);
        assert_eq!(r.rflags, 2);
        let f = boot_fpu();
        assert_eq!((f.fcw, f.mxcsr), (0x37f, 0x1f80));
    }

    #[test]
    fn msrs_list() {
        let msrs = boot_msrs().unwrap();
        let e = msrs.as_slice();
        assert_eq!(e.len(), 10);
        let misc = e
            .iter()
            .find(|m| m.index == msr_index::IA32_MISC_ENABLE)
            .unwrap();
        assert_eq!(misc.data, MISC_ENABLE_FAST_STRING);
    }

    #[test]
    fn lint_pins() {
        let mut l = kvm_lapic_state::default();
        set_lapic_reg(&mut l, APIC_LVT0, 0x0001_0000); // masked, fixed
        set_lapic_reg(&mut l, APIC_LVT1, 0x0001_0700);
        configure_lint(&mut l);
        assert_eq!(lapic_reg(&l, APIC_LVT0), 0x0001_0700);
        assert_eq!(lapic_reg(&l, APIC_LVT1), 0x0001_0400);
    }
}
