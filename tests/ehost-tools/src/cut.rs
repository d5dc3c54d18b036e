//! `cmtool cut`: cuts, moves and resizes part of a huge-mapped slice, the way
//! a careless or hostile member of the kvm group would, and checks that the
//! slice's data survived (see `tests/scenarios/kmod/cut-*.sh`).
//!
//! ```text
//! cut --size N [--align A] [--va-align A] [--va-offset O] --op OP
//!     [--at OFF] [--len L] [--to-va-offset O] [--forge] [--expect ERRNO]
//! ```
//!
//! The slice is allocated and mapped at `--va-offset` past a `--va-align`
//! boundary, and every 4 KiB page gets two words of a pattern that depends on
//! the slice offset, so that every page is faulted in with the largest entry
//! its alignment allows. Then OP runs on the mapping:
//!
//! | OP | call |
//! |---|---|
//! | `munmap` | `munmap(va + at, len)` |
//! | `mprotect` | `mprotect(va + at, len, PROT_READ)` |
//! | `madvise-nohugepage` | `madvise(va + at, len, MADV_NOHUGEPAGE)` |
//! | `madvise-dontneed` | `madvise(va + at, len, MADV_DONTNEED)` |
//! | `mremap-shrink` | `mremap(va, size, at, 0)` |
//! | `mremap-grow` | `mremap(va, size, size + len, MREMAP_MAYMOVE)` |
//! | `mremap-move` | `mremap(va, size, size, MAYMOVE \| FIXED, dst)` |
//! | `mremap-move-part` | `mremap(va + at, len, len, MAYMOVE \| FIXED, dst)` |
//! | `mremap-dontunmap` | `mremap(va, size, size, MAYMOVE \| DONTUNMAP)` |
//!
//! `dst` is `--to-va-offset` past a fresh 1 GiB boundary. With `--forge`, the
//! words that the kernel would read as a page-table entry if it mistook the
//! huge entry around `va + at` for a table (index `(va + at) >> 21 & 511` of
//! the 1 GiB block's first page, `(va + at) >> 12 & 511` of the 2 MiB
//! block's) get forged huge-entry values first; they must survive untouched.
//!
//! OP must succeed, or with `--expect` fail with exactly that errno. Then
//! every page that should still be mapped (at its old or new address) is read
//! back. Prints `op_result=`, `words_checked=`, `minflt_recheck=` (faults
//! taken by the read-back: refaults after a move) and `data_intact=1`.

use crate::args::num;
use crate::critmem_dev::{errno_name, map_at, minflt, open_device};
use crate::describe;
use critmem_abi::client::reserve_address_space;
use std::io;

const PAGE: u64 = 4096;
const SZ_2M: u64 = 2 << 20;
const SZ_1G: u64 = 1 << 30;
const SEED: u64 = 0xc0ffee00_00000000;
/// Present, writable, user, accessed, dirty, PSE: a huge leaf entry.
const FORGED_FLAGS: u64 = 0xe7;

/// Which part of the slice is mapped where after OP.
struct Survivor {
    va: u64,
    slice_offset: u64,
    len: u64,
}

/// The two sampled words of the page at slice offset `off`.
fn sample_words(off: u64) -> [(u64, u64); 2] {
    [(off, SEED ^ off), (off + PAGE - 8, SEED ^ (off + PAGE - 8))]
}

/// Raw syscall result to `io::Result`.
fn check(r: i64) -> io::Result<u64> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u64)
    }
}

/// `cut`.
#[derive(Debug, clap::Args)]
pub struct CutArgs {
    /// Slice size.
    #[arg(long, value_parser = num)]
    size: u64,
    /// Physical alignment of the slice.
    #[arg(long, value_parser = num, default_value = "0")]
    align: u64,
    /// Virtual alignment of the mapping.
    #[arg(long, value_parser = num, default_value = "1G")]
    va_align: u64,
    /// Offset past that alignment.
    #[arg(long, value_parser = num, default_value = "0")]
    va_offset: u64,
    /// The operation (see the module docs).
    #[arg(long)]
    op: String,
    /// Offset of the part operated on.
    #[arg(long, value_parser = num, default_value = "0")]
    at: u64,
    /// Length of the part operated on.
    #[arg(long, value_parser = num, default_value = "4K")]
    len: u64,
    /// Where moves go: this far past a fresh 1 GiB boundary.
    #[arg(long, value_parser = num, default_value = "0")]
    to_va_offset: u64,
    /// Forge huge-entry values where the kernel would read a table.
    #[arg(long)]
    forge: bool,
    /// Pass when OP fails with exactly this errno.
    #[arg(long)]
    expect: Option<String>,
}

pub fn run(args: &CutArgs) -> Result<(), String> {
    let (size, align, va_align, va_off) = (args.size, args.align, args.va_align, args.va_offset);
    let (op, at, len, to_va_off) = (args.op.clone(), args.at, args.len, args.to_va_offset);
    if at % PAGE != 0 || len % PAGE != 0 || at > size || at + len > size {
        return Err(format!(
            "--at {at:#x} --len {len:#x} must be page aligned and inside --size"
        ));
    }

    let device = open_device(false)?;
    let req = device.alloc(size, align).map_err(describe)?;
    let map = map_at(&device, size, va_align, va_off)?;
    let va = map.addr();
    println!("va={va:#x}");
    println!("pa={:#x}", req.phys_start);

    let mut expected: Vec<(u64, u64)> = (0..size / PAGE)
        .flat_map(|i| sample_words(i * PAGE))
        .collect();
    for &(off, value) in &expected {
        // SAFETY: `off` lies inside the live, writable mapping.
        unsafe { ((va + off) as *mut u64).write_volatile(value) };
    }
    if args.forge {
        let cut = va + at;
        // The first page of each huge block around the cut, in slice offsets.
        let forged = [
            ((cut & !(SZ_1G - 1)).saturating_sub(va), (cut >> 21) & 511),
            ((cut & !(SZ_2M - 1)).saturating_sub(va), (cut >> 12) & 511),
        ];
        for (block_off, index) in forged {
            let off = block_off + index * 8;
            let value = (req.phys_start + block_off) | FORGED_FLAGS;
            // SAFETY: `off` lies inside the live, writable mapping.
            unsafe { ((va + off) as *mut u64).write_volatile(value) };
            expected.retain(|&(o, _)| o != off);
            expected.push((off, value));
            println!("forged_offset={off:#x} forged_value={value:#x}");
        }
    }

    let survivors = match do_op(&op, va, size, at, len, to_va_off)? {
        Ok(new_va) => {
            println!("op_result=ok");
            if let Some(want) = args.expect.as_deref() {
                return Err(format!("{op} succeeded, expected {want}"));
            }
            survivors_after(&op, va, size, at, len, new_va)
        }
        Err(e) => {
            let name = errno_name(&e);
            println!("op_result={name}");
            match args.expect.as_deref() {
                Some(want) if want == name => {}
                Some(want) => return Err(format!("{op}: got {name}, expected {want}")),
                None => return Err(format!("{op}: {e}")),
            }
            vec![Survivor {
                va,
                slice_offset: 0,
                len: size,
            }]
        }
    };

    let before = minflt();
    let mut checked = 0u64;
    for s in &survivors {
        for &(off, value) in &expected {
            if off < s.slice_offset || off >= s.slice_offset + s.len {
                continue;
            }
            let addr = s.va + (off - s.slice_offset);
            // SAFETY: `addr` lies inside a part of the slice that is still
            // mapped readable at `s.va`.
            let got = unsafe { (addr as *const u64).read_volatile() };
            if got != value {
                return Err(format!(
                    "slice offset {off:#x} (va {addr:#x}) holds {got:#x}, expected {value:#x}"
                ));
            }
            checked += 1;
        }
    }
    println!("minflt_recheck={}", minflt() - before);
    println!("words_checked={checked}");
    println!("data_intact=1");
    drop(map);
    Ok(())
}

/// One memory-management call on the mapping.
enum Call {
    Munmap {
        addr: u64,
        len: u64,
    },
    Mprotect {
        addr: u64,
        len: u64,
        prot: libc::c_int,
    },
    Madvise {
        addr: u64,
        len: u64,
        advice: libc::c_int,
    },
    Mremap {
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: libc::c_int,
        new_addr: u64,
    },
}

impl Call {
    /// Makes the call; the result is the new address for mremap, 0 otherwise.
    fn make(&self) -> io::Result<u64> {
        // SAFETY: Every call acts on our own mapping of the slice, or moves
        // it over a PROT_NONE reservation of our own
        // (`reserve_address_space`); nothing in this process holds a
        // reference into the parts they remove or protect, and the read-back
        // afterwards only touches what is still mapped readable.
        let r = unsafe {
            match *self {
                Call::Munmap { addr, len } => libc::munmap(addr as *mut _, len as usize) as isize,
                Call::Mprotect { addr, len, prot } => {
                    libc::mprotect(addr as *mut _, len as usize, prot) as isize
                }
                Call::Madvise { addr, len, advice } => {
                    libc::madvise(addr as *mut _, len as usize, advice) as isize
                }
                Call::Mremap {
                    old,
                    old_len,
                    new_len,
                    flags,
                    new_addr,
                } => libc::mremap(
                    old as *mut _,
                    old_len as usize,
                    new_len as usize,
                    flags,
                    new_addr as *mut libc::c_void,
                ) as isize,
            }
        };
        check(r as i64)
    }
}

/// Runs OP; on success returns the mapping's new address for the moves,
/// which go to `to_va_off` past a fresh 1 GiB boundary.
fn do_op(
    op: &str,
    va: u64,
    size: u64,
    at: u64,
    len: u64,
    to_va_off: u64,
) -> Result<io::Result<u64>, String> {
    let part = va + at;
    let call = match op {
        "munmap" => Call::Munmap { addr: part, len },
        "mprotect" => Call::Mprotect {
            addr: part,
            len,
            prot: libc::PROT_READ,
        },
        "madvise-nohugepage" => Call::Madvise {
            addr: part,
            len,
            advice: libc::MADV_NOHUGEPAGE,
        },
        "madvise-dontneed" => Call::Madvise {
            addr: part,
            len,
            advice: libc::MADV_DONTNEED,
        },
        "mremap-dontunmap" => Call::Mremap {
            old: va,
            old_len: size,
            new_len: size,
            flags: libc::MREMAP_MAYMOVE | libc::MREMAP_DONTUNMAP,
            new_addr: 0,
        },
        "mremap-shrink" => Call::Mremap {
            old: va,
            old_len: size,
            new_len: at,
            flags: 0,
            new_addr: 0,
        },
        "mremap-grow" => Call::Mremap {
            old: va,
            old_len: size,
            new_len: size + len,
            flags: libc::MREMAP_MAYMOVE,
            new_addr: 0,
        },
        "mremap-move" | "mremap-move-part" => {
            let (old, n) = if op == "mremap-move" {
                (va, size)
            } else {
                (part, len)
            };
            let dst = reserve_address_space(n + 2 * SZ_1G)
                .map_err(describe)?
                .div_ceil(SZ_1G)
                * SZ_1G
                + to_va_off;
            Call::Mremap {
                old,
                old_len: n,
                new_len: n,
                flags: libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                new_addr: dst,
            }
        }
        _ => return Err(format!("unknown --op '{op}'")),
    };
    Ok(call.make())
}

/// The parts of the slice still mapped after a successful OP.
fn survivors_after(op: &str, va: u64, size: u64, at: u64, len: u64, new_va: u64) -> Vec<Survivor> {
    let part = |va, slice_offset, len| Survivor {
        va,
        slice_offset,
        len,
    };
    match op {
        "munmap" => vec![
            part(va, 0, at),
            part(va + at + len, at + len, size - at - len),
        ],
        "mremap-shrink" => vec![part(va, 0, at)],
        "mremap-move" => vec![part(new_va, 0, size)],
        "mremap-move-part" => vec![
            part(va, 0, at),
            part(new_va, at, len),
            part(va + at + len, at + len, size - at - len),
        ],
        // mprotect to PROT_READ and madvise keep everything readable where
        // it was.
        _ => vec![part(va, 0, size)],
    }
}
