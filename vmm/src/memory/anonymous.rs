//! The memory path of a normal VM: private anonymous memory.
//!
//! `MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE`: nothing is allocated or
//! accounted up front; host pages are populated when the guest first touches
//! them.

use std::io;

use super::HostMapping;

/// Errors of the anonymous backing.
#[derive(Debug, thiserror::Error)]
pub enum AnonymousError {
    /// `mmap` failed.
    #[error("cannot map {size} bytes of anonymous guest memory")]
    Mmap {
        /// Requested size.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Maps `size` bytes of anonymous, lazily populated memory.
pub fn map(size: u64) -> Result<HostMapping, AnonymousError> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choice
    // (no MAP_FIXED) cannot alias any existing Rust object.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(AnonymousError::Mmap {
            size,
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `addr..addr+size` was just mapped read/write by us and is owned
    // by nobody else.
    Ok(unsafe { HostMapping::from_raw(addr.cast(), size as usize, flags) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn maps_and_unmaps() {
        let m = super::map(8 << 20).unwrap();
        assert_eq!(m.len(), 8 << 20);
        assert_eq!(m.addr() % 4096, 0);
    }
}
