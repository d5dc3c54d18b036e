//! The critmem user/kernel ABI: ioctl numbers and argument structs of
//! `/dev/critmem`, and the keys of `/proc/critmem`.
//!
//! This one file is the single source of truth. `critmem.ko` compiles it as a
//! module (`#[path]`), and the userspace crates compile it through the
//! `critmem-abi` crate (`lib.rs`). It therefore depends on nothing but
//! `core`, uses no `cfg(feature)`, and every struct is `#[repr(C)]` with no
//! implicit padding, so its layout is identical on both sides. Userspace
//! helpers belong in the crate's `std` modules, never here.
//!
//! Versioning: the structs only ever grow at the end through their reserved
//! words, and [`ABI_VERSION`] is bumped when a field's meaning changes.

/// Version reported by [`CRITMEM_IOC_INFO`] in [`PoolInfo::abi_version`].
pub const ABI_VERSION: u32 = 1;

/// Path of the memory operation file.
pub const DEVICE_PATH: &str = "/dev/critmem";
/// Path of the memory map file.
pub const MAP_FILE_PATH: &str = "/proc/critmem";
/// Name of the `reserve_mem=` label and of the `/proc/iomem` resource.
pub const RESERVE_MEM_LABEL: &str = "critmem";

/// ioctl "type" byte of every critmem ioctl.
pub const CRITMEM_IOC_MAGIC: u32 = 0xCE;

/// Pool source: the kernel's `reserve_mem=<size>:<align>:critmem`.
pub const SOURCE_RESERVE_MEM: u32 = 1;
/// Pool source: `memmap=<size>$<base>` plus `critmem.base=`/`critmem.size=`.
pub const SOURCE_MEMMAP: u32 = 2;

/// Argument of [`CRITMEM_IOC_ALLOC`].
///
/// `size` and `align` are inputs; `phys_start`, `phys_size` and `slice_id`
/// are filled in by the kernel on success.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocRequest {
    /// Requested slice size in bytes: non-zero and a multiple of 4 KiB.
    pub size: u64,
    /// Required alignment of the slice's physical start: a power of two, at
    /// least 4 KiB. Zero means 4 KiB.
    pub align: u64,
    /// Out: physical address of the slice's first byte.
    pub phys_start: u64,
    /// Out: size of the slice in bytes (equal to `size`).
    pub phys_size: u64,
    /// Out: the slice's id, as listed in `/proc/critmem`.
    pub slice_id: u64,
    /// Must be zero.
    pub reserved: [u64; 3],
}

/// Argument of [`CRITMEM_IOC_INFO`]: the pool's figures and the calling
/// file's slice, if any.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolInfo {
    /// [`ABI_VERSION`] of the running module.
    pub abi_version: u32,
    /// [`SOURCE_RESERVE_MEM`] or [`SOURCE_MEMMAP`].
    pub source: u32,
    /// Physical address of the pool's first byte.
    pub pool_start: u64,
    /// Pool size in bytes. The last byte is at `pool_start + pool_size - 1`.
    pub pool_size: u64,
    /// Alignment of `pool_start` in bytes (the largest power of two dividing
    /// it, capped at 1 GiB).
    pub pool_align: u64,
    /// Bytes not owned by any slice.
    pub free_bytes: u64,
    /// Part of `free_bytes` already zeroed and ready to hand out at once.
    pub free_zeroed_bytes: u64,
    /// Largest contiguous free extent in bytes.
    pub largest_free: u64,
    /// Number of live slices.
    pub slice_count: u64,
    /// This file's slice id, or 0 when it has none.
    pub slice_id: u64,
    /// This file's slice start, or 0 when it has none.
    pub slice_start: u64,
    /// This file's slice size, or 0 when it has none.
    pub slice_size: u64,
    /// Reserved, reads zero.
    pub reserved: [u64; 4],
}

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// The Linux `_IOC()` encoding (asm-generic, as used on x86).
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << IOC_DIRSHIFT)
        | (CRITMEM_IOC_MAGIC << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
}

/// Give this open file one contiguous slice of the pool.
/// `_IOWR(0xCE, 1, struct AllocRequest)`.
pub const CRITMEM_IOC_ALLOC: u32 = ioc(
    IOC_READ | IOC_WRITE,
    1,
    core::mem::size_of::<AllocRequest>(),
);
/// Report the pool's figures and this file's slice.
/// `_IOR(0xCE, 2, struct PoolInfo)`.
pub const CRITMEM_IOC_INFO: u32 = ioc(IOC_READ, 2, core::mem::size_of::<PoolInfo>());

/// Keys of `/proc/critmem`, one `key=value` per line, in this order. Numbers
/// are `0x`-prefixed hexadecimal for addresses and decimal for byte counts.
pub mod map_keys {
    /// ABI version, decimal.
    pub const VERSION: &str = "version";
    /// `reserve_mem` or `memmap`.
    pub const SOURCE: &str = "source";
    /// Physical address of the pool's first byte, hex.
    pub const START: &str = "start";
    /// Physical address of the pool's last byte (inclusive), hex.
    pub const END_INCLUSIVE: &str = "end_inclusive";
    /// Pool size in bytes, decimal.
    pub const SIZE: &str = "size";
    /// Alignment of the pool's start in bytes, decimal.
    pub const ALIGN: &str = "align";
    /// Bytes owned by no slice, decimal.
    pub const FREE: &str = "free";
    /// Free bytes already zeroed, decimal.
    pub const FREE_ZEROED: &str = "free_zeroed";
    /// Bytes of the largest free run made of whole 1 GiB-aligned 1 GiB
    /// blocks (what one more 1 GiB-paged slice could get), decimal.
    pub const LARGEST_FREE_1G: &str = "largest_free_1g";
    /// Number of live slices, decimal.
    pub const SLICES: &str = "slices";
    /// One line per live slice:
    /// `slice=id=<n> start=<hex> end_inclusive=<hex> size=<dec> pid=<n> state=<word>`,
    /// where `<word>` is one of [`SLICE_STATE_ZEROING`], [`SLICE_STATE_ALLOCATED`] or
    /// [`SLICE_STATE_MAPPED`].
    pub const SLICE: &str = "slice";

    /// Value of [`SOURCE`] for a `reserve_mem=<size>:<align>:critmem` pool.
    pub const SOURCE_RESERVE_MEM: &str = "reserve_mem";
    /// Value of [`SOURCE`] for a `memmap=<size>$<base>` pool.
    pub const SOURCE_MEMMAP: &str = "memmap";

    /// Slice state: taken from the pool, its unzeroed parts are being zeroed
    /// before the ALLOC (or first mmap) that asked for it returns.
    pub const SLICE_STATE_ZEROING: &str = "zeroing";
    /// Slice state: owned by an open file, not mapped.
    pub const SLICE_STATE_ALLOCATED: &str = "allocated";
    /// Slice state: mapped by at least one mapping.
    pub const SLICE_STATE_MAPPED: &str = "mapped";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(core::mem::size_of::<AllocRequest>(), 64);
        assert_eq!(core::mem::size_of::<PoolInfo>(), 120);
        assert_eq!(core::mem::align_of::<PoolInfo>(), 8);
    }

    #[test]
    fn ioctl_numbers_match_the_c_macros() {
        // _IOWR(0xCE, 1, 64 bytes) and _IOR(0xCE, 2, 120 bytes).
        assert_eq!(CRITMEM_IOC_ALLOC, 0xc040_ce01);
        assert_eq!(CRITMEM_IOC_INFO, 0x8078_ce02);
    }
}
