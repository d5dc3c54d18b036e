//! `cmtool memwrite` and `cmtool hog`: the two sides of the memory benchmark.
//!
//! `memwrite [--mb N]` (in the nested guest): maps N MiB of private
//! anonymous memory (default: most of MemAvailable, see [`auto_mb`]),
//! writes every byte of every page once, and prints
//! `memwrite: mb=N ms=T mbps=R`. The first write of each page costs a guest
//! page fault, the guest kernel zeroing the page and, the first time the
//! guest uses that guest-physical page, a stage-2 fault in the host, which
//! is what the backings differ in.
//!
//! `hog --mb N [--seconds S]` (in the emulated host): maps N MiB, writes
//! every page once, mlocks the pages (printing `hog: filled mb=N` when
//! done) and sleeps: the memory is gone from the host without costing any
//! CPU, and reclaim must take what other processes need from their own
//! pages. This is the benchmark's pressure.
//! Runs until killed, or for S seconds.

use std::io::Write;
use std::time::{Duration, Instant};

const PAGE: usize = 4096;

/// An anonymous private mapping, unmapped on drop.
struct Anon {
    ptr: *mut u8,
    len: usize,
}

impl Anon {
    fn new(len: usize) -> Result<Self, String> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choice (no MAP_FIXED) aliases no Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "mmap of {} MiB: {}",
                len >> 20,
                std::io::Error::last_os_error()
            ));
        }
        Ok(Anon { ptr: p.cast(), len })
    }

    /// Pins the mapping's pages in RAM.
    fn lock(&mut self) -> Result<(), String> {
        // SAFETY: mlock only changes how the kernel treats our own mapping's
        // pages; it touches no Rust object.
        if unsafe { libc::mlock(self.ptr.cast(), self.len) } != 0 {
            return Err(format!(
                "mlock of {} MiB: {}",
                self.len >> 20,
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// The mapping as a byte slice.
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr..ptr+len` is our live read/write mapping, zero-filled
        // on first touch, and only reachable through this `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; the slices borrowed from it
        // are gone with `&mut self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// `meminfo_kb(text, key)`: a `/proc/meminfo` figure in KiB.
fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Most of the guest's available memory: MemAvailable less an eighth and
/// 24 MiB, so the guest's page cache and kernel keep room and it does not
/// OOM.
pub fn auto_mb(meminfo: &str) -> u64 {
    let avail = meminfo_kb(meminfo, "MemAvailable")
        .or_else(|| meminfo_kb(meminfo, "MemFree"))
        .unwrap_or(0)
        >> 10;
    (avail - avail / 8).saturating_sub(24).max(1)
}

pub fn memwrite(mb: &str) -> Result<(), String> {
    let mb = match mb {
        "auto" => {
            let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| e.to_string())?;
            auto_mb(&text)
        }
        v => v.parse::<u64>().map_err(|e| format!("--mb {v}: {e}"))?,
    };
    let len = (mb as usize) << 20;
    let mut m = Anon::new(len)?;
    let t0 = Instant::now();
    for (i, page) in m.bytes().chunks_mut(PAGE).enumerate() {
        page.fill((i as u8) | 1);
    }
    let el = t0.elapsed();
    // Read one byte per page back so the writes cannot be elided.
    let sum: u64 = m.bytes().iter().step_by(PAGE).map(|&b| b as u64).sum();
    let ms = el.as_secs_f64() * 1000.0;
    println!(
        "memwrite: mb={mb} ms={ms:.0} mbps={:.1} check={sum}",
        mb as f64 / el.as_secs_f64().max(1e-9)
    );
    Ok(())
}

pub fn hog(mb: u64, seconds: Option<u64>) -> Result<(), String> {
    let len = (mb as usize) << 20;
    let mut m = Anon::new(len)?;
    let t0 = Instant::now();
    for (i, page) in m.bytes().chunks_mut(PAGE).enumerate() {
        page[..8].copy_from_slice(&(i as u64).to_le_bytes());
        page[PAGE - 1] = 1;
    }
    m.lock()?;
    println!("hog: filled mb={mb} ms={}", t0.elapsed().as_millis());
    let _ = std::io::stdout().flush();
    let deadline = seconds.map(|s| t0 + Duration::from_secs(s));
    while deadline.is_none_or(|d| Instant::now() < d) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("hog: done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_size_leaves_room() {
        let t = "MemTotal: 262144 kB\nMemFree: 200000 kB\nMemAvailable: 204800 kB\n";
        assert_eq!(meminfo_kb(t, "MemAvailable"), Some(204800));
        assert_eq!(meminfo_kb(t, "Mem"), None);
        assert_eq!(auto_mb(t), 200 - 25 - 24);
        assert_eq!(auto_mb("MemFree: 1024 kB\n"), 1);
    }

    #[test]
    fn memwrite_and_hog_run() {
        memwrite("4").unwrap();
        assert!(memwrite("four").is_err());
        hog(1, Some(0)).unwrap();
    }
}
