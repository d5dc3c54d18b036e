//! The memory path of a critical VM: a contiguous physical slice of the
//! critmem pool.
//!
//! The device calls are [`critmem_abi::client`]'s; this module holds vmm's
//! policy on top of them.
//!
//! 1. Open `/dev/critmem` (or `--critmem-device`).
//! 2. `CRITMEM_IOC_ALLOC {size, align}`: this open file now owns a slice.
//!    The alignment is 1 GiB when the guest has at least 1 GiB (falling back
//!    to 2 MiB when the pool has room but no 1 GiB-aligned extent), 2 MiB
//!    otherwise.
//! 3. Map the slice `MAP_SHARED` at a 1 GiB-aligned host address
//!    ([`Placement::Aligned`]). With the slice 1 GiB aligned in both
//!    physical and virtual address, the module maps it with 1 GiB host
//!    pages, and with the memslot layout of [`crate::arch::x86_64::layout::ram_ranges`]
//!    (guest-physical ≡ host-virtual mod 1 GiB) KVM can map the guest with
//!    1 GiB stage-2 pages.
//!
//! The slice is released by the kernel when the file and the mapping are
//! gone, including when the process is killed.

use std::io;
use std::path::Path;

use critmem_abi::client::{ClientError, Device, MapOptions, Placement};
use critmem_abi::units::human;
use critmem_abi::{map_file, AllocRequest, MAP_FILE_PATH};

use super::{Backing, HostMapping};
use crate::arch::x86_64::layout::{SIZE_1G, SIZE_2M};

/// Errors of the critmem backing. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CritmemError {
    /// Opening the device, an ioctl or the mapping failed.
    #[error(transparent)]
    Device(#[from] ClientError),
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
    device: Device,
    mapping: HostMapping,
    request: AllocRequest,
    align: u64,
}

impl CritmemSlice {
    /// Allocates a slice of `size` bytes from the device at `path` and maps
    /// it at a 1 GiB-aligned host address.
    pub fn allocate(path: &Path, size: u64) -> Result<Self, CritmemError> {
        let device = Device::open(path)?;
        let mut align = preferred_alignment(size);
        let request = loop {
            let error = match device.alloc(size, align) {
                Ok(request) => break request,
                Err(error) => error,
            };
            // ENOMEM: no free extent fits; EINVAL: bigger than the whole
            // pool (or a bad request: told apart by the pool figures).
            let errno = error.os_error().and_then(io::Error::raw_os_error);
            let no_room = errno == Some(libc::ENOMEM)
                || (errno == Some(libc::EINVAL) && pool_figures(&device).1 < size);
            if !no_room {
                return Err(error.into());
            }
            let (free, largest) = pool_figures(&device);
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
        };
        let options = MapOptions {
            placement: Placement::Aligned {
                align: SIZE_1G,
                offset: 0,
            },
            ..MapOptions::slice(request.phys_size)
        };
        let slice_mapping = device.map(&options)?;
        let flags = slice_mapping.flags();
        let (addr, len) = slice_mapping.into_raw();
        // SAFETY: `into_raw` handed over the read/write shared mapping of the
        // slice that `map` just made in this process; nothing else owns it.
        let mapping = unsafe { HostMapping::from_raw(addr, len, flags) };
        Ok(CritmemSlice {
            device,
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
    pub fn into_parts(self) -> (Device, HostMapping) {
        (self.device, self.mapping)
    }
}

/// The pool's free bytes and largest free extent, from `CRITMEM_IOC_INFO`,
/// else from `/proc/critmem` (`free=`; the largest extent is then unknown and
/// reported as the free figure), else zeros.
fn pool_figures(device: &Device) -> (u64, u64) {
    if let Ok(info) = device.info() {
        return (info.free_bytes, info.largest_free);
    }
    let free = map_file::read(Path::new(MAP_FILE_PATH))
        .map(|map| map.free)
        .unwrap_or(0);
    (free, free)
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
    fn pool_too_small_says_what_is_free() {
        let e = CritmemError::PoolTooSmall {
            requested: 512 << 20,
            free: 256 << 20,
            largest: 256 << 20,
        };
        assert_eq!(
            e.to_string(),
            "critmem pool too small: requested 512 MiB, free 256 MiB (largest free extent 256 MiB)"
        );
    }

    #[test]
    fn missing_device_is_reported_as_such() {
        let e = CritmemSlice::allocate(Path::new("/nonexistent/critmem"), 1 << 30).unwrap_err();
        assert!(
            matches!(e, CritmemError::Device(ClientError::DeviceMissing { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn a_device_that_is_not_critmem_fails_the_ioctl() {
        let e = CritmemSlice::allocate(Path::new("/dev/null"), 64 << 20).unwrap_err();
        assert!(
            matches!(e, CritmemError::Device(ClientError::Alloc { .. })),
            "{e:?}"
        );
    }
}
