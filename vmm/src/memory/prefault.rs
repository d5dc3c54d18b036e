//! `--prefault`: populate guest RAM when the VM starts instead of on the
//! guest's first touch of each page.
//!
//! `madvise(MADV_POPULATE_WRITE)` (Linux 5.14+) write-faults every page of
//! the range in, as the guest's first write would, and, unlike
//! `MAP_POPULATE`, reports failure (ENOMEM, EFAULT, or SIGBUS-equivalent
//! `EFAULT` for an exhausted hugetlb pool) instead of silently leaving pages
//! out. The cost is paid before the first vCPU runs and grows with guest
//! RAM; in exchange KVM's stage-2 faults find the host pages already there.
//!
//! A critical VM needs no prefault: its slice is mapped by the module's
//! fault handler with 1 GiB or 2 MiB entries, a handful of faults in all.

use std::io;

use super::HostMapping;

/// Errors of prefaulting.
#[derive(Debug, thiserror::Error)]
pub enum PrefaultError {
    /// `madvise(MADV_POPULATE_WRITE)` failed.
    #[error("cannot prefault {} MiB of guest memory (MADV_POPULATE_WRITE)", size >> 20)]
    Populate {
        /// Bytes to populate.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Write-faults the first `len` bytes of `mapping` in.
pub fn populate_write(mapping: &HostMapping, len: u64) -> Result<(), PrefaultError> {
    let len = len.min(mapping.len() as u64);
    // SAFETY: madvise only asks the kernel to fault in pages of our own live
    // read/write mapping; it does not change their contents (fresh
    // anonymous or hugetlb pages read zero either way) and touches no Rust
    // object.
    let ret = unsafe {
        libc::madvise(
            mapping.addr() as *mut libc::c_void,
            len as usize,
            libc::MADV_POPULATE_WRITE,
        )
    };
    if ret != 0 {
        return Err(PrefaultError::Populate {
            size: len,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populates_anonymous_memory() {
        let m = super::super::anonymous::map(4 << 20).unwrap();
        populate_write(&m, 4 << 20).unwrap();
        // A length past the mapping is clamped to it.
        populate_write(&m, 8 << 20).unwrap();
    }
}
