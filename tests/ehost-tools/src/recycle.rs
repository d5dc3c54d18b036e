//! `cmtool recycle --go FILE`: a 1 GiB slice outlives its file through a
//! mapping moved twice by mremap, is freed with that mapping, and recycled
//! to a new owner; the old owner can reach nothing of it (see
//! `tests/scenarios/kmod/mremap-recycle.sh`). Needs a pool of at least
//! 2 GiB whose start is 1 GiB aligned.
//!
//! 1. A 2 MiB slice (`other`) is ALLOCed and mapped first, and filled with
//!    its own data; it stays for the whole run, as something the old owner
//!    keeps reaching.
//! 2. A 1 GiB, 1 GiB-aligned slice is ALLOCed and mapped at a 1 GiB-aligned
//!    address (one 1 GiB page), and one word per 4 KiB page is written.
//! 3. The mapping moves (whole, `MREMAP_MAYMOVE | MREMAP_FIXED`) to 2 MiB
//!    past a 1 GiB boundary, then to a 1 GiB boundary; the data is read back
//!    after each move (`moves=2 data_intact=1`).
//! 4. The file is closed: the moved mapping alone keeps the slice, which
//!    `/proc/critmem` still lists as mapped (`kept_by_mapping=1`).
//! 5. The mapping is unmapped: the slice is gone and `free` grew by 1 GiB
//!    (`released=1`). A new file is opened with no slice; the command prints
//!    `old_phys=` and `ready=1` and waits for FILE, which the scenario makes
//!    once a new owner holds the same range with its own data.
//! 6. Then: every address the old mapping ever had is unmapped
//!    (a `write` from there into a pipe fails with `EFAULT`, and
//!    `/proc/self/maps` has no critmem mapping there); the
//!    `other` slice still holds its own data; an mmap of the new file at a
//!    non-zero offset fails with `EINVAL` (a file with no slice maps only by
//!    allocating at offset 0), and its INFO shows no slice
//!    (`old_owner_sees_nothing=1`).

use std::io;

use critmem_abi::client::{reserve_address_space, MapOptions};

use crate::critmem_dev::{errno_name, map_at, open_device};
use crate::describe;
use crate::procs::{self, GRANULE};

const SZ_1G: u64 = 1 << 30;
const SEED: u64 = 0x0bd0_0000_0000_0000;
const OTHER_SEED: u64 = 0x07e5_0000_0000_0000;

/// `recycle`.
#[derive(Debug, clap::Args)]
pub struct RecycleArgs {
    /// The file whose creation says a new owner holds the recycled range.
    #[arg(long)]
    go: String,
}

/// Moves the whole mapping `[va, va + len)` to `to_offset` past a fresh
/// 1 GiB boundary; returns the new address.
fn move_to(va: u64, len: u64, to_offset: u64) -> Result<u64, String> {
    let dst = reserve_address_space(len + 2 * SZ_1G)
        .map_err(describe)?
        .next_multiple_of(SZ_1G)
        + to_offset;
    // SAFETY: `[va, va + len)` is this process's own mapping of the slice,
    // which no Rust reference covers; `dst` lies inside a PROT_NONE
    // reservation of our own, which MREMAP_FIXED replaces.
    let r = unsafe {
        libc::mremap(
            va as *mut _,
            len as usize,
            len as usize,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            dst as *mut libc::c_void,
        )
    };
    if r == libc::MAP_FAILED {
        return Err(format!(
            "mremap move of {len:#x} from {va:#x} to {dst:#x}: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(r as u64)
}

/// `recycle`.
pub fn run(args: &RecycleArgs) -> Result<(), String> {
    let other = open_device(false)?;
    let other_req = other.alloc(GRANULE, 0).map_err(describe)?;
    let other_map = other.map(&MapOptions::slice(GRANULE)).map_err(describe)?;
    // SAFETY: `other_map` is a live writable mapping of 2 MiB.
    unsafe { procs::fill_samples(other_map.addr(), GRANULE, OTHER_SEED) };
    println!("other_phys={:#x}", other_req.phys_start);

    let device = open_device(false)?;
    let req = device.alloc(SZ_1G, SZ_1G).map_err(describe)?;
    let (first_va, _) = map_at(&device, SZ_1G, SZ_1G, 0)?.into_raw();
    let first_va = first_va as u64;
    println!("old_phys={:#x}", req.phys_start);
    println!("va={first_va:#x}");
    // SAFETY: the raw mapping of 1 GiB at `first_va` is live and writable.
    unsafe { procs::fill_samples(first_va, SZ_1G, SEED) };

    let mut vas = vec![first_va];
    for to_offset in [GRANULE, 0] {
        let va = move_to(*vas.last().unwrap(), SZ_1G, to_offset)?;
        // SAFETY: the moved mapping of 1 GiB at `va` is live.
        unsafe { procs::check_samples(va, SZ_1G, SEED) }
            .map_err(|e| format!("after the move to {va:#x}: {e}"))?;
        println!("moved_to={va:#x}");
        vas.push(va);
    }
    println!("moves=2 data_intact=1");
    let va = *vas.last().unwrap();

    drop(device);
    let listed = procs::map_file()?
        .slices
        .into_iter()
        .find(|s| s.id == req.slice_id);
    match listed {
        Some(s) if s.state == critmem_abi::map_keys::SLICE_STATE_MAPPED => {
            println!("kept_by_mapping=1")
        }
        other => {
            return Err(format!(
                "with its file closed and its moved mapping live, slice {} is {other:?} in \
                 /proc/critmem, not mapped",
                req.slice_id
            ))
        }
    }
    // SAFETY: still readable: the mapping holds the slice.
    unsafe { procs::check_samples(va, SZ_1G, SEED) }
        .map_err(|e| format!("after closing the file: {e}"))?;

    let free_before = procs::map_file()?.free;
    // SAFETY: `[va, va + 1 GiB)` is our own mapping, which no reference
    // covers; nothing reads it afterwards.
    if unsafe { libc::munmap(va as *mut _, SZ_1G as usize) } != 0 {
        return Err(format!("munmap {va:#x}: {}", io::Error::last_os_error()));
    }
    let map = procs::map_file()?;
    if map.slices.iter().any(|s| s.id == req.slice_id) || map.free != free_before + SZ_1G {
        return Err(format!(
            "after the last mapping was unmapped: free {} (was {free_before}), slices {:?}",
            map.free,
            map.slices.iter().map(|s| s.id).collect::<Vec<_>>()
        ));
    }
    println!("released=1");
    let empty = open_device(false)?;
    println!("ready=1");
    procs::flush();
    procs::wait_for_file(&args.go);

    for &old in &vas {
        for off in [0, SZ_1G / 2, SZ_1G - 8] {
            if procs::readable(old + off)? {
                return Err(format!(
                    "the old owner can still read {:#x}, inside its former mapping at {old:#x}",
                    old + off
                ));
            }
        }
        let left: Vec<String> = procs::maps_overlapping(old, SZ_1G)?
            .into_iter()
            .filter(|l| l.contains("critmem"))
            .collect();
        if !left.is_empty() {
            return Err(format!("/proc/self/maps still has {left:?}"));
        }
    }
    // SAFETY: `other_map` is live and readable.
    unsafe { procs::check_samples(other_map.addr(), GRANULE, OTHER_SEED) }
        .map_err(|e| format!("the other slice changed: {e}"))?;
    // SAFETY: a fresh shared mapping at an address of the kernel's choice
    // aliases nothing; if it succeeded it is unmapped below, unread.
    let r = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            GRANULE as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&empty)),
            GRANULE as libc::off_t,
        )
    };
    if r != libc::MAP_FAILED {
        // SAFETY: the mapping just made, referenced by nothing.
        unsafe { libc::munmap(r, GRANULE as usize) };
        return Err("an mmap at offset 2 MiB of a file with no slice succeeded".into());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(format!(
            "mmap at offset 2 MiB of a file with no slice: {}, expected EINVAL",
            errno_name(&e)
        ));
    }
    let info = empty.info().map_err(describe)?;
    if info.slice_id != 0 || info.slice_size != 0 {
        return Err(format!(
            "INFO of a file with no slice shows slice {} of {} bytes",
            info.slice_id, info.slice_size
        ));
    }
    println!("old_owner_sees_nothing=1");
    Ok(())
}
