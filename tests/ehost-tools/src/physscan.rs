//! `physscan ADDR LEN VALUE`: searches physical memory `[ADDR, ADDR+LEN)`
//! for the 32-bit little-endian VALUE at 4-byte-aligned offsets, as a third
//! party looking for a guest's marker. It reads through `/dev/mem` or
//! `/proc/kcore` ([`crate::phys::PhysReader`], `--via`).
//!
//! Prints `found=<count> first=<hex address or none> scanned=<bytes>`; exits 0
//! whether or not the value was found (scenarios assert on `found=`).

use crate::phys::{PhysReader, Via, CHUNK};

/// Offsets (in bytes) of the 4-byte-aligned occurrences of `value` in `buf`.
fn occurrences(buf: &[u8], value: u32) -> impl Iterator<Item = usize> + '_ {
    let needle = value.to_le_bytes();
    buf.chunks_exact(4)
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i * 4)
}

/// `physscan ADDR LEN VALUE`.
pub fn run(addr: u64, len: u64, value: u64, via: Via) -> Result<(), String> {
    let value =
        u32::try_from(value).map_err(|_| "physscan: VALUE must fit in 32 bits".to_string())?;
    let mut mem = PhysReader::open(via)?;
    let r = scan(&mut mem, addr, len, value);
    mem.announce_used();
    r
}

fn scan(mem: &mut PhysReader, addr: u64, len: u64, value: u32) -> Result<(), String> {
    let (mut found, mut first) = (0u64, None);
    let mut off = 0;
    let mut buf = vec![0u8; CHUNK as usize];
    while off < len {
        let n = CHUNK.min(len - off) as usize;
        mem.read_exact_at(&mut buf[..n], addr + off)?;
        for o in occurrences(&buf[..n], value) {
            found += 1;
            first.get_or_insert(addr + off + o as u64);
        }
        off += n as u64;
    }
    let first = first.map_or("none".to_string(), |a| format!("{a:#x}"));
    println!("found={found} first={first} scanned={len}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::occurrences;

    #[test]
    fn finds_aligned_little_endian_words_only() {
        let mut buf = vec![0u8; 64];
        buf[8..12].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        buf[21..25].copy_from_slice(&0xdeadbeefu32.to_le_bytes()); // unaligned
        buf[60..64].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        let v: Vec<usize> = occurrences(&buf, 0xdeadbeef).collect();
        assert_eq!(v, vec![8, 60]);
    }
}
