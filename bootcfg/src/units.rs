//! Physical addresses as the kernel and this tool write them. Sizes are
//! [`critmem_abi::units`]: the kernel's `memparse()` grammar, shared with
//! `vmm` and cmtool.

/// Formats a physical address as the kernel writes it: `0x` and lowercase
/// hexadecimal.
pub fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}
