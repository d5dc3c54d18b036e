//! `cmtool alloc-many --count N --size S [--align A] [--hold]`: N open
//! files of `/dev/critmem`, each given a slice by its own ALLOC, all held
//! open together (`tests/scenarios/kmod/granule.sh`). Prints the sum and
//! the range of the `phys_size`s the kernel answered.

use std::collections::BTreeSet;
use std::io::{self, Write};

use crate::args::num;
use crate::critmem_dev::open_device;
use crate::describe;

/// `alloc-many`.
#[derive(Debug, clap::Args)]
pub struct AllocManyArgs {
    /// How many files (and slices).
    #[arg(long, value_parser = num)]
    count: u64,
    /// Each ALLOC's size.
    #[arg(long, value_parser = num)]
    size: u64,
    /// Each ALLOC's alignment.
    #[arg(long, value_parser = num, default_value = "0")]
    align: u64,
    /// Print `ready=1` and sleep until killed, keeping every file open.
    #[arg(long)]
    hold: bool,
}

/// `alloc-many`.
pub fn run(args: &AllocManyArgs) -> Result<(), String> {
    let mut files = Vec::new();
    let mut sizes = BTreeSet::new();
    let mut total = 0u64;
    for i in 0..args.count {
        let device = open_device(false)?;
        let req = device
            .alloc(args.size, args.align)
            .map_err(|e| format!("ALLOC {} of {}: {}", i + 1, args.count, describe(e)))?;
        if args.align > 0 && req.phys_start % args.align != 0 {
            return Err(format!(
                "ALLOC {}: phys_start {:#x} is not {:#x}-aligned",
                i + 1,
                req.phys_start,
                args.align
            ));
        }
        total += req.phys_size;
        sizes.insert(req.phys_size);
        files.push(device);
    }
    println!("files={}", files.len());
    println!("total_phys_size={total}");
    println!("min_phys_size={}", sizes.first().copied().unwrap_or(0));
    println!("max_phys_size={}", sizes.last().copied().unwrap_or(0));
    if args.hold {
        println!("ready=1");
        let _ = io::stdout().flush();
        loop {
            // SAFETY: `pause` has no preconditions.
            unsafe { libc::pause() };
        }
    }
    Ok(())
}
