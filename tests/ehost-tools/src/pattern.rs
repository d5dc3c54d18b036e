//! Memory fill patterns shared by the mapping and `/dev/mem` subcommands.
//!
//! A pattern is `0xAB` (every byte 0xAB) or `seq:SEED` (the 64-bit word at
//! byte offset `o` from the start of the filled range holds `SEED ^ o`), so
//! each word is unique and a misplaced copy cannot pass.

/// A fill pattern.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    Byte(u8),
    Seq(u64),
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(seed) = s.strip_prefix("seq:") {
            return Ok(Self::Seq(crate::args::num(seed)?));
        }
        let v = crate::args::num(s)?;
        u8::try_from(v)
            .map(Self::Byte)
            .map_err(|_| format!("byte pattern '{s}' > 0xff"))
    }

    /// The 64-bit word expected at byte offset `off` (a multiple of 8).
    pub fn word(self, off: u64) -> u64 {
        match self {
            Self::Byte(b) => u64::from_ne_bytes([b; 8]),
            Self::Seq(seed) => seed ^ off,
        }
    }

    /// Fills `buf`, whose first byte is at offset `base` of the pattern.
    pub fn fill(self, buf: &mut [u64], base: u64) {
        for (i, w) in buf.iter_mut().enumerate() {
            *w = self.word(base + 8 * i as u64);
        }
    }

    /// The first offset in `buf` (at pattern offset `base`) that differs.
    pub fn first_mismatch(self, buf: &[u64], base: u64) -> Option<u64> {
        buf.iter()
            .enumerate()
            .find(|(i, w)| **w != self.word(base + 8 * *i as u64))
            .map(|(i, _)| base + 8 * i as u64)
    }
}

/// `cmtool stream PATTERN BYTES`: BYTES of the pattern on standard output,
/// from pattern offset 0, in 64 KiB writes.
pub fn stream(pattern: &str, bytes: u64) -> Result<(), String> {
    use std::io::Write;
    const CHUNK_WORDS: usize = 8192;
    let pattern = Pattern::parse(pattern)?;
    let mut words = vec![0u64; CHUNK_WORDS];
    let mut out = std::io::stdout().lock();
    let mut offset = 0u64;
    while offset < bytes {
        pattern.fill(&mut words, offset);
        let chunk: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let n = usize::try_from((bytes - offset).min(chunk.len() as u64)).expect("a chunk");
        out.write_all(&chunk[..n])
            .map_err(|e| format!("stdout: {e}"))?;
        offset += n as u64;
    }
    out.flush().map_err(|e| format!("stdout: {e}"))
}
