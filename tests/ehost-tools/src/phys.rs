//! Third-party physical memory access through `/dev/mem` (read/write at an
//! offset, never mmap, so no cache-type conflict with critmem's mappings):
//!
//! - `physcheck ADDR LEN PATTERN`: prints `match=1`, or `match=0
//!   first_mismatch=<hex> found=<hex> expected=<hex>`, exit 1.
//! - `physfill ADDR LEN PATTERN`: writes the pattern, prints `filled=LEN`.
//! - `physread ADDR LEN`: prints `data=<hex bytes>` (LEN <= 4096).

use crate::pattern::Pattern;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

const CHUNK: u64 = 1 << 20;

fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn open_mem(write: bool) -> Result<std::fs::File, String> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .open("/dev/mem")
        .map_err(|e| format!("open /dev/mem: {e}"))
}

/// The (offset, length) pieces, at most [`CHUNK`] bytes each, that cover
/// `len` bytes.
fn chunks(len: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..len)
        .step_by(CHUNK as usize)
        .map(move |off| (off, CHUNK.min(len - off)))
}

/// `physread ADDR LEN`.
pub fn read(addr: u64, len: u64) -> Result<(), String> {
    let mem = open_mem(false)?;
    let mut buf = vec![0u8; len.min(4096) as usize];
    mem.read_exact_at(&mut buf, addr)
        .map_err(|e| format!("read /dev/mem at {addr:#x}: {e}"))?;
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    println!("data={hex}");
    Ok(())
}

/// `physcheck ADDR LEN PATTERN`.
pub fn check(addr: u64, len: u64, pattern: &str) -> Result<(), String> {
    let pattern = Pattern::parse(pattern)?;
    let mem = open_mem(false)?;
    for (off, n) in chunks(len) {
        let mut buf = vec![0u8; n as usize];
        mem.read_exact_at(&mut buf, addr + off)
            .map_err(|e| format!("read /dev/mem at {:#x}: {e}", addr + off))?;
        let w = words(&buf);
        if let Some(bad) = pattern.first_mismatch(&w, off) {
            let found = w[((bad - off) / 8) as usize];
            println!(
                "match=0 first_mismatch={:#x} found={found:#x} expected={:#x}",
                addr + bad,
                pattern.word(bad)
            );
            return Err("physical memory does not hold the pattern".into());
        }
    }
    println!("match=1 checked={len}");
    Ok(())
}

/// `physfill ADDR LEN PATTERN`.
pub fn fill(addr: u64, len: u64, pattern: &str) -> Result<(), String> {
    let pattern = Pattern::parse(pattern)?;
    let mem = open_mem(true)?;
    for (off, n) in chunks(len) {
        let mut w = vec![0u64; (n / 8) as usize];
        pattern.fill(&mut w, off);
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
        mem.write_all_at(&bytes, addr + off)
            .map_err(|e| format!("write /dev/mem at {:#x}: {e}", addr + off))?;
    }
    println!("filled={len}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_once() {
        let len = 2 * CHUNK + 4096;
        let pieces: Vec<_> = chunks(len).collect();
        assert_eq!(pieces, [(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, 4096)]);
        assert_eq!(chunks(0).count(), 0);
    }
}
