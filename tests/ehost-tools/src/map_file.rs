//! `cmtool map-file KEY` and `cmtool map-file --slice-of PID FIELD`: one
//! value of `/proc/critmem`, read through the one parser
//! ([`critmem_abi::map_file`]), for the scenarios' shell helpers
//! `critmem_key` and `slice_of` (`tests/ehost/testlib.sh`).
//!
//! Prints the value as the kernel writes it (addresses in `0x` hex, counts
//! in decimal). With `--slice-of`, prints nothing when PID owns no slice.
//! Fails, saying why, when the file is missing or malformed or has no such
//! key.

use std::path::Path;

use critmem_abi::{map_file, MAP_FILE_PATH};

use crate::describe;

/// `map-file`.
#[derive(Debug, clap::Args)]
pub struct MapFileArgs {
    /// A pool key (`free`, `start`, `slices`, ...) or, with --slice-of, a
    /// slice field (`id`, `start`, `end_inclusive`, `size`, `state`, ...).
    key: String,
    /// Read the slice allocated by this process instead of the pool.
    #[arg(long, value_name = "PID")]
    slice_of: Option<u64>,
}

/// `map-file`.
pub fn run(args: &MapFileArgs) -> Result<(), String> {
    let map = map_file::read(Path::new(MAP_FILE_PATH)).map_err(describe)?;
    let value = match args.slice_of {
        None => map.value(&args.key),
        Some(pid) => match map.slice_of(pid) {
            Some(slice) => slice.value(&args.key),
            None => return Ok(()),
        },
    };
    let value = value.ok_or_else(|| {
        format!(
            "'{}' is not a key of {MAP_FILE_PATH} (see kmod/README.md)",
            args.key
        )
    })?;
    println!("{value}");
    Ok(())
}
