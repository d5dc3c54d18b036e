// SPDX-License-Identifier: GPL-2.0

//! User mappings of a slice: raw PFN mappings faulted in with the largest
//! page the alignment allows.
//!
//! The kernel's Rust API has no `vm_operations_struct` yet, so, as Rust
//! binder does, the mapping's `vm_ops` and `vm_private_data` are set through
//! the raw vma. `vm_private_data` holds one [`Arc`] reference to the slice
//! per vma: `open` (vma copied by a split or mremap) takes another, `close`
//! drops it.
//!
//! Faults: `.huge_fault` is asked first for a 1 GiB (PUD) and then a 2 MiB
//! (PMD) entry; it inserts one when [`MappingGeometry::block`] allows it, and
//! falls back otherwise. `.fault` inserts single 4 KiB pages.
//!
//! Cuts and moves: the core mm cannot cut or move a huge PFN entry by parts
//! (see [`crate::layout`]). `.may_split` refuses a cut strictly inside a
//! block that a huge entry may map, so munmap, mprotect, madvise and mremap
//! of such a part fail with `EINVAL`. An mremap move changes which virtual
//! address maps which physical one; `open` zaps the moved range of the
//! source before the core moves its page tables, so no huge entry is ever
//! moved to an address it is not aligned for, and the new vma refaults with
//! the pages its own alignment allows.

use crate::{
    layout::{FaultAction, MappingGeometry, PMD_ORDER, PUD_ORDER, SZ_1G, SZ_2M},
    pool::Slice,
    sys,
};
use kernel::{
    bindings,
    error::code::EINVAL,
    ffi,
    mm::virt::{flags, VmaNew, VmaRef},
    sync::{Arc, ArcBorrow},
};

const PAGE_SHIFT: u32 = 12;

/// The mapping's file offset in bytes (`vm_pgoff << PAGE_SHIFT`).
pub(crate) fn offset(vma: &VmaRef) -> u64 {
    // SAFETY: By the invariants of `VmaRef` the vma is valid and at least its
    // read lock is held, under which `vm_pgoff` does not change.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
    (pgoff as u64) << PAGE_SHIFT
}

/// Whether the mapping is `MAP_SHARED`.
pub(crate) fn is_shared(vma: &VmaRef) -> bool {
    vma.flags() & sys::VM_MAYSHARE != 0
}

/// Makes `vma`, being set up by our `mmap`, a PFN mapping of `slice` at the
/// vma's file offset. The caller has checked that the mapping is shared and
/// lies inside the slice.
pub(crate) fn install(vma: &VmaNew, slice: Arc<Slice>) {
    vma.set_io();
    vma.set_dontexpand();
    vma.set_dontcopy();
    vma.set_dontdump();
    slice.pool().note_mapping(slice.id(), 1);
    let raw = vma.as_ptr();
    // SAFETY: The vma is undergoing initial setup in `f_op->mmap` (invariant
    // of `VmaNew`), so nothing else reads or writes these fields yet.
    // - VM_PFNMAP is valid here: VM_MIXEDMAP is never set on our vmas, and the
    //   mapping is shared, so not a COW mapping.
    // - `CRITMEM_VM_OPS` is a `'static` table whose callbacks expect
    //   `vm_private_data` to hold an `Arc<Slice>` reference, which we store
    //   and which `close` releases.
    unsafe {
        (*raw).__bindgen_anon_2.vm_flags |= flags::PFNMAP;
        (*raw).vm_ops = &CRITMEM_VM_OPS.0;
        (*raw).vm_private_data = Arc::into_raw(slice).cast_mut().cast();
    }
}

/// A `vm_operations_struct` that may be a `static`: bindgen's struct holds
/// raw pointers (7.3 added `uffd_ops`), which are not `Sync`.
#[repr(transparent)]
struct VmOps(bindings::vm_operations_struct);

// SAFETY: A `VmOps` is never written after its initialisation; its pointers
// are null or point at functions, which any thread may read and call, as
// the kernel does with every vm_operations_struct.
unsafe impl Sync for VmOps {}

/// A `static`, not a `const`: `open` recognises our vmas by this address.
static CRITMEM_VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    open: Some(vma_open),
    close: Some(vma_close),
    may_split: Some(vma_may_split),
    fault: Some(vma_fault),
    huge_fault: Some(vma_huge_fault),
    ..pin_init::zeroed()
});

/// Where `area`, one of our vmas mapping `slice`, lies.
fn geometry(area: &VmaRef, slice: &Slice) -> MappingGeometry {
    MappingGeometry {
        vm_start: area.start() as u64,
        vm_end: area.end() as u64,
        offset: offset(area),
        slice_start: slice.start(),
        slice_size: slice.size(),
        pud_pages: slice.pool().caps().pud,
    }
}

/// The slice a vma of ours maps.
///
/// # Safety
///
/// `vma` must be a valid vma set up by [`install`] (or copied from one and
/// passed to `open`), not yet passed to `close`, for the duration of `'a`.
unsafe fn slice_of<'a>(vma: *const bindings::vm_area_struct) -> ArcBorrow<'a, Slice> {
    // SAFETY: By the caller's guarantee `vm_private_data` holds a reference
    // made by `Arc::into_raw`, alive until `close` drops it.
    unsafe { ArcBorrow::from_raw((*vma).vm_private_data.cast::<Slice>()) }
}

/// `vm_ops->open`: a copy of one of our vmas now exists (split, mremap).
///
/// # Safety
///
/// Called by the mm core, with the mmap lock held for writing, with a valid
/// vma copied from one of ours, so its `vm_private_data` is the same slice
/// pointer. The copy is not yet in the mm's vma tree.
unsafe extern "C" fn vma_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The copy shares `vm_private_data` with the live original, whose
    // reference keeps the slice alive during this call.
    let slice = unsafe { slice_of(vma) };
    // SAFETY: The caller holds the mmap lock for writing and `vma` is valid.
    let copy = unsafe { VmaRef::from_raw(vma) };
    let copy_geometry = geometry(copy, &slice);
    // SAFETY: As above: the mmap lock is held for writing.
    unsafe { zap_moved_sources(copy, &copy_geometry) };
    let slice: Arc<Slice> = slice.into();
    slice.pool().note_mapping(slice.id(), 1);
    // The copy gets its own reference; its `close` drops it.
    let _ = Arc::into_raw(slice);
}

/// Zaps every vma of ours in `copy`'s mm that maps bytes of the same slice as
/// `copy` at other virtual addresses: the source of an mremap move.
///
/// A split copy keeps its source's virtual-to-physical relation and is left
/// alone. An mremap move copies the moved range of the source vma (which is
/// write-locked against faults, and split only after the move) and then moves
/// its page tables. Linux 7.2 moves a 1 GiB leaf only when source and
/// destination are both 1 GiB aligned; otherwise it takes the leaf for a
/// table, reports a "bad pud" and clears it without a TLB flush. With the
/// moved range of the source zapped first there is nothing to move, and the
/// new vma faults in afresh. `may_split` already refused a moved range whose
/// ends cut a huge block, so the zap never cuts a huge entry either. Other
/// mappings of the same bytes, if the process made any, are only zapped, and
/// refault.
///
/// # Safety
///
/// The mmap lock of `copy`'s mm is held for writing, and `copy` is one of our
/// vmas, not yet linked into the mm.
unsafe fn zap_moved_sources(copy: &VmaRef, copy_geometry: &MappingGeometry) {
    // SAFETY: `copy` is valid (type invariant of `VmaRef`); `vm_mm` and
    // `vm_private_data` are fixed while the mmap lock is held.
    let (mm, slice_ptr) = unsafe { ((*copy.as_ptr()).vm_mm, (*copy.as_ptr()).vm_private_data) };
    let mut addr: ffi::c_ulong = 0;
    loop {
        // SAFETY: `mm` is live (it owns `copy`) and its mmap lock is held, as
        // `find_vma` requires; the vma it returns stays valid while it is.
        let other = unsafe { bindings::find_vma(mm, addr) };
        if other.is_null() {
            return;
        }
        // SAFETY: `other` is a valid vma of `mm`, and the mmap lock (held for
        // writing) gives read access to it.
        let other = unsafe { VmaRef::from_raw(other) };
        addr = other.end() as ffi::c_ulong;
        // SAFETY: Reading the fields of a valid vma under its mm's lock.
        let (ops, private) =
            unsafe { ((*other.as_ptr()).vm_ops, (*other.as_ptr()).vm_private_data) };
        if !core::ptr::eq(ops, &CRITMEM_VM_OPS.0) || private != slice_ptr {
            continue;
        }
        let other_geometry = MappingGeometry {
            vm_start: other.start() as u64,
            vm_end: other.end() as u64,
            offset: offset(other),
            ..*copy_geometry
        };
        if other_geometry.va_minus_offset() == copy_geometry.va_minus_offset() {
            continue;
        }
        if let Some((start, end)) = other_geometry.range_shared_with(copy_geometry) {
            other.zap_vma_range(start as usize, (end - start) as usize);
        }
    }
}

/// `vm_ops->may_split`: refuses a cut strictly inside a block that a huge
/// entry may map (see [`crate::layout`]), with `EINVAL`.
///
/// # Safety
///
/// Called by the mm core, with the mmap lock held for writing, with a valid
/// vma of ours and an address strictly inside it.
unsafe extern "C" fn vma_may_split(
    vma: *mut bindings::vm_area_struct,
    addr: ffi::c_ulong,
) -> ffi::c_int {
    // SAFETY: The vma is ours and alive; the mmap lock is held.
    let (area, slice) = unsafe { (VmaRef::from_raw(vma), slice_of(vma)) };
    if geometry(area, &slice).may_split_at(addr as u64) {
        0
    } else {
        EINVAL.to_errno()
    }
}

/// `vm_ops->close`: the vma is going away; drop its slice reference.
///
/// # Safety
///
/// Called by the mm core once per vma set up by [`install`] or `open`.
unsafe extern "C" fn vma_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `vm_private_data` holds the reference this vma owns (made by
    // `install` or `vma_open`); `close` is its last user, so taking it back
    // is sound. The page tables were already zapped by the core.
    let slice = unsafe { Arc::from_raw((*vma).vm_private_data.cast::<Slice>()) };
    slice.pool().note_mapping(slice.id(), -1);
    // Dropping the last reference returns the slice to the pool.
}

/// `vm_ops->fault`: a 4 KiB page.
///
/// # Safety
///
/// Called by the mm core with a valid `vmf` for one of our vmas, mmap or vma
/// lock held.
unsafe extern "C" fn vma_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: Same contract as `vma_huge_fault` with order 0.
    unsafe { vma_huge_fault(vmf, 0) }
}

/// `vm_ops->huge_fault`: a page of `PAGE_SIZE << order` bytes.
///
/// # Safety
///
/// Called by the mm core with a valid `vmf` for one of our vmas, mmap or vma
/// lock held; for PMD/PUD orders `vmf->pmd`/`vmf->pud` are set up.
unsafe extern "C" fn vma_huge_fault(
    vmf: *mut bindings::vm_fault,
    order: ffi::c_uint,
) -> bindings::vm_fault_t {
    // SAFETY: `vmf` is valid for this call, and its vma is ours and alive.
    let (vma, address, write) = unsafe {
        (
            (*vmf).__bindgen_anon_1.vma,
            (*vmf).__bindgen_anon_1.address as u64,
            (*vmf).flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0,
        )
    };
    // SAFETY: The fault path holds the vma's read lock for this call.
    let area = unsafe { VmaRef::from_raw(vma) };
    // SAFETY: The vma is ours and alive (see above).
    let slice = unsafe { slice_of(vma) };

    // The pure policy names the orders by x86_64's values; they must be the
    // kernel's.
    const _: () = assert!(PMD_ORDER == bindings::PMD_ORDER && PUD_ORDER == bindings::PUD_ORDER);
    let (va, pa, page) = match geometry(area, &slice).fault(address, order) {
        FaultAction::Insert { va, pa, page } => (va, pa, page),
        FaultAction::Fallback => return bindings::vm_fault_reason_VM_FAULT_FALLBACK,
        FaultAction::SigBus => return bindings::vm_fault_reason_VM_FAULT_SIGBUS,
    };
    let pfn = (pa >> PAGE_SHIFT) as ffi::c_ulong;
    // SAFETY: `vmf` is a valid fault for our VM_PFNMAP, shared vma; the block
    // `[va, va + page)` lies inside the vma and maps `[pa, pa + page)`, which
    // lies inside the slice the vma holds a reference to, so the memory stays
    // ours while mapped (the slice outlives every vma mapping it). For the
    // huge orders the core prepared `vmf->pmd`/`vmf->pud`, and `pa` is aligned
    // to the page size. `fault` returns a 2 MiB page only for PMD_ORDER and a
    // 1 GiB page only for PUD_ORDER, so the entry matches the level the core
    // prepared.
    unsafe {
        match page {
            SZ_1G => bindings::vmf_insert_pfn_pud(vmf, pfn, write),
            SZ_2M => bindings::vmf_insert_pfn_pmd(vmf, pfn, write),
            _ => bindings::vmf_insert_pfn(vma, va as ffi::c_ulong, pfn),
        }
    }
}
