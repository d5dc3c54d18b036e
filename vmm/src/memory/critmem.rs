//! The memory path of a critical VM: a contiguous physical slice of the
//! critmem pool.
//!
//! 1. Open `/dev/critmem` (or `--critmem-device`).
//! 2. `CRITMEM_IOC_ALLOC {size, align}`: this open file now owns a slice.
//!    The alignment is 1 GiB when the guest has at least 1 GiB (falling back
//!    to 2 MiB when the pool has room but no 1 GiB-aligned extent), 2 MiB
//!    otherwise.
//! 3. Reserve `size + 1 GiB` of host address space `PROT_NONE`, then map the
//!    slice `MAP_SHARED | MAP_FIXED` at the first 1 GiB boundary inside it and
//!    give back the rest. With the slice 1 GiB aligned in both physical and
//!    virtual address, the module maps it with 1 GiB host pages, and with
//!    the memslot layout of [`crate::arch::x86_64::layout::ram_ranges`]
//!    (guest-physical ≡ host-virtual mod 1 GiB) KVM can map the guest with
//!    1 GiB stage-2 pages.
//!
//! The slice is released by the kernel when the file and the mapping are
//! gone, including when the process is killed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use critmem_abi::{AllocRequest, PoolInfo, CRITMEM_IOC_ALLOC, CRITMEM_IOC_INFO};

use super::{Backing, HostMapping};
use crate::arch::x86_64::layout::{SIZE_1G, SIZE_2M};

/// Errors of the critmem backing. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CritmemError {
    /// The device node does not exist: the module is not loaded.
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
        "permission denied opening {path}: run vmm as root or as a member of group kvm \
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
    /// The pool has no free extent large enough.
    #[error(
        "critmem pool too small: requested {}, free {} (largest free extent {})",
        human(*requested), human(*free), human(*largest)
    )]
    PoolTooSmall {
        /// Requested bytes.
        requested: u64,
        /// Free bytes in the pool.
        free: u64,
        /// Largest contiguous free extent.
        largest: u64,
    },
    /// The ALLOC ioctl failed for another reason.
    #[error("CRITMEM_IOC_ALLOC of {} (alignment {}) on {path} failed", human(*size), human(*align))]
    Alloc {
        /// The device path.
        path: PathBuf,
        /// Requested bytes.
        size: u64,
        /// Requested alignment.
        align: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reserving host address space failed.
    #[error("cannot reserve {} of host address space for the critmem slice", human(*size))]
    Reserve {
        /// Bytes to reserve.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Mapping the slice failed.
    #[error("cannot mmap the critmem slice ({}) from {path}", human(*size))]
    Mmap {
        /// The device path.
        path: PathBuf,
        /// Slice size.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Formats a byte count as MiB when it is a whole number of MiB.
pub fn human(bytes: u64) -> String {
    if bytes & ((1 << 20) - 1) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// The alignment to ask for first: 1 GiB for guests of at least 1 GiB, so
/// that at least one 1 GiB stage-2 page is possible; 2 MiB otherwise.
pub fn preferred_alignment(size: u64) -> u64 {
    if size >= SIZE_1G {
        SIZE_1G
    } else {
        SIZE_2M
    }
}

/// An allocated and mapped critmem slice.
#[derive(Debug)]
pub struct CritmemSlice {
    file: File,
    mapping: HostMapping,
    request: AllocRequest,
    align: u64,
}

impl CritmemSlice {
    /// Allocates a slice of `size` bytes from the device at `path` and maps
    /// it at a 1 GiB-aligned host address.
    pub fn allocate(path: &Path, size: u64) -> Result<Self, CritmemError> {
        let file = open_device(path)?;
        let mut align = preferred_alignment(size);
        let request = loop {
            match alloc(&file, size, align) {
                Ok(r) => break r,
                // ENOMEM: no free extent fits; EINVAL: bigger than the whole
                // pool (or a bad request: told apart by the pool figures).
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOMEM)
                        || (e.raw_os_error() == Some(libc::EINVAL)
                            && pool_figures(&file).1 < size) =>
                {
                    let (free, largest) = pool_figures(&file);
                    if align > SIZE_2M && largest >= size {
                        log::warn!(
                            "critmem: no {}-aligned free extent of {}; retrying with 2 MiB alignment",
                            human(align),
                            human(size)
                        );
                        align = SIZE_2M;
                        continue;
                    }
                    return Err(CritmemError::PoolTooSmall {
                        requested: size,
                        free,
                        largest,
                    });
                }
                Err(source) => {
                    return Err(CritmemError::Alloc {
                        path: path.to_path_buf(),
                        size,
                        align,
                        source,
                    })
                }
            }
        };
        let mapping = map_aligned(&file, path, request.phys_size, SIZE_1G)?;
        Ok(CritmemSlice {
            file,
            mapping,
            request,
            align,
        })
    }

    /// The backing description for logs.
    pub fn backing(&self) -> Backing {
        Backing::Critmem {
            phys_start: self.request.phys_start,
            size: self.request.phys_size,
            slice_id: self.request.slice_id,
            align: self.align,
        }
    }

    /// The device file (owner of the slice) and the mapping.
    pub fn into_parts(self) -> (File, HostMapping) {
        (self.file, self.mapping)
    }
}

fn open_device(path: &Path) -> Result<File, CritmemError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENXIO) | Some(libc::ENODEV) => {
                CritmemError::DeviceMissing {
                    path: path.to_path_buf(),
                }
            }
            Some(libc::EACCES) | Some(libc::EPERM) => CritmemError::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => CritmemError::Open {
                path: path.to_path_buf(),
                source,
            },
        })
}

/// `CRITMEM_IOC_ALLOC`.
fn alloc(file: &File, size: u64, align: u64) -> io::Result<AllocRequest> {
    let mut req = AllocRequest {
        size,
        align,
        ..Default::default()
    };
    // SAFETY: CRITMEM_IOC_ALLOC reads and writes exactly one `AllocRequest`
    // (its size is encoded in the ioctl number), and `req` is a live,
    // properly aligned `#[repr(C)]` value for the duration of the call.
    let ret = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            CRITMEM_IOC_ALLOC as _,
            &mut req as *mut AllocRequest,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

/// `CRITMEM_IOC_INFO`.
pub fn info(file: &File) -> io::Result<PoolInfo> {
    let mut info = PoolInfo::default();
    // SAFETY: CRITMEM_IOC_INFO writes exactly one `PoolInfo` (its size is
    // encoded in the ioctl number) into `info`, a live, aligned
    // `#[repr(C)]` value.
    let ret = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            CRITMEM_IOC_INFO as _,
            &mut info as *mut PoolInfo,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// The pool's free bytes and largest free extent, from `CRITMEM_IOC_INFO`,
/// else from `/proc/critmem` (`free=`; the largest extent is then unknown and
/// reported as the free figure), else zeros.
fn pool_figures(file: &File) -> (u64, u64) {
    if let Ok(i) = info(file) {
        return (i.free_bytes, i.largest_free);
    }
    let free = std::fs::read_to_string(critmem_abi::MAP_FILE_PATH)
        .ok()
        .and_then(|t| map_file_value(&t, critmem_abi::map_keys::FREE))
        .unwrap_or(0);
    (free, free)
}

/// The numeric value of `key` in `/proc/critmem` text (decimal or 0x-hex).
pub fn map_file_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let v = line.strip_prefix(key)?.strip_prefix('=')?.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    })
}

/// Maps `size` bytes of `file` (offset 0: the slice's start) `MAP_SHARED` at
/// a host address aligned to `align`.
fn map_aligned(
    file: &File,
    path: &Path,
    size: u64,
    align: u64,
) -> Result<HostMapping, CritmemError> {
    let reserve_len = (size + align) as usize;
    // SAFETY: a fresh PROT_NONE anonymous reservation at an address of the
    // kernel's choice aliases nothing.
    let reserve = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserve_len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if reserve == libc::MAP_FAILED {
        return Err(CritmemError::Reserve {
            size: reserve_len as u64,
            source: io::Error::last_os_error(),
        });
    }
    let start = reserve as u64;
    let aligned = (start + align - 1) & !(align - 1);
    let flags = libc::MAP_SHARED | libc::MAP_FIXED;
    // SAFETY: `[aligned, aligned + size)` lies inside the reservation made
    // above, which this function owns and nothing else uses, so MAP_FIXED
    // replaces only our own PROT_NONE pages.
    let addr = unsafe {
        libc::mmap(
            aligned as *mut libc::c_void,
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        let source = io::Error::last_os_error();
        // SAFETY: unmapping our own reservation, which nothing references.
        unsafe { libc::munmap(reserve, reserve_len) };
        return Err(CritmemError::Mmap {
            path: path.to_path_buf(),
            size,
            source,
        });
    }
    // Give back the unused head and tail of the reservation.
    let head = aligned - start;
    let tail = reserve_len as u64 - head - size;
    // SAFETY: both ranges are the PROT_NONE parts of our reservation around
    // the slice mapping; nothing references them.
    unsafe {
        if head > 0 {
            libc::munmap(reserve, head as usize);
        }
        if tail > 0 {
            libc::munmap((aligned + size) as *mut libc::c_void, tail as usize);
        }
    }
    // SAFETY: `[aligned, aligned + size)` is now our read/write shared
    // mapping of the slice, owned by nobody else.
    Ok(unsafe { HostMapping::from_raw(addr.cast(), size as usize, flags) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_choice() {
        assert_eq!(preferred_alignment(512 << 20), SIZE_2M);
        assert_eq!(preferred_alignment(1 << 30), SIZE_1G);
        assert_eq!(preferred_alignment(3 << 30), SIZE_1G);
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let e = CritmemError::DeviceMissing {
            path: "/dev/critmem".into(),
        };
        assert_eq!(
            e.to_string(),
            "/dev/critmem does not exist: load critmem.ko (modprobe critmem) and boot with \
             reserve_mem=<size>:<align>:critmem"
        );
        let e = CritmemError::PoolTooSmall {
            requested: 2 << 30,
            free: 1 << 30,
            largest: 512 << 20,
        };
        assert_eq!(
            e.to_string(),
            "critmem pool too small: requested 2048 MiB, free 1024 MiB (largest free extent 512 MiB)"
        );
        let e = CritmemError::PermissionDenied {
            path: "/dev/critmem".into(),
        };
        assert!(e.to_string().contains("group kvm"));
    }

    #[test]
    fn missing_device_is_reported_as_such() {
        let e = CritmemSlice::allocate(Path::new("/nonexistent/critmem"), 1 << 30).unwrap_err();
        assert!(matches!(e, CritmemError::DeviceMissing { .. }), "{e:?}");
    }

    #[test]
    fn a_device_that_is_not_critmem_fails_the_ioctl() {
        let e = CritmemSlice::allocate(Path::new("/dev/null"), 64 << 20).unwrap_err();
        assert!(matches!(e, CritmemError::Alloc { .. }), "{e:?}");
    }

    #[test]
    fn map_file_values() {
        let t = "version=1\nstart=0x40000000\nfree=1073741824\nfree_zeroed=0\n";
        assert_eq!(map_file_value(t, "start"), Some(0x4000_0000));
        assert_eq!(map_file_value(t, "free"), Some(1 << 30));
        assert_eq!(map_file_value(t, "free_zeroed"), Some(0));
        assert_eq!(map_file_value(t, "size"), None);
    }

    #[test]
    fn aligned_mapping_of_a_shareable_file() {
        // Any MAP_SHARED-capable file shows the alignment logic.
        let f = File::options()
            .read(true)
            .write(true)
            .open("/dev/zero")
            .unwrap();
        let m = map_aligned(&f, Path::new("/dev/zero"), 4 << 20, SIZE_1G).unwrap();
        assert_eq!(m.addr() % SIZE_1G, 0);
        assert_eq!(m.len(), 4 << 20);
    }
}
