// SPDX-License-Identifier: GPL-2.0

//! `/dev/critmem`, the memory operation file.
//!
//! Each open file may own one slice: the ALLOC ioctl or, without it, the
//! first mmap (which allocates exactly its length) gives it one. Mappings
//! without an address hint are placed so that huge pages fit.

use crate::{
    abi,
    layout::{self, SZ_1G, SZ_2M},
    pool::{Owner, Pool, Slice, Zeroing},
    sys, vma,
};
use kernel::{
    bindings, ffi,
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::VmaNew,
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    transmute::{AsBytes, FromBytes},
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice},
};

// SAFETY: `AllocRequest` is `#[repr(C)]` made of `u64`s only: no padding,
// every bit pattern is valid, no interior mutability.
unsafe impl FromBytes for abi::AllocRequest {}
// SAFETY: As above: all bytes are initialised integer bytes.
unsafe impl AsBytes for abi::AllocRequest {}
// SAFETY: `PoolInfo` is `#[repr(C)]`, two `u32`s then `u64`s: no padding,
// all bytes are initialised integer bytes.
unsafe impl AsBytes for abi::PoolInfo {}

/// Registration of `/dev/critmem`, mode 0600 (udev may widen it), whose
/// files pin the module and place their mappings with [`get_unmapped_area`].
pub(crate) struct Registration {
    /// Deregisters the device when dropped.
    _misc: sys::misc::Registration<CritmemFile, Arc<Pool>>,
}

impl Registration {
    /// Registers `/dev/critmem` for `pool`.
    pub(crate) fn register(module: &'static ThisModule, pool: Arc<Pool>) -> Result<Self> {
        sys::misc::Registration::register(c"critmem", 0o600, module, Some(get_unmapped_area), pool)
            .map(|misc| Self { _misc: misc })
    }

    /// The pool served by the misc device `misc`.
    fn pool_of(misc: &MiscDeviceRegistration<CritmemFile>) -> &Arc<Pool> {
        // SAFETY: `CritmemFile` is registered only by `Registration::register`
        // above, through `sys::misc::Registration` with an `Arc<Pool>`.
        unsafe { sys::misc::Registration::<CritmemFile, Arc<Pool>>::data_of(misc) }
    }
}

/// `f_op->get_unmapped_area`: places mappings without an address hint so that
/// huge pages fit, by [`layout::place_mapping`].
///
/// For a length of at least 1 GiB (2 MiB), the address is chosen congruent
/// to the mapped physical address modulo 1 GiB (2 MiB): the slice's start
/// plus the offset, or, before the first mmap allocated the slice, the offset
/// alone (the implicit allocation then aligns the slice like the address).
/// Fixed and hinted requests are left to the default placement.
///
/// # Safety
///
/// Called by the mm core, with the mmap lock held, for an open file of ours.
unsafe extern "C" fn get_unmapped_area(
    file: *mut bindings::file,
    addr: ffi::c_ulong,
    len: ffi::c_ulong,
    pgoff: ffi::c_ulong,
    flags: ffi::c_ulong,
) -> ffi::c_ulong {
    // SAFETY: `mm_get_unmapped_area` is the default placement, callable with
    // the caller's arguments in this context.
    let default =
        |addr, len, pgoff| unsafe { bindings::mm_get_unmapped_area(file, addr, len, pgoff, flags) };
    let phys = || {
        // SAFETY: The file is open, so `private_data` is the pointer our
        // `open` made with `into_foreign` and `release` has not taken it back.
        let me = unsafe {
            <<CritmemFile as MiscDevice>::Ptr as ForeignOwnable>::borrow((*file).private_data)
        };
        let offset = (pgoff as u64) << 12;
        match me.slice_start() {
            Some(start) => start.wrapping_add(offset),
            None => offset,
        }
    };
    layout::place_mapping(
        addr as u64,
        len as u64,
        flags & sys::MAP_FIXED != 0,
        phys,
        |padded| default(0, padded as ffi::c_ulong, 0) as u64,
        || default(addr, len, pgoff) as u64,
    ) as ffi::c_ulong
}

/// What an open file owns.
enum FileSlice {
    /// Nothing yet.
    None,
    /// An ALLOC is zeroing the file's slice-to-be, with no lock held; until
    /// it returns, mmap and another ALLOC of this file fail with `EBUSY`.
    Allocating,
    /// The file's slice.
    Owned(Arc<Slice>),
}

/// One open file of `/dev/critmem`.
#[pin_data]
pub(crate) struct CritmemFile {
    pool: Arc<Pool>,
    /// The file's slice, once ALLOC or the first mmap made one.
    #[pin]
    slice: Mutex<FileSlice>,
}

/// Who is calling: the process (thread group) and its effective user id.
fn current_owner() -> Owner {
    let task = kernel::current!();
    Owner {
        pid: task.group_leader().pid(),
        uid: kernel::task::Kuid::current_euid(),
    }
}

/// `addr` as the caller may see it: physical addresses are for
/// `CAP_SYS_ADMIN` only, as the PFNs of `/proc/PID/pagemap` are; others get
/// 0 (no pool starts at physical address 0).
fn visible_address(addr: u64) -> u64 {
    if sys::may_see_physical_addresses() {
        addr
    } else {
        0
    }
}

impl CritmemFile {
    /// Physical address of the file's slice, if it has one.
    fn slice_start(&self) -> Option<u64> {
        match &*self.slice.lock() {
            FileSlice::Owned(slice) => Some(slice.start()),
            FileSlice::None | FileSlice::Allocating => None,
        }
    }

    /// `CRITMEM_IOC_ALLOC`: needs a file open for writing (`EBADF`).
    ///
    /// The slice is zeroed with no lock of ours held (see
    /// [`Zeroing::Synchronous`]), and it becomes the file's only once the
    /// reply reached the caller: a failed copy-out leaves the file without
    /// a slice, able to ALLOC again.
    fn ioctl_alloc(&self, file: &File, arg: usize) -> Result<isize> {
        if file.flags() & kernel::fs::file::flags::O_ACCMODE == kernel::fs::file::flags::O_RDONLY {
            return Err(EBADF);
        }
        let user = UserSlice::new(UserPtr::from_addr(arg), size_of::<abi::AllocRequest>());
        let (mut reader, mut writer) = user.reader_writer();
        let mut req: abi::AllocRequest = reader.read()?;
        if req.reserved != [0; 3] {
            return Err(EINVAL);
        }
        {
            let mut guard = self.slice.lock();
            if !matches!(*guard, FileSlice::None) {
                return Err(EBUSY);
            }
            *guard = FileSlice::Allocating;
        }
        let allocated = self
            .pool
            .alloc(req.size, req.align, current_owner(), Zeroing::Synchronous);
        // The user copy runs without our locks: it may fault and take
        // mmap_lock, which mmap holds while taking `self.slice`.
        let result = allocated.and_then(|slice| {
            req.phys_start = visible_address(slice.start());
            req.phys_size = slice.size();
            req.slice_id = slice.id();
            writer.write(&req)?;
            Ok(slice)
        });
        let mut guard = self.slice.lock();
        match result {
            Ok(slice) => {
                *guard = FileSlice::Owned(slice);
                Ok(0)
            }
            Err(e) => {
                // A slice whose reply was lost drops here, back to the pool.
                *guard = FileSlice::None;
                Err(e)
            }
        }
    }

    /// `CRITMEM_IOC_INFO`.
    fn ioctl_info(&self, arg: usize) -> Result<isize> {
        let mut info = self.pool.info();
        info.pool_start = visible_address(info.pool_start);
        if let FileSlice::Owned(s) = &*self.slice.lock() {
            info.slice_id = s.id();
            info.slice_start = visible_address(s.start());
            info.slice_size = s.size();
        }
        let user = UserSlice::new(UserPtr::from_addr(arg), size_of::<abi::PoolInfo>());
        user.writer().write(&info)?;
        Ok(0)
    }

    /// Allocates the slice for a first mmap of `len` bytes at `va` without
    /// ALLOC: `len` bytes (rounded up to the pool's granule), aligned like
    /// `va` (up to 1 GiB) so huge pages can map it, falling back to smaller
    /// alignments. It runs under the mmap lock, so it takes only memory
    /// that is already zeroed: `EAGAIN` when only unzeroed memory fits,
    /// `ENOMEM` when nothing does.
    fn implicit_alloc(&self, len: u64, va: u64) -> Result<Arc<Slice>> {
        let mut only_unzeroed_fits = false;
        for align in [SZ_1G, SZ_2M, 0] {
            if align != 0 && (len < align || va % align != 0) {
                continue;
            }
            match self
                .pool
                .alloc(len, align, current_owner(), Zeroing::AlreadyZeroedOnly)
            {
                Err(e) if e == ENOMEM => {}
                Err(e) if e == EAGAIN => only_unzeroed_fits = true,
                result => return result,
            }
        }
        Err(if only_unzeroed_fits { EAGAIN } else { ENOMEM })
    }
}

#[vtable]
impl MiscDevice for CritmemFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let pool = Registration::pool_of(misc).clone();
        KBox::try_pin_init(
            try_pin_init!(CritmemFile {
                pool,
                slice <- new_mutex!(FileSlice::None),
            }),
            GFP_KERNEL,
        )
    }

    fn ioctl(me: Pin<&CritmemFile>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            abi::CRITMEM_IOC_ALLOC => me.ioctl_alloc(file, arg),
            abi::CRITMEM_IOC_INFO => me.ioctl_info(arg),
            _ => Err(ENOTTY),
        }
    }

    fn mmap(me: Pin<&CritmemFile>, _file: &File, area: &VmaNew) -> Result {
        if !vma::is_shared(area) {
            return Err(EINVAL);
        }
        let len = (area.end() - area.start()) as u64;
        let off = vma::offset(area);
        let slice = {
            let mut guard = me.slice.lock();
            match &*guard {
                FileSlice::Owned(slice) => slice.clone(),
                FileSlice::Allocating => return Err(EBUSY),
                FileSlice::None => {
                    if off != 0 {
                        return Err(EINVAL);
                    }
                    let slice = me.implicit_alloc(len, area.start() as u64)?;
                    *guard = FileSlice::Owned(slice.clone());
                    slice
                }
            }
        };
        if off.checked_add(len).is_none_or(|end| end > slice.size()) {
            return Err(EINVAL);
        }
        vma::install(area, slice);
        Ok(())
    }
}
