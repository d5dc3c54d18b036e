//! `file-gpa FILE`: where the first page of FILE sits in this kernel's
//! physical memory, once it is read into the page cache.
//!
//! Run in a guest, the physical address is a guest-physical one: a page
//! that virtio-blk filled by DMA on the read. The emulated host then reads
//! the same bytes at slice start + that address, as a third party, to show
//! that device I/O lands in the critical VM's slice too.
//!
//! Prints `file-gpa: gpa=0x<addr> head=<hex of the first 16 bytes>`. The
//! physical frame comes from `/proc/self/pagemap` (root only: others read
//! frame 0).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

const PAGE: usize = 4096;
/// pagemap: bit 63 says the page is present, bits 0-54 hold its frame.
const PRESENT: u64 = 1 << 63;
const PFN_MASK: u64 = (1 << 55) - 1;

pub fn run(path: &str) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    // Read it first, so that the page comes from the disk by the driver's
    // usual path rather than by a page fault's readahead.
    let mut head = [0u8; 16];
    (&file)
        .read_exact(&mut head)
        .map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: a fresh read-only shared mapping of one page of an open
    // file; it is unmapped below and never used as a Rust reference.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(format!("mmap {path}: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `addr` is a readable mapping of at least one byte; the
    // volatile read faults the page-cache page into this page table.
    let first = unsafe { std::ptr::read_volatile(addr as *const u8) };
    let vpn = addr as u64 / PAGE as u64;
    let pagemap =
        File::open("/proc/self/pagemap").map_err(|e| format!("/proc/self/pagemap: {e}"))?;
    let mut entry = [0u8; 8];
    let read = pagemap.read_exact_at(&mut entry, vpn * 8);
    // SAFETY: unmapping the mapping made above, no longer used.
    unsafe { libc::munmap(addr, PAGE) };
    read.map_err(|e| format!("/proc/self/pagemap: {e}"))?;
    let entry = u64::from_le_bytes(entry);
    let pfn = entry & PFN_MASK;
    if entry & PRESENT == 0 || pfn == 0 {
        return Err(format!(
            "{path}: no physical frame in pagemap (entry 0x{entry:x}); run as root"
        ));
    }
    if first != head[0] {
        return Err(format!("{path}: the mapping and read() disagree"));
    }
    let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
    println!("file-gpa: gpa=0x{:x} head={hex}", pfn * PAGE as u64);
    Ok(())
}
