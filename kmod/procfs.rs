// SPDX-License-Identifier: GPL-2.0

//! `/proc/critmem`, the memory map file (format in `kmod/README.md`).
//!
//! The kernel's Rust API has no procfs yet; the two C functions used are
//! declared in [`crate::sys::procfs`]. `proc_create_single_data` gives the
//! file `seq_file` single-record semantics; `proc_remove` waits for readers
//! in flight.

use crate::{
    pool::Pool,
    sys::procfs::{proc_create_single_data, proc_remove, ProcDirEntry},
};
use core::ptr::NonNull;
use kernel::{bindings, ffi, prelude::*, seq_file::SeqFile, sync::Arc};

/// The `/proc/critmem` entry.
///
/// # Invariants
///
/// `entry` was created by `proc_create_single_data` with `show` and a data
/// pointer made by `Arc::into_raw(pool)`, which this struct owns; both live
/// until [`Drop`], which removes the entry before releasing `pool`.
pub(crate) struct MapFile {
    entry: NonNull<ProcDirEntry>,
    pool: *const Pool,
}

// SAFETY: The entry may be removed from any thread, and `pool` is an
// `Arc<Pool>` reference, which is `Send`.
unsafe impl Send for MapFile {}
// SAFETY: `MapFile` has no `&self` methods.
unsafe impl Sync for MapFile {}

/// The seq_file `show` callback.
///
/// # Safety
///
/// `m` must be a valid seq_file of our proc entry, in its `show` call.
unsafe extern "C" fn show(m: *mut bindings::seq_file, _v: *mut ffi::c_void) -> ffi::c_int {
    // SAFETY: `single_open` set `m->private` to the entry's data, a pointer
    // from `Arc::into_raw` kept alive until the entry is removed, which waits
    // for this call to end.
    let pool = unsafe { &*(*m).private.cast::<Pool>() };
    // SAFETY: `m` is valid and used only by this thread during `show`.
    let seq = unsafe { SeqFile::from_raw(m) };
    pool.write_map_file(seq);
    0
}

impl MapFile {
    /// Creates `/proc/critmem`, mode 0400: physical addresses are for root.
    pub(crate) fn create(pool: Arc<Pool>) -> Result<Self> {
        let data = Arc::into_raw(pool);
        // SAFETY: The name is static; `show` matches the expected signature
        // and contract; `data` stays valid until `Drop` (or the error path
        // below) since we own its reference.
        let entry = unsafe {
            proc_create_single_data(
                c"critmem".as_char_ptr(),
                0o400,
                core::ptr::null_mut(),
                Some(show),
                data.cast_mut().cast(),
            )
        };
        match NonNull::new(entry) {
            Some(entry) => Ok(Self { entry, pool: data }),
            None => {
                // SAFETY: No entry refers to `data`; we take our reference back.
                drop(unsafe { Arc::from_raw(data) });
                pr_err!("cannot create /proc/critmem\n");
                Err(ENOMEM)
            }
        }
    }
}

impl Drop for MapFile {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the entry exists; `proc_remove` waits
        // for running `show` calls, so none uses `pool` afterwards.
        unsafe { proc_remove(self.entry.as_ptr()) };
        // SAFETY: The reference was made by `Arc::into_raw` in `create`, and
        // nothing uses it any more.
        drop(unsafe { Arc::from_raw(self.pool) });
    }
}
