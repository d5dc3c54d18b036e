//! `/dev/critmem` from userspace: open it, give the open file a slice with
//! [`CRITMEM_IOC_ALLOC`], read the pool's figures with
//! [`CRITMEM_IOC_INFO`], and map the slice. The one client of the device,
//! for `vmm` and cmtool.
//!
//! The slice belongs to the open file: the kernel frees it when the
//! [`Device`] and every [`Mapping`] of it are gone, including when the
//! process is killed.
//!
//! KVM maps guest memory with 1 GiB (2 MiB) stage-2 pages only where the
//! host mapping is that large, which needs the host virtual address
//! aligned like the slice's physical one: [`Placement::Aligned`] puts a
//! mapping at a chosen alignment.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::units::human;
use crate::{AllocRequest, PoolInfo, CRITMEM_IOC_ALLOC, CRITMEM_IOC_INFO};

/// Why the device could not be opened, asked or mapped. Each message says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The device node does not exist, or no module is behind it.
    #[error(
        "{path} does not exist: load critmem.ko (modprobe critmem) and boot with \
         reserve_mem=<size>:<align>:critmem"
    )]
    DeviceMissing {
        /// The device path.
        path: PathBuf,
    },
    /// No permission to open the device.
    #[error(
        "permission denied opening {path}: run as root or as a member of group kvm \
         (the device is 0660 root:kvm)"
    )]
    PermissionDenied {
        /// The device path.
        path: PathBuf,
    },
    /// Any other failure opening the device.
    #[error("cannot open {path}")]
    Open {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `CRITMEM_IOC_ALLOC` failed.
    #[error("CRITMEM_IOC_ALLOC of {} (alignment {}) on {path} failed", human(*size), human(*align))]
    Alloc {
        /// The device path.
        path: PathBuf,
        /// Requested bytes.
        size: u64,
        /// Requested alignment.
        align: u64,
        /// The OS error: `ENOMEM` when no free extent fits, `EINVAL` for a
        /// bad request or one larger than the pool, `EBUSY` when the file
        /// has a slice already.
        #[source]
        source: io::Error,
    },
    /// `CRITMEM_IOC_ALLOC` failed with `EDQUOT`: this user's live slices
    /// would exceed the module's per-user limit.
    #[error(
        "CRITMEM_IOC_ALLOC of {} on {path}: this user id would hold more than critmem.ko's \
         per-user limit (module parameter max_bytes_per_uid); end one of this user's VMs, or \
         have the administrator raise the limit",
        human(*size)
    )]
    OverUserLimit {
        /// The device path.
        path: PathBuf,
        /// Requested bytes.
        size: u64,
    },
    /// `CRITMEM_IOC_ALLOC` failed with `EBADF`: the file is read-only.
    #[error("CRITMEM_IOC_ALLOC on {path}: the file was opened read-only; open it read-write")]
    ReadOnly {
        /// The device path.
        path: PathBuf,
    },
    /// `CRITMEM_IOC_INFO` failed.
    #[error("CRITMEM_IOC_INFO on {path} failed")]
    Info {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reserving host address space failed.
    #[error("cannot reserve {} of host address space for a critmem mapping", human(*size))]
    Reserve {
        /// Bytes to reserve.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Mapping the slice failed.
    #[error(
        "cannot mmap {} of the critmem slice at offset {file_offset:#x} from {path}",
        human(*size)
    )]
    Map {
        /// The device path.
        path: PathBuf,
        /// Bytes to map.
        size: u64,
        /// Offset into the slice.
        file_offset: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ClientError {
    /// The failed system call's error, for the variants that carry one: a
    /// caller that expects a certain errno (or works around one) looks here.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            ClientError::DeviceMissing { .. }
            | ClientError::PermissionDenied { .. }
            | ClientError::OverUserLimit { .. }
            | ClientError::ReadOnly { .. } => None,
            ClientError::Open { source, .. }
            | ClientError::Alloc { source, .. }
            | ClientError::Info { source, .. }
            | ClientError::Reserve { source, .. }
            | ClientError::Map { source, .. } => Some(source),
        }
    }
}

/// An open file of the critmem device, which owns at most one slice.
#[derive(Debug)]
pub struct Device {
    file: File,
    path: PathBuf,
}

impl Device {
    /// Opens the device at `path` (normally [`crate::DEVICE_PATH`]) for
    /// reading and writing, as ALLOC and writable mappings need.
    pub fn open(path: &Path) -> Result<Self, ClientError> {
        Self::open_with(path, true)
    }

    /// Opens the device read-only: INFO and read-only mappings.
    pub fn open_read_only(path: &Path) -> Result<Self, ClientError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, writable: bool) -> Result<Self, ClientError> {
        let path = path.to_path_buf();
        match OpenOptions::new().read(true).write(writable).open(&path) {
            Ok(file) => Ok(Device { file, path }),
            Err(source) => Err(match source.raw_os_error() {
                Some(libc::ENOENT | libc::ENXIO | libc::ENODEV) => {
                    ClientError::DeviceMissing { path }
                }
                Some(libc::EACCES | libc::EPERM) => ClientError::PermissionDenied { path },
                _ => ClientError::Open { path, source },
            }),
        }
    }

    /// `CRITMEM_IOC_ALLOC`: gives this file a slice of `size` bytes whose
    /// physical start is `align`-aligned (0: 4 KiB). Returns the request as
    /// the kernel filled it in.
    pub fn alloc(&self, size: u64, align: u64) -> Result<AllocRequest, ClientError> {
        let mut request = AllocRequest {
            size,
            align,
            ..Default::default()
        };
        // SAFETY: CRITMEM_IOC_ALLOC reads and writes exactly one
        // `AllocRequest`: its size is encoded in the ioctl number.
        unsafe { self.ioctl(CRITMEM_IOC_ALLOC, &mut request) }.map_err(|source| {
            let path = self.path.clone();
            match source.raw_os_error() {
                Some(libc::EDQUOT) => ClientError::OverUserLimit { path, size },
                Some(libc::EBADF) => ClientError::ReadOnly { path },
                _ => ClientError::Alloc {
                    path,
                    size,
                    align,
                    source,
                },
            }
        })?;
        Ok(request)
    }

    /// `CRITMEM_IOC_INFO`: the pool's figures and this file's slice.
    pub fn info(&self) -> Result<PoolInfo, ClientError> {
        let mut info = PoolInfo::default();
        // SAFETY: CRITMEM_IOC_INFO writes exactly one `PoolInfo`: its size is
        // encoded in the ioctl number.
        unsafe { self.ioctl(CRITMEM_IOC_INFO, &mut info) }.map_err(|source| ClientError::Info {
            path: self.path.clone(),
            source,
        })?;
        Ok(info)
    }

    /// Runs the ioctl `request` on `arg`.
    ///
    /// # Safety
    /// `request` must read and write nothing but one `T` at its argument.
    unsafe fn ioctl<T>(&self, request: u32, arg: &mut T) -> io::Result<()> {
        // SAFETY: by the caller's promise the kernel touches only the one
        // `T` behind `arg`, a live, aligned, exclusive reference for the
        // whole call.
        let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), request as _, arg as *mut T) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Maps this file's slice (or, with no slice yet, lets the first mmap
    /// allocate one) as `options` say.
    pub fn map(&self, options: &MapOptions) -> Result<Mapping, ClientError> {
        let prot = if options.read_only {
            libc::PROT_READ
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        let sharing = if options.private {
            libc::MAP_PRIVATE
        } else {
            libc::MAP_SHARED
        };
        let len = options.size as usize;
        let map_error = |source| ClientError::Map {
            path: self.path.clone(),
            size: options.size,
            file_offset: options.file_offset,
            source,
        };
        let (at, flags, reservation) = match options.placement {
            Placement::Anywhere => (0, sharing, None),
            Placement::Aligned { align, offset } => {
                // Room for the mapping wherever the boundary falls.
                let span = options.size + align + offset;
                let reserved = reserve_address_space(span)?;
                let at = reserved.next_multiple_of(align.max(1)) + offset;
                (at, sharing | libc::MAP_FIXED, Some((reserved, span)))
            }
        };
        // SAFETY: without MAP_FIXED the kernel picks a free address and
        // replaces nothing; with it, `[at, at + len)` lies inside the
        // reservation just made, which this function owns and nothing
        // references, so only our own PROT_NONE pages are replaced.
        let addr = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                len,
                prot,
                flags,
                self.file.as_raw_fd(),
                options.file_offset as libc::off_t,
            )
        };
        let failure = (addr == libc::MAP_FAILED).then(io::Error::last_os_error);
        if let Some((reserved, span)) = reservation {
            // Give back what the mapping does not cover: all of it when
            // there is no mapping.
            let (kept_start, kept_end) = match failure {
                Some(_) => (reserved, reserved),
                None => (at, at + options.size),
            };
            // SAFETY: both ranges are unused PROT_NONE parts of our own
            // reservation; nothing references them.
            unsafe {
                unmap_if_any(reserved, kept_start - reserved);
                unmap_if_any(kept_end, reserved + span - kept_end);
            }
        }
        if let Some(source) = failure {
            return Err(map_error(source));
        }
        Ok(Mapping {
            addr: addr.cast(),
            len,
            flags,
        })
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// What to map, how, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapOptions {
    /// Bytes to map.
    pub size: u64,
    /// Offset into the slice.
    pub file_offset: u64,
    /// `MAP_PRIVATE` instead of `MAP_SHARED` (which critmem.ko refuses).
    pub private: bool,
    /// `PROT_READ` only, instead of read and write.
    pub read_only: bool,
    /// Where in the address space.
    pub placement: Placement,
}

impl MapOptions {
    /// The whole slice of `size` bytes, shared, readable and writable,
    /// wherever the kernel places it.
    pub fn slice(size: u64) -> Self {
        MapOptions {
            size,
            file_offset: 0,
            private: false,
            read_only: false,
            placement: Placement::Anywhere,
        }
    }
}

/// Where a mapping goes in the address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Where the kernel chooses (critmem.ko aligns large mappings itself).
    Anywhere,
    /// `offset` bytes past an `align`-aligned address.
    Aligned {
        /// The alignment of the boundary (non-zero).
        align: u64,
        /// How far past the boundary the mapping starts.
        offset: u64,
    },
}

/// A mapping of a critmem slice, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    addr: *mut u8,
    len: usize,
    flags: i32,
}

impl Mapping {
    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr
    }

    /// The virtual address of the first byte.
    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    /// Its length in bytes.
    pub fn size(&self) -> u64 {
        self.len as u64
    }

    /// The `mmap` flags it was made with.
    pub fn flags(&self) -> i32 {
        self.flags
    }

    /// Gives up ownership: returns the start and length, and the caller
    /// unmaps them.
    pub fn into_raw(self) -> (*mut u8, usize) {
        let mapping = ManuallyDrop::new(self);
        (mapping.addr, mapping.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: this process mapped exactly this range and owns it; no
        // reference into it outlives the `Mapping`.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// Reserves `size` bytes of address space, `PROT_NONE`, where the kernel
/// chooses, and returns its start: room to place a mapping at a chosen
/// alignment, or to move one to (`mremap` with `MREMAP_FIXED`). The caller
/// owns the range and unmaps what it does not use.
pub fn reserve_address_space(size: u64) -> Result<u64, ClientError> {
    // SAFETY: a fresh anonymous PROT_NONE mapping at an address of the
    // kernel's choice aliases nothing.
    let reserved = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if reserved == libc::MAP_FAILED {
        return Err(ClientError::Reserve {
            size,
            source: io::Error::last_os_error(),
        });
    }
    Ok(reserved as u64)
}

/// Unmaps `[addr, addr + len)` unless it is empty.
///
/// # Safety
/// The range must be owned by the caller and referenced by nothing.
unsafe fn unmap_if_any(addr: u64, len: u64) {
    if len > 0 {
        // SAFETY: the caller owns the range and nothing references it.
        unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE_2M: u64 = 2 << 20;
    const SIZE_1G: u64 = 1 << 30;

    #[test]
    fn error_messages_say_what_to_do() {
        let e = Device::open(Path::new("/nonexistent/critmem")).unwrap_err();
        assert!(matches!(e, ClientError::DeviceMissing { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/nonexistent/critmem does not exist: load critmem.ko (modprobe critmem) and \
             boot with reserve_mem=<size>:<align>:critmem"
        );
        assert!(e.os_error().is_none());
        let e = ClientError::PermissionDenied {
            path: "/dev/critmem".into(),
        };
        assert!(e.to_string().contains("group kvm"), "{e}");
        let e = ClientError::OverUserLimit {
            path: "/dev/critmem".into(),
            size: 1 << 30,
        };
        assert!(e.to_string().contains("max_bytes_per_uid"), "{e}");
        let e = ClientError::ReadOnly {
            path: "/dev/critmem".into(),
        };
        assert!(e.to_string().contains("open it read-write"), "{e}");
    }

    #[test]
    fn a_device_that_is_not_critmem_fails_the_ioctls() {
        let device = Device::open(Path::new("/dev/null")).unwrap();
        let e = device.alloc(64 << 20, SIZE_2M).unwrap_err();
        assert!(matches!(e, ClientError::Alloc { .. }), "{e:?}");
        assert_eq!(e.os_error().unwrap().raw_os_error(), Some(libc::ENOTTY));
        assert_eq!(
            e.to_string(),
            "CRITMEM_IOC_ALLOC of 64 MiB (alignment 2 MiB) on /dev/null failed"
        );
        assert!(matches!(device.info(), Err(ClientError::Info { .. })));
    }

    /// Any MAP_SHARED-capable file shows the placement logic.
    #[test]
    fn aligned_placement() {
        let device = Device::open(Path::new("/dev/zero")).unwrap();
        for (align, offset) in [(SIZE_1G, 0), (SIZE_1G, SIZE_2M), (SIZE_2M, 4096)] {
            let options = MapOptions {
                placement: Placement::Aligned { align, offset },
                ..MapOptions::slice(4 << 20)
            };
            let mapping = device.map(&options).unwrap();
            assert_eq!(mapping.addr() % align, offset);
            assert_eq!(mapping.size(), 4 << 20);
            assert_eq!(mapping.flags(), libc::MAP_SHARED | libc::MAP_FIXED);
        }
        let mapping = device.map(&MapOptions::slice(4096)).unwrap();
        assert_eq!(mapping.flags(), libc::MAP_SHARED);
    }

    #[test]
    fn a_refused_mapping_names_its_errno() {
        let device = Device::open_read_only(Path::new("/dev/zero")).unwrap();
        let options = MapOptions {
            placement: Placement::Aligned {
                align: SIZE_2M,
                offset: 0,
            },
            ..MapOptions::slice(4096)
        };
        // Shared and writable on a read-only file.
        let e = device.map(&options).unwrap_err();
        assert_eq!(e.os_error().unwrap().raw_os_error(), Some(libc::EACCES));
        assert_eq!(
            e.to_string(),
            "cannot mmap 4 KiB of the critmem slice at offset 0x0 from /dev/zero"
        );
    }
}
