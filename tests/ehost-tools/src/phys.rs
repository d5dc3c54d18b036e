//! Third-party physical memory access, by one of two paths that never go
//! through critmem.ko:
//!
//! - `/dev/mem`: read and write at the physical address (pread/pwrite,
//!   never mmap, so no cache-type conflict with critmem's mappings).
//! - `/proc/kcore`: read only. The running kernel as an ELF core file; each
//!   `PT_LOAD` program header of System RAM carries the physical address of
//!   its first byte in `p_paddr` (Linux 7.2 `fs/proc/kcore.c`; non-RAM
//!   segments have `p_paddr == -1`). This is the path on a kernel with
//!   `CONFIG_STRICT_DEVMEM=y`, where `/dev/mem` refuses System RAM with
//!   `EPERM`. It shows only System RAM: not `memmap=` memory.
//!
//! `--via auto` (the default) reads through `/dev/mem` and moves to
//! `/proc/kcore` at the first `EPERM`. Every command prints the path it
//! used, as `phys: via=/dev/mem` or `phys: via=/proc/kcore`, on stderr, so
//! the lines that scenarios parse on stdout stay as they are:
//!
//! - `physcheck ADDR LEN PATTERN`: prints `match=1`, or `match=0
//!   first_mismatch=<hex> found=<hex> expected=<hex>`, exit 1.
//! - `physfill ADDR LEN PATTERN`: writes the pattern through `/dev/mem`,
//!   prints `filled=LEN`.
//! - `physread ADDR LEN`: prints `data=<hex bytes>` (LEN <= 4096).

use crate::pattern::Pattern;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

pub(crate) const CHUNK: u64 = 1 << 20;

const DEV_MEM: &str = "/dev/mem";
const KCORE: &str = "/proc/kcore";

/// Which path reads physical memory (`--via`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `/dev/mem`, then `/proc/kcore` if `/dev/mem` refuses with EPERM.
    Auto,
    /// `/dev/mem` only.
    Devmem,
    /// `/proc/kcore` only.
    Kcore,
}

fn words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

/// The (offset, length) pieces, at most [`CHUNK`] bytes each, that cover
/// `len` bytes.
pub(crate) fn chunks(len: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..len)
        .step_by(CHUNK as usize)
        .map(move |off| (off, CHUNK.min(len - off)))
}

/// One `PT_LOAD` segment of `/proc/kcore` that holds System RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    paddr: u64,
    len: u64,
    file_offset: u64,
}

const PT_LOAD: u32 = 1;
const EHDR_LEN: usize = 64;

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The program header table's place in the file, `(e_phoff, e_phentsize,
/// e_phnum)`, from an ELF64 little-endian header.
fn phdr_table(ehdr: &[u8]) -> Result<(u64, usize, usize), String> {
    if ehdr.len() < EHDR_LEN || ehdr[..4] != *b"\x7fELF" {
        return Err(format!("{KCORE} is not an ELF file"));
    }
    if ehdr[4] != 2 || ehdr[5] != 1 {
        return Err(format!("{KCORE} is not ELF64 little-endian"));
    }
    let (phoff, phentsize, phnum) = (le_u64(ehdr, 32), le_u16(ehdr, 54), le_u16(ehdr, 56));
    if phentsize < 56 {
        return Err(format!("{KCORE}: program header size {phentsize} < 56"));
    }
    if phnum == u16::MAX {
        // PN_XNUM: the count would be in section header 0, which
        // fs/proc/kcore.c never writes.
        return Err(format!("{KCORE}: e_phnum is PN_XNUM, not supported"));
    }
    Ok((phoff, phentsize.into(), phnum.into()))
}

/// The RAM segments among the program headers `phdrs` (`phnum` entries of
/// `phentsize` bytes): `PT_LOAD` with a physical address.
fn ram_segments(phdrs: &[u8], phentsize: usize) -> Vec<Segment> {
    phdrs
        .chunks_exact(phentsize)
        .filter(|p| le_u32(p, 0) == PT_LOAD && le_u64(p, 24) != u64::MAX)
        .map(|p| Segment {
            paddr: le_u64(p, 24),
            len: le_u64(p, 32),
            file_offset: le_u64(p, 8),
        })
        .collect()
}

/// The segment holding physical address `paddr`, and how many bytes of it
/// follow `paddr`.
fn segment_at(segments: &[Segment], paddr: u64) -> Option<(Segment, u64)> {
    segments
        .iter()
        .find(|s| paddr >= s.paddr && paddr - s.paddr < s.len)
        .map(|s| (*s, s.len - (paddr - s.paddr)))
}

/// `/proc/kcore`, opened, with its RAM segments.
struct Kcore {
    file: File,
    segments: Vec<Segment>,
}

impl Kcore {
    fn open() -> Result<Self, String> {
        let file = File::open(KCORE).map_err(|e| {
            format!("open {KCORE}: {e} (a kernel with CONFIG_PROC_KCORE=y is needed to read RAM when /dev/mem refuses it)")
        })?;
        let mut ehdr = [0u8; EHDR_LEN];
        file.read_exact_at(&mut ehdr, 0)
            .map_err(|e| format!("read {KCORE}'s ELF header: {e}"))?;
        let (phoff, phentsize, phnum) = phdr_table(&ehdr)?;
        let mut phdrs = vec![0u8; phentsize * phnum];
        file.read_exact_at(&mut phdrs, phoff)
            .map_err(|e| format!("read {KCORE}'s program headers: {e}"))?;
        let segments = ram_segments(&phdrs, phentsize);
        Ok(Self { file, segments })
    }

    fn read_exact_at(&self, buf: &mut [u8], paddr: u64) -> Result<(), String> {
        let mut done = 0;
        while done < buf.len() {
            let at = paddr + done as u64;
            let (seg, left) = segment_at(&self.segments, at).ok_or_else(|| {
                format!(
                    "physical address {at:#x} is in none of the {} System RAM segments of {KCORE} (memory that is not System RAM, such as memmap= memory, is not there)",
                    self.segments.len()
                )
            })?;
            let n = (buf.len() - done).min(usize::try_from(left).unwrap_or(usize::MAX));
            self.file
                .read_exact_at(&mut buf[done..done + n], seg.file_offset + (at - seg.paddr))
                .map_err(|e| format!("read {KCORE} at physical {at:#x}: {e}"))?;
            done += n;
        }
        Ok(())
    }
}

enum Source {
    DevMem(File),
    Kcore(Kcore),
}

/// A reader of physical memory by one of the two paths.
pub(crate) struct PhysReader {
    via: Via,
    source: Source,
}

fn announce(path: &str, why: &str) {
    eprintln!("phys: via={path}{why}");
}

impl PhysReader {
    pub(crate) fn open(via: Via) -> Result<Self, String> {
        let source = match via {
            Via::Auto | Via::Devmem => {
                Source::DevMem(File::open(DEV_MEM).map_err(|e| format!("open {DEV_MEM}: {e}"))?)
            }
            Via::Kcore => Source::Kcore(Kcore::open()?),
        };
        Ok(Self { via, source })
    }

    /// Fills `buf` from physical address `paddr`. Under [`Via::Auto`], an
    /// `EPERM` from `/dev/mem` (STRICT_DEVMEM refusing System RAM, or a
    /// range a driver claimed exclusively) moves this reader to
    /// `/proc/kcore` for good.
    pub(crate) fn read_exact_at(&mut self, buf: &mut [u8], paddr: u64) -> Result<(), String> {
        // At most two rounds: /dev/mem, then /proc/kcore after a move.
        loop {
            match &self.source {
                Source::Kcore(k) => return k.read_exact_at(buf, paddr),
                Source::DevMem(mem) => match mem.read_exact_at(buf, paddr) {
                    Ok(()) => return Ok(()),
                    Err(e) if self.via == Via::Auto && e.raw_os_error() == Some(libc::EPERM) => {
                        announce(KCORE, &format!(" ({DEV_MEM} refused {paddr:#x}: {e})"));
                        self.source = Source::Kcore(Kcore::open()?);
                    }
                    Err(e) => return Err(devmem_error("read", paddr, &e)),
                },
            }
        }
    }

    /// Prints the path the reads went through.
    pub(crate) fn announce_used(&self) {
        match (&self.source, self.via) {
            // A move to kcore was announced when it happened.
            (Source::Kcore(_), Via::Auto) => {}
            (Source::Kcore(_), _) => announce(KCORE, ""),
            (Source::DevMem(_), _) => announce(DEV_MEM, ""),
        }
    }
}

fn devmem_error(what: &str, paddr: u64, e: &io::Error) -> String {
    let hint = if e.raw_os_error() == Some(libc::EPERM) {
        " (this kernel refuses /dev/mem for System RAM, CONFIG_STRICT_DEVMEM=y, or for a range a driver claimed exclusively)"
    } else {
        ""
    };
    format!("{what} {DEV_MEM} at {paddr:#x}: {e}{hint}")
}

/// `physread ADDR LEN`.
pub fn read(addr: u64, len: u64, via: Via) -> Result<(), String> {
    let mut mem = PhysReader::open(via)?;
    let mut buf = vec![0u8; len.min(4096) as usize];
    let r = mem.read_exact_at(&mut buf, addr);
    mem.announce_used();
    r?;
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    println!("data={hex}");
    Ok(())
}

/// `physcheck ADDR LEN PATTERN`.
pub fn check(addr: u64, len: u64, pattern: &str, via: Via) -> Result<(), String> {
    let pattern = Pattern::parse(pattern)?;
    let mut mem = PhysReader::open(via)?;
    let r = check_with(&mut mem, addr, len, pattern);
    mem.announce_used();
    r
}

fn check_with(mem: &mut PhysReader, addr: u64, len: u64, pattern: Pattern) -> Result<(), String> {
    for (off, n) in chunks(len) {
        let mut buf = vec![0u8; n as usize];
        mem.read_exact_at(&mut buf, addr + off)?;
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

/// `physfill ADDR LEN PATTERN`: through `/dev/mem` only, since
/// `/proc/kcore` is read-only.
pub fn fill(addr: u64, len: u64, pattern: &str) -> Result<(), String> {
    let pattern = Pattern::parse(pattern)?;
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEV_MEM)
        .map_err(|e| format!("open {DEV_MEM} for writing: {e}"))?;
    announce(DEV_MEM, "");
    for (off, n) in chunks(len) {
        let mut w = vec![0u64; (n / 8) as usize];
        pattern.fill(&mut w, off);
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
        mem.write_all_at(&bytes, addr + off).map_err(|e| {
            let mut msg = devmem_error("write", addr + off, &e);
            if e.raw_os_error() == Some(libc::EPERM) {
                msg.push_str("; /proc/kcore is read-only, so fill through a critmem mapping instead (cmtool alloc --pattern)");
            }
            msg
        })?;
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

    /// An ELF64 header followed by program headers `(type, offset, paddr,
    /// filesz)`, as fs/proc/kcore.c lays them out.
    fn core_file(phdrs: &[(u32, u64, u64, u64)]) -> Vec<u8> {
        let mut f = vec![0u8; EHDR_LEN];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[32..40].copy_from_slice(&(EHDR_LEN as u64).to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(ty, offset, paddr, filesz) in phdrs {
            let mut p = [0u8; 56];
            p[0..4].copy_from_slice(&ty.to_le_bytes());
            p[8..16].copy_from_slice(&offset.to_le_bytes());
            p[24..32].copy_from_slice(&paddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            f.extend_from_slice(&p);
        }
        f
    }

    #[test]
    fn ram_segments_are_the_loads_with_a_physical_address() {
        let f = core_file(&[
            (4, 0x1000, 0, 0x100),                         // PT_NOTE
            (PT_LOAD, 0x7000_0000, u64::MAX, 0x1000_0000), // vmalloc: no paddr
            (PT_LOAD, 0x8010_0000, 0x10_0000, 0x7ff0_0000),
            (PT_LOAD, 0x1_8000_0000, 0x1_0000_0000, 0x4000_0000),
        ]);
        let (phoff, phentsize, phnum) = phdr_table(&f).unwrap();
        assert_eq!((phoff, phentsize, phnum), (64, 56, 4));
        let segs = ram_segments(&f[64..64 + 56 * 4], phentsize);
        assert_eq!(
            segs,
            [
                Segment {
                    paddr: 0x10_0000,
                    len: 0x7ff0_0000,
                    file_offset: 0x8010_0000
                },
                Segment {
                    paddr: 0x1_0000_0000,
                    len: 0x4000_0000,
                    file_offset: 0x1_8000_0000
                },
            ]
        );
        let (s, left) = segment_at(&segs, 0x1_0000_1000).unwrap();
        assert_eq!((s.paddr, left), (0x1_0000_0000, 0x4000_0000 - 0x1000));
        assert_eq!(
            segment_at(&segs, 0x8000_0000),
            None,
            "the hole between segments"
        );
        assert_eq!(
            segment_at(&segs, 0x1_4000_0000),
            None,
            "one past the last byte"
        );
        assert_eq!(segment_at(&segs, 0xfffff), None, "below the first segment");
    }

    #[test]
    fn a_header_that_is_not_elf64_le_is_refused() {
        let mut f = core_file(&[]);
        assert!(phdr_table(&f).is_ok());
        f[4] = 1;
        assert!(phdr_table(&f).unwrap_err().contains("ELF64"));
        f[0] = 0;
        assert!(phdr_table(&f).unwrap_err().contains("not an ELF"));
        assert!(phdr_table(&f[..10]).is_err());
    }
}
