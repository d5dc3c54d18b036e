//! x86_64 boot support: the guest memory map, the boot-time CPU state
//! (registers, GDT, page tables, MSRs, LAPIC), CPUID filtering, the e820 map,
//! the Linux zero page, the ACPI tables and the MP table.

pub mod acpi;
pub mod bootparams;
pub mod cpuid;
pub mod e820;
pub mod gdt;
pub mod layout;
pub mod mptable;
pub mod regs;
