//! `cmtool churn --cycles N --size S`: SIGKILL a slice's holder, half of the
//! cycles while its ALLOC is zeroing, half while the slice is mapped (see
//! `tests/scenarios/kmod/churn-sigkill.sh`).
//!
//! Each cycle forks a holder that opens `/dev/critmem`, ALLOCs `S` bytes,
//! maps them, writes their first word and pauses. Even cycles first make the
//! memory dirty (ALLOC `S`, drop it: a freed slice returns dirty), so the
//! holder's ALLOC must zero what the background worker has not reached yet;
//! with `S` the whole pool, no zeroed place can serve it. The parent reads
//! `/proc/critmem` in a loop and sends SIGKILL when the holder's slice shows
//! the state the cycle aims at: `zeroing` on even cycles, `mapped` on odd
//! ones. If an even cycle first sees its slice past `zeroing` (the worker
//! and the ALLOC zeroed it all before a read), that cycle is killed anyway
//! and counted as `missed_zeroing`.
//!
//! After reaping a holder, its slice must be gone at once (exit closes the
//! file and unmaps before the parent can reap). Prints
//! `killed_zeroing=`, `killed_mapped=`, `missed_zeroing=` and
//! `cycles=`.

use critmem_abi::client::MapOptions;
use critmem_abi::map_keys::{SLICE_STATE_MAPPED, SLICE_STATE_ZEROING};

use crate::args::num;
use crate::critmem_dev::open_device;
use crate::describe;
use crate::procs::{self, Ended};

/// `churn`.
#[derive(Debug, clap::Args)]
pub struct ChurnArgs {
    /// Kill cycles (even ones aim at `zeroing`, odd ones at `mapped`).
    #[arg(long, value_parser = num, default_value = "100")]
    cycles: u64,
    /// Slice size of every holder (the whole pool makes each even cycle's
    /// ALLOC zero).
    #[arg(long, value_parser = num)]
    size: u64,
}

/// The holder: ALLOC, map, write, pause until killed.
fn holder(size: u64) -> Result<(), String> {
    let device = open_device(false)?;
    device.alloc(size, 0).map_err(describe)?;
    let map = device.map(&MapOptions::slice(size)).map_err(describe)?;
    // SAFETY: the first word lies inside the live writable mapping.
    unsafe { procs::poke(map.addr(), 0, 0x5157_4c41_5948_4f4c) };
    loop {
        // SAFETY: `pause` has no preconditions.
        unsafe { libc::pause() };
    }
}

/// Frees `size` bytes of just-written slice, so that they are dirty.
fn dirty(size: u64) -> Result<(), String> {
    let device = open_device(false)?;
    device.alloc(size, 0).map_err(describe)?;
    Ok(())
}

/// `churn`.
pub fn run(args: &ChurnArgs) -> Result<(), String> {
    let (mut killed_zeroing, mut killed_mapped, mut missed_zeroing) = (0u64, 0u64, 0u64);
    for cycle in 0..args.cycles {
        let aim_zeroing = cycle % 2 == 0;
        if aim_zeroing {
            dirty(args.size)?;
        }
        let pid = procs::fork_child(|| holder(args.size))?;
        let seen = loop {
            if let Some(ended) = procs::try_reap(pid)? {
                return Err(format!(
                    "cycle {cycle}: holder {pid} ended by itself ({ended:?}) before it was killed"
                ));
            }
            let map = procs::map_file()?;
            let Some(slice) = map.slice_of(pid as u64) else {
                continue;
            };
            if aim_zeroing || slice.state == SLICE_STATE_MAPPED {
                break slice.state.clone();
            }
        };
        procs::kill(pid, libc::SIGKILL)?;
        match procs::reap(pid)? {
            Ended::Signaled(libc::SIGKILL) => {}
            other => {
                return Err(format!(
                    "cycle {cycle}: holder {pid} ended {other:?}, not by SIGKILL"
                ))
            }
        }
        let map = procs::map_file()?;
        if let Some(s) = map.slice_of(pid as u64) {
            return Err(format!(
                "cycle {cycle}: holder {pid} reaped, but its slice id={} state={} is still listed",
                s.id, s.state
            ));
        }
        match (aim_zeroing, seen.as_str()) {
            (true, SLICE_STATE_ZEROING) => killed_zeroing += 1,
            (true, _) => missed_zeroing += 1,
            (false, _) => killed_mapped += 1,
        }
    }
    println!("cycles={}", args.cycles);
    println!("killed_zeroing={killed_zeroing}");
    println!("killed_mapped={killed_mapped}");
    println!("missed_zeroing={missed_zeroing}");
    Ok(())
}
