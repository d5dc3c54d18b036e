//! Turns what the user typed into a [`PoolSpec`], refusing anything unsafe
//! before a single file is touched.
//!
//! # The safe minimum
//! The host keeps at least **max(2 GiB, 10 % of RAM)** for itself; a pool
//! that would leave less is refused unless `--force`. A pool larger than RAM
//! is always refused.
//!
//! "RAM" here is `MemTotal` from `<root>/proc/meminfo` plus the critmem pool
//! the running kernel already holds back: that memory is missing from
//! `MemTotal` (memblock-reserved with `reserve_mem=`, E820-reserved with
//! `memmap=`), and would otherwise be counted twice against a re-apply. Its
//! size is read from `/proc/critmem`, or from the critmem words of
//! `/proc/cmdline` when the module is not loaded.
//!
//! # Other rules
//! - Sizes are byte counts with optional K/M/G/T suffixes, non-zero and a
//!   multiple of 4 KiB (the module hands out pages).
//! - `--align` (reserve mode only) is a power of two of at least 4 KiB; by
//!   default 1 GiB for pools of 1 GiB or more, else 2 MiB, so the pool can be
//!   mapped with the largest pages.
//! - `--base` (memmap mode only, and required there) is 4 KiB aligned, and
//!   the whole range lies inside one System RAM range of the firmware map
//!   (`/sys/firmware/memmap`) or, without it, of `/proc/iomem`.

use critmem_abi::units::{self, human, SizeError, GIB, KIB, MIB};
use thiserror::Error;

use crate::host::{self, HostError, Root};
use crate::params::{self, PoolSpec};
use crate::units::hex;

/// Smallest amount of RAM the host always keeps, whatever its size.
pub const HOST_MIN_BYTES: u64 = 2 * GIB;
/// Share of RAM (in percent) the host always keeps, when larger.
pub const HOST_MIN_PERCENT: u64 = 10;
/// Smallest page, and so the granule of sizes, bases and alignments.
pub const PAGE: u64 = 4 * KIB;

/// The memory the host keeps for itself out of `ram` bytes.
pub fn host_minimum(ram: u64) -> u64 {
    HOST_MIN_BYTES.max(ram / 100 * HOST_MIN_PERCENT)
}

/// Which pool source the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `reserve_mem=` (default).
    Reserve,
    /// `memmap=` at a fixed base.
    Memmap,
}

/// The pool as typed by the user, not yet checked.
#[derive(Clone, Debug)]
pub struct PoolRequest {
    /// `--size`.
    pub size: String,
    /// `--align`.
    pub align: Option<String>,
    /// `--mode`.
    pub mode: Mode,
    /// `--base`.
    pub base: Option<String>,
    /// `--force`: allow leaving the host less than the safe minimum.
    pub force: bool,
}

/// Why a pool request was refused.
#[derive(Debug, Error)]
pub enum ValidateError {
    /// `--size` is not a byte count.
    #[error("invalid --size: {0}")]
    Size(#[source] SizeError),
    /// `--align` is not a byte count.
    #[error("invalid --align: {0}")]
    Align(#[source] SizeError),
    /// `--base` is not an address.
    #[error("invalid --base: {0}")]
    Base(#[source] SizeError),
    /// The size is zero.
    #[error("invalid --size: the pool size must not be zero")]
    ZeroSize,
    /// The size is not a whole number of pages.
    #[error("invalid --size {size}: the pool size must be a multiple of 4 KiB")]
    SizeNotPages {
        /// The size as given.
        size: String,
    },
    /// The alignment is not a power of two.
    #[error("invalid --align {align}: the alignment must be a power of two (such as 2M or 1G)")]
    AlignNotPowerOfTwo {
        /// The alignment as given.
        align: String,
    },
    /// The alignment is below one page.
    #[error("invalid --align {align}: the alignment must be at least 4K")]
    AlignTooSmall {
        /// The alignment as given.
        align: String,
    },
    /// `--align` was given in memmap mode, where the base fixes placement.
    #[error("--align applies to reserve mode only; in memmap mode --base fixes the placement")]
    AlignWithMemmap,
    /// memmap mode without `--base`.
    #[error("memmap mode needs --base ADDR: the physical address of the pool's first byte")]
    BaseRequired,
    /// `--base` given without memmap mode.
    #[error("--base applies to memmap mode only; add --mode memmap")]
    BaseWithoutMemmap,
    /// The base is not page aligned.
    #[error("invalid --base {base}: the base must be a multiple of 4 KiB")]
    BaseNotAligned {
        /// The base as given.
        base: String,
    },
    /// The memmap range is not inside RAM.
    #[error("invalid --base: the range {start}-{end} is not inside System RAM according to {source_file} (RAM ranges: {ranges})")]
    BaseOutsideRam {
        /// First byte, hex.
        start: String,
        /// Last byte, hex.
        end: String,
        /// Where the RAM map was read.
        source_file: String,
        /// The RAM ranges, for the message.
        ranges: String,
    },
    /// No RAM map to check a memmap base against.
    #[error(
        "cannot check --base: neither {0}/sys/firmware/memmap nor {0}/proc/iomem lists System RAM"
    )]
    NoRamMap(String),
    /// The pool is larger than the machine's RAM.
    #[error("invalid --size: {size} is larger than this machine's RAM ({ram})")]
    LargerThanRam {
        /// The size, for people.
        size: String,
        /// RAM, for people.
        ram: String,
    },
    /// The pool leaves the host less than the safe minimum.
    #[error("--size {size} leaves the host {left} of its {ram} RAM, less than the safe minimum of {minimum} (max(2 GiB, 10% of RAM)); pass --force to do it anyway")]
    BelowSafeMinimum {
        /// The size, for people.
        size: String,
        /// What the host would keep, for people.
        left: String,
        /// RAM, for people.
        ram: String,
        /// The minimum, for people.
        minimum: String,
    },
    /// A system file could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The machine's RAM as this module counts it (see the module docs), in
/// bytes, with the pool the running kernel holds back.
pub fn machine_ram(root: &Root) -> Result<u64, HostError> {
    let total = host::mem_total(root)?;
    let held = match host::live_pool(root)? {
        Some(pool) => pool.size,
        None => host::booted_cmdline(root)?
            .and_then(|c| params::pool_from_words(&params::critmem_words(&c)))
            .map(|p| p.size())
            .unwrap_or(0),
    };
    Ok(total + held)
}

/// The alignment of a reserve-mode pool when `--align` is not given: 1 GiB
/// for pools of 1 GiB or more, else 2 MiB.
pub fn default_align(size: u64) -> u64 {
    if size >= GIB {
        GIB
    } else {
        2 * MIB
    }
}

/// Checks a request against the rules in the module docs and the machine
/// under `root`.
pub fn validate(req: &PoolRequest, root: &Root) -> Result<PoolSpec, ValidateError> {
    let spec = validate_shape(req)?;
    check_against_machine(req, &spec, root)?;
    Ok(spec)
}

/// The rules that need no machine: sizes, alignment and base as numbers,
/// and which flags go with which mode. A request that passes is what
/// `validate` would accept on a machine with enough RAM (at `--base`,
/// in memmap mode).
pub fn validate_shape(req: &PoolRequest) -> Result<PoolSpec, ValidateError> {
    let size = units::parse(&req.size, "size").map_err(ValidateError::Size)?;
    if size == 0 {
        return Err(ValidateError::ZeroSize);
    }
    if size % PAGE != 0 {
        return Err(ValidateError::SizeNotPages {
            size: req.size.clone(),
        });
    }
    let spec = match req.mode {
        Mode::Reserve => {
            if req.base.is_some() {
                return Err(ValidateError::BaseWithoutMemmap);
            }
            let align = match &req.align {
                None => default_align(size),
                Some(text) => {
                    let a = units::parse(text, "alignment").map_err(ValidateError::Align)?;
                    if !a.is_power_of_two() {
                        return Err(ValidateError::AlignNotPowerOfTwo {
                            align: text.clone(),
                        });
                    }
                    if a < PAGE {
                        return Err(ValidateError::AlignTooSmall {
                            align: text.clone(),
                        });
                    }
                    a
                }
            };
            PoolSpec::Reserve { size, align }
        }
        Mode::Memmap => {
            if req.align.is_some() {
                return Err(ValidateError::AlignWithMemmap);
            }
            let text = req.base.as_ref().ok_or(ValidateError::BaseRequired)?;
            let base = units::parse(text, "base address").map_err(ValidateError::Base)?;
            if base % PAGE != 0 {
                return Err(ValidateError::BaseNotAligned { base: text.clone() });
            }
            PoolSpec::Memmap { size, base }
        }
    };
    Ok(spec)
}

fn check_against_machine(
    req: &PoolRequest,
    spec: &PoolSpec,
    root: &Root,
) -> Result<(), ValidateError> {
    let size = spec.size();
    let ram = machine_ram(root)?;
    if size > ram {
        return Err(ValidateError::LargerThanRam {
            size: human(size),
            ram: human(ram),
        });
    }
    if let PoolSpec::Memmap { size, base } = *spec {
        let map =
            host::ram_map(root)?.ok_or_else(|| ValidateError::NoRamMap(root.message_prefix()))?;
        if !map.contains(base, size) {
            return Err(ValidateError::BaseOutsideRam {
                start: hex(base),
                end: base
                    .checked_add(size - 1)
                    .map(hex)
                    .unwrap_or_else(|| "beyond 2^64".into()),
                source_file: map.source.clone(),
                ranges: map
                    .ranges
                    .iter()
                    .map(|(a, b)| format!("{}-{}", hex(*a), hex(*b)))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let minimum = host_minimum(ram);
    if ram - size < minimum && !req.force {
        return Err(ValidateError::BelowSafeMinimum {
            size: human(size),
            left: human(ram - size),
            ram: human(ram),
            minimum: human(minimum),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_is_documented_rule() {
        assert_eq!(host_minimum(8 * GIB), 2 * GIB);
        assert_eq!(host_minimum(100 * GIB), 10 * GIB);
    }
}
