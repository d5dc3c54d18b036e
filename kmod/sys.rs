// SPDX-License-Identifier: GPL-2.0

//! Hand-written bindings: C functions and constants that Linux 7.2's Rust
//! API does not wrap yet, each as a small safe function. Every item names
//! the upstream Rust API that would replace it; nothing else in the module
//! declares a C symbol or reads a C struct field for these purposes.

//!
//! It also holds the module's one difference between the kernels it builds
//! for (7.2 and 7.3), behind a `cfg` that `Kbuild` sets from the kernel
//! version, so that no other file knows which kernel it is built against.

use kernel::{
    bindings, ffi,
    mm::virt::vm_flags_t,
    module_param::ModuleParamAccess,
    str::{CStr, CStrExt as _},
};

/// The value of an integer module parameter. Linux 7.3 changed
/// `ModuleParamAccess::value()` to return the value itself (for `T: Copy`,
/// with `value_ref()` for the reference); 7.2's returns `&T`. `Kbuild` sets
/// `critmem_param_value_by_copy` on 7.3 and later.
#[cfg(critmem_param_value_by_copy)]
pub(crate) fn param_value<T: Copy>(param: &ModuleParamAccess<T>) -> T {
    param.value()
}

/// See the 7.3 version above.
#[cfg(not(critmem_param_value_by_copy))]
pub(crate) fn param_value<T: Copy>(param: &ModuleParamAccess<T>) -> T {
    *param.value()
}

/// `VM_MAYSHARE`: set for every `MAP_SHARED` mapping, even of a file opened
/// read-only (where `VM_SHARED` is cleared). The generated
/// `bindings::VM_MAYSHARE` is wrong in 7.2 (its helper reads `VM_MAYEXEC`),
/// so it is derived from the bit number; `kernel::mm::virt::flags` would
/// replace it once it lists `MAYSHARE`.
pub(crate) const VM_MAYSHARE: vm_flags_t = 1 << bindings::VMA_MAYSHARE_BIT;

/// `MAP_FIXED` (uapi `asm-generic/mman-common.h`; `do_mmap` also sets it
/// for `MAP_FIXED_NOREPLACE`), as seen by `f_op->get_unmapped_area`. No
/// Rust API has the `MAP_*` flags in 7.2; a `kernel::mm` constant would
/// replace this.
pub(crate) const MAP_FIXED: ffi::c_ulong = 0x10;

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

    // rustc's lint looks through `*mut seq_file` in `ShowFn` into its
    // `lock_class_key`, a struct with no fields on kernels without lockdep
    // (Debian's); C only ever receives the pointer, which is FFI-safe.
    #[allow(improper_ctypes)]
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

/// Reads the start of the file at `path` into `buf`, returning the bytes
/// read: for the small sysfs files of `/sys/firmware/memmap`, the only view
/// of the firmware's memory map a module has. `Err(ENOENT)` when there is
/// no such file. A `kernel::fs` open-by-path and read would replace this
/// (7.2's `kernel::fs::File` has neither).
pub(crate) fn read_file(path: &CStr, buf: &mut [u8]) -> kernel::error::Result<usize> {
    // SAFETY: `path` is NUL-terminated and outlives the call; `filp_open`
    // may sleep, and every caller runs in process context (module init)
    // with no lock held.
    let file = unsafe { bindings::filp_open(path.as_char_ptr(), bindings::O_RDONLY as ffi::c_int, 0) };
    let file = kernel::error::from_err_ptr(file)?;
    let mut pos: bindings::loff_t = 0;
    // SAFETY: `file` is an open file (`filp_open` succeeded), `buf` is valid
    // for writes of `buf.len()` bytes for the call, and `pos` is a valid
    // `loff_t` it may update.
    let read = unsafe { bindings::kernel_read(file, buf.as_mut_ptr().cast(), buf.len(), &mut pos) };
    // SAFETY: `file` was opened above and is closed exactly once, here; it
    // was never installed in a file table, so it has no owner id.
    unsafe { bindings::filp_close(file, core::ptr::null_mut()) };
    if read < 0 {
        return Err(kernel::error::Error::from_errno(read as ffi::c_int));
    }
    Ok(read as usize)
}

/// `-EDQUOT` ("quota exceeded"), which `kernel::error::code` does not
/// declare in 7.2 (a `code::EDQUOT` would replace this).
pub(crate) fn edquot() -> kernel::error::Error {
    kernel::error::Error::from_errno(-(bindings::EDQUOT as ffi::c_int))
}

/// A misc device registration that pins its module and may add
/// `get_unmapped_area`. Linux 7.2's `MiscDeviceRegistration` leaves
/// `fops->owner` unset (so the module could unload while a file is open)
/// and has no `get_unmapped_area`; once it has both, it replaces this.
pub(crate) mod misc {
    use core::marker::PhantomData;
    use kernel::{
        bindings,
        error::to_result,
        ffi,
        miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
        prelude::*,
        types::Opaque,
    };

    /// `f_op->get_unmapped_area`.
    pub(crate) type GetUnmappedAreaFn = unsafe extern "C" fn(
        *mut bindings::file,
        ffi::c_ulong,
        ffi::c_ulong,
        ffi::c_ulong,
        ffi::c_ulong,
    ) -> ffi::c_ulong;

    /// The registered device, its own copy of the file operations, and the
    /// data its files need.
    #[repr(C)]
    struct Inner<D> {
        misc: Opaque<bindings::miscdevice>,
        fops: Opaque<bindings::file_operations>,
        data: D,
    }

    /// A registered misc device of type `T` carrying `data`.
    ///
    /// # Invariants
    ///
    /// `inner.misc` is registered with `misc_register`, its `fops` pointing
    /// at `inner.fops` (a copy of `T`'s Rust vtable with `owner` set), until
    /// [`Drop`]; `inner` is never moved out of its box.
    pub(crate) struct Registration<T, D> {
        inner: KBox<Inner<D>>,
        _device: PhantomData<T>,
    }

    // SAFETY: `misc_deregister` may run on any thread, and the only data
    // shared with the files, `D`, is `Send + Sync`.
    unsafe impl<T, D: Send + Sync> Send for Registration<T, D> {}
    // SAFETY: `Registration` has no `&self` methods touching the C structs.
    unsafe impl<T, D: Send + Sync> Sync for Registration<T, D> {}

    impl<T: MiscDevice, D> Registration<T, D> {
        /// Registers `/dev/<name>` with `mode`, its file operations those of
        /// `T` plus `owner = module` and `get_unmapped_area`.
        pub(crate) fn register(
            name: &'static CStr,
            mode: bindings::umode_t,
            module: &'static ThisModule,
            get_unmapped_area: Option<GetUnmappedAreaFn>,
            data: D,
        ) -> Result<Self> {
            let opts = MiscDeviceOptions { name };
            let inner = KBox::new(
                Inner {
                    misc: Opaque::new(opts.into_raw::<T>()),
                    fops: Opaque::uninit(),
                    data,
                },
                GFP_KERNEL,
            )?;
            let (misc, fops) = (inner.misc.get(), inner.fops.get());
            // SAFETY: Both structs are in our box, not yet shared with
            // anyone. `into_raw` set `misc.fops` to the `'static` Rust
            // vtable, which we copy; `module` is the caller's module, valid
            // while it is loaded. The box's contents never move, so the
            // pointers stored stay valid while registered (type invariant),
            // and `Drop` deregisters before the box is freed.
            unsafe {
                fops.write(core::ptr::read((*misc).fops));
                (*fops).owner = module.as_ptr();
                (*fops).get_unmapped_area = get_unmapped_area;
                (*misc).fops = fops;
                (*misc).mode = mode;
                to_result(bindings::misc_register(misc))?;
            }
            Ok(Self {
                inner,
                _device: PhantomData,
            })
        }

        /// The data of the registration behind `misc`.
        ///
        /// # Safety
        ///
        /// `T` must be registered only through `Registration<T, D>` (with
        /// this `D`), so that `misc` is the `misc` field of a live `Inner<D>`.
        pub(crate) unsafe fn data_of(misc: &MiscDeviceRegistration<T>) -> &D {
            let misc = misc.as_raw().cast::<Opaque<bindings::miscdevice>>();
            // SAFETY: By the caller's guarantee `misc` lies in an `Inner<D>`,
            // which stays alive while the device is registered, and so
            // while `misc` is borrowed (a file's `open` is running).
            let inner = unsafe { &*kernel::container_of!(misc, Inner<D>, misc) };
            &inner.data
        }
    }

    impl<T, D> Drop for Registration<T, D> {
        fn drop(&mut self) {
            // SAFETY: By the type invariant the device is registered.
            unsafe { bindings::misc_deregister(self.inner.misc.get()) };
        }
    }
}
