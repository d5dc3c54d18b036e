//! Many slices at once (see `tests/scenarios/kmod/concurrent-alloc.sh` and
//! `kmod/fragmentation.sh`).
//!
//! - `concurrent-alloc --threads T --rounds R --sizes LIST [--aligns LIST]`:
//!   each round, T threads released together each open `/dev/critmem` and
//!   ALLOC (thread `i` of round `r` takes entry `(i + r) % len` of each
//!   list), map the slice and write a word naming the thread at its first
//!   and last byte. With every thread holding its slice, the main thread
//!   checks the replies (the size is the request rounded up to 2 MiB, the
//!   start is aligned, no two overlap) and `/proc/critmem` (exactly these
//!   slices, with these ids, starts and sizes, none overlapping, and
//!   `free` = `size` minus their sum); then each thread reads its two words
//!   back (another slice over it would have changed them) and closes.
//!   Prints `rounds=`, `allocs=`, `bytes_max_round=`.
//! - `hold-many --count N --sizes LIST --align A [--release-odd] [--refill M]`:
//!   N files, each ALLOCing the next size of LIST at alignment A; checks each
//!   reply as above; with `--release-odd` closes every other one, with
//!   `--refill M` then ALLOCs M more 2 MiB slices. Prints `held=`,
//!   `highest_end_offset=` (the highest slice end, from the pool start),
//!   `ready=1`, and keeps the files until killed.

use std::sync::{Barrier, Mutex};

use critmem_abi::client::{Device, MapOptions};
use critmem_abi::AllocRequest;

use crate::critmem_dev::open_device;
use crate::describe;
use crate::procs::{self, granules, GRANULE};

/// `concurrent-alloc`.
#[derive(Debug, clap::Args)]
pub struct ConcurrentArgs {
    /// Threads per round.
    #[arg(long, default_value = "16")]
    threads: usize,
    /// Rounds.
    #[arg(long, default_value = "20")]
    rounds: usize,
    /// Comma-separated slice sizes; those not a 2 MiB multiple check the
    /// rounding up.
    #[arg(long, value_parser = sizes, default_value = "4K,2M,2052K,6M,16M")]
    sizes: Sizes,
    /// Comma-separated alignments (0: the default).
    #[arg(long, value_parser = sizes, default_value = "0,0,4M")]
    aligns: Sizes,
}

/// `hold-many`.
#[derive(Debug, clap::Args)]
pub struct HoldManyArgs {
    /// Files, one slice each.
    #[arg(long)]
    count: usize,
    /// Comma-separated slice sizes, taken in turn.
    #[arg(long, value_parser = sizes)]
    sizes: Sizes,
    /// Alignment of every ALLOC.
    #[arg(long, value_parser = crate::args::num, default_value = "0")]
    align: u64,
    /// Close every other file (the odd ones) after all ALLOCs.
    #[arg(long)]
    release_odd: bool,
    /// Then ALLOC this many more 2 MiB slices.
    #[arg(long, default_value = "0")]
    refill: usize,
}

/// A list of sizes from the command line.
#[derive(Debug, Clone)]
pub struct Sizes(Vec<u64>);

fn sizes(s: &str) -> Result<Sizes, String> {
    let v = s
        .split(',')
        .map(crate::args::num)
        .collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        return Err("an empty list".into());
    }
    Ok(Sizes(v))
}

/// Checks one ALLOC reply against its request: whole granules, aligned.
fn check_reply(size: u64, align: u64, r: &AllocRequest) -> Result<(), String> {
    if r.phys_size != granules(size) {
        return Err(format!(
            "ALLOC of {size:#x} answered phys_size {:#x}, expected {:#x} (whole 2 MiB granules)",
            r.phys_size,
            granules(size)
        ));
    }
    let want_align = align.max(GRANULE);
    if !r.phys_start.is_multiple_of(want_align) {
        return Err(format!(
            "ALLOC of {size:#x} at alignment {align:#x} answered phys_start {:#x}, not \
             {want_align:#x}-aligned",
            r.phys_start
        ));
    }
    Ok(())
}

/// Fails when two of the `(start, size, what)` ranges overlap.
fn check_disjoint(mut ranges: Vec<(u64, u64, String)>) -> Result<(), String> {
    ranges.sort();
    for w in ranges.windows(2) {
        let ((s0, n0, a), (s1, _, b)) = (&w[0], &w[1]);
        if s0 + n0 > *s1 {
            return Err(format!("{a} [{s0:#x}+{n0:#x}) overlaps {b} at {s1:#x}"));
        }
    }
    Ok(())
}

/// One thread's slice in a round.
struct Held {
    thread: usize,
    req: AllocRequest,
}

/// `concurrent-alloc`.
pub fn concurrent(args: &ConcurrentArgs) -> Result<(), String> {
    let pool = procs::map_file()?.size;
    let mut allocs = 0u64;
    let mut bytes_max_round = 0u64;
    for round in 0..args.rounds {
        let start = Barrier::new(args.threads);
        let held = Barrier::new(args.threads + 1);
        let checked = Barrier::new(args.threads + 1);
        let replies: Mutex<Vec<Held>> = Mutex::new(Vec::new());
        let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let main_error = std::thread::scope(|s| {
            for thread in 0..args.threads {
                let (start, held, checked) = (&start, &held, &checked);
                let (replies, errors) = (&replies, &errors);
                let size = args.sizes.0[(thread + round) % args.sizes.0.len()];
                let align = args.aligns.0[(thread + round) % args.aligns.0.len()];
                s.spawn(move || {
                    start.wait();
                    let mine = take(thread, round, size, align);
                    match &mine {
                        Ok((_, req, _)) => replies.lock().unwrap().push(Held { thread, req: *req }),
                        Err(e) => errors.lock().unwrap().push(e.clone()),
                    }
                    held.wait();
                    checked.wait();
                    if let Ok((_device, req, map)) = mine {
                        let marker = marker(thread, round);
                        // SAFETY: `map` is this thread's live mapping of
                        // `phys_size` bytes.
                        let (first, last) = unsafe {
                            (
                                procs::peek(map.addr(), 0),
                                procs::peek(map.addr(), req.phys_size - 8),
                            )
                        };
                        if first != marker || last != !marker {
                            errors.lock().unwrap().push(format!(
                                "thread {thread} round {round}: its slice at {:#x} holds \
                                 {first:#x}/{last:#x}, not its own markers: another slice \
                                 overlaps it",
                                req.phys_start
                            ));
                        }
                    }
                });
            }
            held.wait();
            let r = check_round(pool, &replies.lock().unwrap());
            checked.wait();
            r
        });
        let errors = errors.into_inner().unwrap();
        if let Some(e) = errors.first() {
            return Err(format!("round {round}: {e} ({} errors)", errors.len()));
        }
        let bytes = main_error.map_err(|e| format!("round {round}: {e}"))?;
        allocs += args.threads as u64;
        bytes_max_round = bytes_max_round.max(bytes);
    }
    let map = procs::map_file()?;
    if map.slice_count != 0 || map.free != map.size {
        return Err(format!(
            "after every thread closed: slices={} free={} size={}",
            map.slice_count, map.free, map.size
        ));
    }
    println!("rounds={}", args.rounds);
    println!("allocs={allocs}");
    println!("bytes_max_round={bytes_max_round}");
    Ok(())
}

/// The marker of a thread's slice: its first word holds it, its last word
/// the complement.
fn marker(thread: usize, round: usize) -> u64 {
    0xc0c0_0000_0000_0000 | ((round as u64) << 16) | thread as u64
}

/// One thread's ALLOC, mapping and markers.
fn take(
    thread: usize,
    round: usize,
    size: u64,
    align: u64,
) -> Result<(Device, AllocRequest, critmem_abi::client::Mapping), String> {
    let device = open_device(false)?;
    let req = device.alloc(size, align).map_err(describe)?;
    check_reply(size, align, &req).map_err(|e| format!("thread {thread}: {e}"))?;
    let map = device
        .map(&MapOptions::slice(req.phys_size))
        .map_err(describe)?;
    let marker = marker(thread, round);
    // SAFETY: both words lie inside the live writable mapping of
    // `phys_size` bytes.
    unsafe {
        procs::poke(map.addr(), 0, marker);
        procs::poke(map.addr(), req.phys_size - 8, !marker);
    }
    Ok((device, req, map))
}

/// Checks a round's replies against each other and `/proc/critmem`;
/// returns the bytes they hold.
fn check_round(pool: u64, held: &[Held]) -> Result<u64, String> {
    check_disjoint(
        held.iter()
            .map(|h| {
                (
                    h.req.phys_start,
                    h.req.phys_size,
                    format!("thread {}'s slice {}", h.thread, h.req.slice_id),
                )
            })
            .collect(),
    )?;
    let map = procs::map_file()?;
    if map.slice_count as usize != held.len() {
        return Err(format!(
            "/proc/critmem lists {} slices, {} threads hold one",
            map.slice_count,
            held.len()
        ));
    }
    for h in held {
        let listed = map
            .slices
            .iter()
            .find(|s| s.id == h.req.slice_id)
            .ok_or_else(|| format!("slice {} is not in /proc/critmem", h.req.slice_id))?;
        if listed.start != h.req.phys_start || listed.size != h.req.phys_size {
            return Err(format!(
                "slice {}: /proc/critmem says {:#x}+{:#x}, ALLOC said {:#x}+{:#x}",
                h.req.slice_id, listed.start, listed.size, h.req.phys_start, h.req.phys_size
            ));
        }
    }
    check_disjoint(
        map.slices
            .iter()
            .map(|s| (s.start, s.size, format!("listed slice {}", s.id)))
            .collect(),
    )?;
    let bytes: u64 = held.iter().map(|h| h.req.phys_size).sum();
    if map.free != pool - bytes {
        return Err(format!(
            "free={} with {bytes} bytes held of {pool}: expected {}",
            map.free,
            pool - bytes
        ));
    }
    Ok(bytes)
}

/// `hold-many`.
pub fn hold_many(args: &HoldManyArgs) -> Result<(), String> {
    let pool_start = procs::map_file()?.start;
    let take = |i: usize, size: u64| -> Result<(Device, AllocRequest), String> {
        let device = open_device(false)?;
        let req = device.alloc(size, args.align).map_err(describe)?;
        check_reply(size, args.align, &req).map_err(|e| format!("file {i}: {e}"))?;
        Ok((device, req))
    };
    let mut files: Vec<Option<(Device, AllocRequest)>> = Vec::new();
    for i in 0..args.count {
        files.push(Some(take(i, args.sizes.0[i % args.sizes.0.len()])?));
    }
    if args.release_odd {
        for f in files.iter_mut().skip(1).step_by(2) {
            *f = None;
        }
    }
    for i in 0..args.refill {
        files.push(Some(take(args.count + i, GRANULE)?));
    }
    let live: Vec<&AllocRequest> = files.iter().flatten().map(|(_, r)| r).collect();
    check_disjoint(
        live.iter()
            .map(|r| (r.phys_start, r.phys_size, format!("slice {}", r.slice_id)))
            .collect(),
    )?;
    let highest = live
        .iter()
        .map(|r| r.phys_start + r.phys_size - pool_start)
        .max()
        .unwrap_or(0);
    println!("held={}", live.len());
    println!(
        "held_bytes={}",
        live.iter().map(|r| r.phys_size).sum::<u64>()
    );
    println!("highest_end_offset={highest}");
    println!("ready=1");
    procs::flush();
    loop {
        // SAFETY: `pause` has no preconditions.
        unsafe { libc::pause() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_found_and_neighbours_pass() {
        let r = |s, n| (s, n, format!("{s:#x}"));
        assert!(check_disjoint(vec![r(0, 4), r(4, 4), r(8, 1)]).is_ok());
        let e = check_disjoint(vec![r(8, 4), r(0, 9)]).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
    }

    #[test]
    fn replies_must_be_whole_aligned_granules() {
        let reply = |phys_start, phys_size| AllocRequest {
            phys_start,
            phys_size,
            ..Default::default()
        };
        assert!(check_reply(4096, 0, &reply(GRANULE, GRANULE)).is_ok());
        assert!(check_reply(4096, 0, &reply(GRANULE, 4096)).is_err());
        assert!(check_reply(GRANULE, 4 * GRANULE, &reply(2 * GRANULE, GRANULE)).is_err());
    }
}
