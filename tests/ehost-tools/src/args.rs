//! The number grammar of cmtool's options: the kernel's size grammar of
//! [`critmem_abi::units`] (decimal or `0x` hex, optional K/M/G/T/P/E
//! suffix), the same as `vmm` and `critmem-boot` read.

/// Parses `123`, `0x7b`, `4K`, `2M`, `1G` (also a clap value parser).
pub fn num(s: &str) -> Result<u64, String> {
    critmem_abi::units::parse(s, "number").map_err(|e| e.to_string())
}
