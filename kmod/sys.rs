// SPDX-License-Identifier: GPL-2.0

//! Hand-written bindings: C functions and constants that Linux 7.2's Rust
//! API does not wrap yet, each as a small safe function. Every item names
//! the upstream Rust API that would replace it; nothing else in the module
//! declares a C symbol or reads a C struct field for these purposes.

use kernel::{bindings, ffi};

/// `cond_resched()`: lets the scheduler run something else during a long
/// loop. Would be replaced by a `kernel::task` scheduling helper (none in
/// 7.2).
#[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
pub(crate) fn cond_resched() {
    extern "C" {
        fn __cond_resched() -> ffi::c_int;
    }
    // SAFETY: `__cond_resched` may be called from any sleepable context; all
    // callers run in process context (ioctl, mmap or a work item) without
    // spinlocks held.
    unsafe { __cond_resched() };
}

/// On a fully preemptible kernel the scheduler preempts long loops itself.
#[cfg(all(CONFIG_PREEMPTION, not(CONFIG_PREEMPT_DYNAMIC)))]
pub(crate) fn cond_resched() {}

/// `fatal_signal_pending(current)`: whether the calling task has been sent
/// SIGKILL (it is dying, so long work on its behalf should stop). The C
/// function is an inline with no Rust helper in 7.2; `Task` would grow a
/// `fatal_signal_pending()` next to its `signal_pending()`.
pub(crate) fn fatal_signal_pending() -> bool {
    let task = kernel::current!();
    if !task.signal_pending() {
        return false;
    }
    const SIGKILL_BIT: u32 = bindings::SIGKILL - 1;
    let bits_per_word = ffi::c_ulong::BITS;
    // SAFETY: `task` is the current task, alive for this call. As in C's
    // `__fatal_signal_pending`, the pending set is read without the
    // sighand lock: a stale answer only delays the check to the next call.
    let word = unsafe {
        core::ptr::read_volatile(
            &raw const (*task.as_ptr()).pending.signal.sig[(SIGKILL_BIT / bits_per_word) as usize],
        )
    };
    word & (1 << (SIGKILL_BIT % bits_per_word)) != 0
}

/// `capable(CAP_SYS_ADMIN)` for the calling task: whether it may see
/// physical addresses (as for the PFNs in `/proc/PID/pagemap`). Would be
/// replaced by a `kernel::cred` capability check (none in 7.2).
pub(crate) fn may_see_physical_addresses() -> bool {
    // SAFETY: `capable` may be called from any process context and only
    // reads the current task's credentials (and may log an audit record).
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as ffi::c_int) }
}

/// procfs, which has no Rust API in 7.2 (a `kernel::proc_fs` would replace
/// these). `struct proc_dir_entry` is only ever handled by pointer.
pub(crate) mod procfs {
    use kernel::{bindings, ffi};

    /// `struct proc_dir_entry`.
    #[repr(C)]
    pub(crate) struct ProcDirEntry {
        _opaque: [u8; 0],
    }

    /// A seq_file `show` callback.
    pub(crate) type ShowFn =
        unsafe extern "C" fn(*mut bindings::seq_file, *mut ffi::c_void) -> ffi::c_int;

    extern "C" {
        /// Creates a single-record seq_file entry calling `show` with `data`.
        pub(crate) fn proc_create_single_data(
            name: *const ffi::c_char,
            mode: bindings::umode_t,
            parent: *mut ProcDirEntry,
            show: Option<ShowFn>,
            data: *mut ffi::c_void,
        ) -> *mut ProcDirEntry;
        /// Removes an entry, waiting for readers in flight.
        pub(crate) fn proc_remove(de: *mut ProcDirEntry);
    }
}

/// `-EDQUOT` ("quota exceeded"), which `kernel::error::code` does not
/// declare in 7.2 (a `code::EDQUOT` would replace this).
pub(crate) fn edquot() -> kernel::error::Error {
    kernel::error::Error::from_errno(-(bindings::EDQUOT as ffi::c_int))
}
