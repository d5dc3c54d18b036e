// SPDX-License-Identifier: GPL-2.0

//! Small safe wrappers around the kernel's physical-memory bookkeeping:
//! `reserve_mem` lookup, the `/proc/iomem` resource tree, and `memremap`.

use core::ptr::NonNull;
use crate::{firmware_map, sys};
use kernel::{bindings, ffi, prelude::*, types::Opaque};

/// Name of the `reserve_mem=` label and of our `/proc/iomem` entry.
const NAME: &CStr = c"critmem";

/// Finds the `reserve_mem=<size>:<align>:critmem` region as `(start, size)`.
pub(crate) fn find_reserve_mem() -> Option<(u64, u64)> {
    let mut start: bindings::phys_addr_t = 0;
    let mut size: bindings::phys_addr_t = 0;
    // SAFETY: `NAME` is a NUL-terminated static string, and `start` and `size`
    // are valid for writes for the duration of the call; the function only
    // reads the name and writes the two outputs.
    let found =
        unsafe { bindings::reserve_mem_find_by_name(NAME.as_char_ptr(), &mut start, &mut size) };
    (found != 0).then_some((start, size))
}

/// How a physical range relates to the resources of one kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Overlap {
    /// No byte of the range is in such a resource.
    Disjoint,
    /// Every resource touching the range is of that kind.
    Inside,
    /// The range touches resources of that kind and of others.
    Mixed,
}

/// Relation of `[start, start + size)` to the top-level "System RAM"
/// resources of `/proc/iomem`.
pub(crate) fn system_ram_overlap(start: u64, size: u64) -> Overlap {
    // SAFETY: `region_intersects` only reads the resource tree under its own
    // lock; any range is a valid argument.
    let r = unsafe {
        bindings::region_intersects(
            start,
            size as usize,
            bindings::IORESOURCE_SYSTEM_RAM as ffi::c_ulong,
            bindings::IORES_DESC_NONE as ffi::c_ulong,
        )
    };
    match r as u32 {
        bindings::REGION_DISJOINT => Overlap::Disjoint,
        bindings::REGION_INTERSECTS => Overlap::Inside,
        _ => Overlap::Mixed,
    }
}

/// Accumulator of [`walk_mem`]'s callback.
struct Walk {
    /// Bytes covered by the matching resources.
    covered: u64,
    /// First matching resource that is not System RAM, as `[start, end]`.
    first_foreign: Option<(u64, u64)>,
}

/// Callback of `walk_iomem_res_desc`.
///
/// # Safety
///
/// `res` must point at a valid resource and `arg` at a [`Walk`] not otherwise
/// accessed during the walk.
unsafe extern "C" fn walk_one(res: *mut bindings::resource, arg: *mut ffi::c_void) -> ffi::c_int {
    // SAFETY: The caller passes a valid resource (a clipped copy made by
    // `walk_iomem_res_desc`) and our `Walk`, exclusively.
    let (res, walk) = unsafe { (&*res, &mut *arg.cast::<Walk>()) };
    walk.covered += res.end - res.start + 1;
    let sysram = bindings::IORESOURCE_SYSRAM as ffi::c_ulong;
    if res.flags & sysram == 0 && walk.first_foreign.is_none() {
        walk.first_foreign = Some((res.start, res.end));
    }
    0
}

/// Walks the memory resources matching `desc` and `flags` inside
/// `[start, start + size)`.
fn walk_mem(start: u64, size: u64, desc: u32, flags: u32) -> Walk {
    let mut walk = Walk {
        covered: 0,
        first_foreign: None,
    };
    // SAFETY: `walk_one` matches the callback type and its requirements:
    // the tree walk passes valid resources, and `walk` lives on this stack
    // frame, used by nothing else during the call.
    unsafe {
        bindings::walk_iomem_res_desc(
            desc as ffi::c_ulong,
            flags as ffi::c_ulong,
            start,
            start + size - 1,
            (&raw mut walk).cast(),
            Some(walk_one),
        )
    };
    walk
}

/// Bytes of `[start, start + size)` covered by E820 "Reserved" entries.
pub(crate) fn e820_reserved_bytes(start: u64, size: u64) -> u64 {
    walk_mem(
        start,
        size,
        bindings::IORES_DESC_RESERVED,
        bindings::IORESOURCE_MEM,
    )
    .covered
}

/// The firmware's own memory map, from `/sys/firmware/memmap/N/{start,end,type}`
/// (see `firmware_map.rs` for why), into `entries`. `Err(ENOENT)` when the
/// kernel has no such directory (`CONFIG_FIRMWARE_MEMMAP` is off),
/// `Err(EINVAL)` when an entry is malformed.
pub(crate) fn firmware_map(entries: &mut KVec<firmware_map::Entry>) -> Result {
    let mut path = [0u8; firmware_map::PATH_LEN];
    let mut start = [0u8; 24];
    let mut end = [0u8; 24];
    let mut kind = [0u8; 48];
    for index in 0..firmware_map::MAX_ENTRIES {
        let mut read = |field: &[u8], buf: &mut [u8]| -> Result<usize> {
            let len = firmware_map::sysfs_path(&mut path, index, field).ok_or(EINVAL)?;
            let path = CStr::from_bytes_with_nul(&path[..len]).map_err(|_| EINVAL)?;
            sys::read_file(path, buf)
        };
        let start_len = match read(b"start", &mut start) {
            Err(e) if e == ENOENT && index > 0 => return Ok(()),
            other => other?,
        };
        let end_len = read(b"end", &mut end)?;
        let kind_len = read(b"type", &mut kind)?;
        let entry = firmware_map::Entry::parse(&start[..start_len], &end[..end_len], &kind[..kind_len])
            .ok_or(EINVAL)?;
        entries.push(entry, GFP_KERNEL)?;
    }
    Ok(())
}

/// The first busy resource in `[start, start + size)` that is not System
/// RAM, i.e. a range some driver or the firmware claimed, as `[start, end]`.
pub(crate) fn busy_claim(start: u64, size: u64) -> Option<(u64, u64)> {
    walk_mem(
        start,
        size,
        bindings::IORES_DESC_NONE,
        bindings::IORESOURCE_MEM | bindings::IORESOURCE_BUSY,
    )
    .first_foreign
}

/// The pool's entry "critmem" in `/proc/iomem`.
///
/// # Invariants
///
/// - For `Inserted`, the boxed resource is linked in the `iomem_resource`
///   tree by `insert_resource`, and unlinked only in [`Drop`].
/// - For `Requested`, `__request_region` returned a busy resource for
///   `[start, start + size)`, released only in [`Drop`].
pub(crate) enum IomemClaim {
    /// A child of "System RAM" (reserve_mem memory is RAM, whose resource is
    /// busy, so it cannot be requested, only nested into).
    Inserted(KBox<Opaque<bindings::resource>>),
    /// A busy region requested inside an E820 "Reserved" resource.
    Requested { start: u64, size: u64 },
}

// SAFETY: The claim only holds pointers to resources owned by it or by the
// resource tree, which is protected by its own lock; it may be dropped on any
// thread.
unsafe impl Send for IomemClaim {}
// SAFETY: `IomemClaim` has no `&self` methods that touch the pointers.
unsafe impl Sync for IomemClaim {}

impl IomemClaim {
    /// Nests a busy, exclusive "critmem" resource for `[start, start + size)`
    /// into the System RAM resource that contains it.
    pub(crate) fn insert_into_ram(start: u64, size: u64) -> Result<Self> {
        let res = KBox::new(
            Opaque::new(bindings::resource {
                start,
                end: start + size - 1,
                name: NAME.as_char_ptr(),
                flags: (bindings::IORESOURCE_MEM
                    | bindings::IORESOURCE_BUSY
                    | bindings::IORESOURCE_EXCLUSIVE) as ffi::c_ulong,
                desc: bindings::IORES_DESC_NONE as ffi::c_ulong,
                parent: core::ptr::null_mut(),
                sibling: core::ptr::null_mut(),
                child: core::ptr::null_mut(),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `res` is a valid, heap-allocated, unlinked resource whose
        // name is static; it is not moved or freed while linked, because the
        // INVARIANT below keeps it linked only while `Self` owns the box, and
        // `Drop` unlinks it before the box is freed.
        let r = unsafe { bindings::insert_resource(&raw mut bindings::iomem_resource, res.get()) };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        Ok(Self::Inserted(res))
    }

    /// Requests `[start, start + size)` as a busy, exclusive "critmem"
    /// region: exclusive, so that `/dev/mem` on a `STRICT_DEVMEM` kernel
    /// cannot read live guest memory (`iomem_is_exclusive`). Fails with
    /// `EBUSY` if anyone else holds a busy resource there.
    pub(crate) fn request(start: u64, size: u64) -> Result<Self> {
        // SAFETY: `iomem_resource` is the root of the memory resource tree,
        // and `NAME` is static, so it outlives the region.
        let res = unsafe {
            bindings::__request_region(
                &raw mut bindings::iomem_resource,
                start,
                size,
                NAME.as_char_ptr(),
                bindings::IORESOURCE_EXCLUSIVE as ffi::c_int,
            )
        };
        if res.is_null() {
            return Err(EBUSY);
        }
        Ok(Self::Requested { start, size })
    }
}

impl Drop for IomemClaim {
    fn drop(&mut self) {
        match self {
            Self::Inserted(res) => {
                // SAFETY: By the type invariant, `res` is linked in the tree
                // by `insert_resource`; this unlinks it before the box frees
                // it.
                unsafe { bindings::remove_resource(res.get()) };
            }
            Self::Requested { start, size, .. } => {
                // SAFETY: By the type invariant, we hold the region
                // `[start, start + size)` requested from `iomem_resource`.
                unsafe {
                    bindings::__release_region(&raw mut bindings::iomem_resource, *start, *size)
                };
            }
        }
    }
}

/// A write-back kernel mapping of the pool, from `memremap(MEMREMAP_WB)`.
///
/// For RAM (reserve_mem) this is the direct map; for E820-reserved memory
/// (memmap) it is a new cacheable mapping, which also records the range as
/// write-back in the PAT memtype tree so user mappings inherit write-back.
///
/// # Invariants
///
/// `addr` maps `[start, start + size)` write-back until [`Drop`] unmaps it.
pub(crate) struct KernelMapping {
    addr: NonNull<u8>,
    start: u64,
    size: u64,
}

// SAFETY: The mapping is a plain kernel virtual range usable from any CPU.
unsafe impl Send for KernelMapping {}
// SAFETY: `&self` methods only write through the mapping to memory the caller
// owns exclusively (see `zero`), so sharing the handle is fine.
unsafe impl Sync for KernelMapping {}

impl KernelMapping {
    /// Maps `[start, start + size)` write-back.
    pub(crate) fn new(start: u64, size: u64) -> Result<Self> {
        // SAFETY: `memremap` accepts any range; it returns NULL if it cannot
        // map it write-back.
        let addr = unsafe {
            bindings::memremap(start, size as usize, bindings::MEMREMAP_WB as ffi::c_ulong)
        };
        let addr = NonNull::new(addr.cast::<u8>()).ok_or(ENOMEM)?;
        Ok(Self { addr, start, size })
    }

    /// Writes zeros to `[pa, pa + len)`.
    ///
    /// The caller must own that range of the pool (free, or a slice not yet
    /// handed out), so that no mapping observes the writes. The pool's memory
    /// holds no kernel object, so this cannot break the kernel's memory
    /// safety in any case; out-of-range requests are refused with `EINVAL`,
    /// and then nothing was written.
    pub(crate) fn zero(&self, pa: u64, len: u64) -> Result {
        let in_range = pa >= self.start
            && pa
                .checked_add(len)
                .is_some_and(|end| end <= self.start + self.size);
        if !in_range {
            pr_err!("refusing to zero {len} bytes at {pa:#x}: outside the pool\n");
            return Err(EINVAL);
        }
        // SAFETY: By the type invariant `addr` maps the whole pool, and the
        // range was just checked to lie inside it. The pool's memory is
        // reserved for us: no Rust or C object of the kernel lives there.
        unsafe {
            core::ptr::write_bytes(
                self.addr.as_ptr().add((pa - self.start) as usize),
                0,
                len as usize,
            )
        };
        Ok(())
    }
}

impl Drop for KernelMapping {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `addr` came from `memremap` and is
        // unmapped only here.
        unsafe { bindings::memunmap(self.addr.as_ptr().cast()) };
    }
}
