//! `status`: what is configured for the next boot, what the running kernel
//! booted with, what the module's live pool is, and what a reboot changes,
//! then every hand-written `critmem=` on those boot lines (see
//! [`crate::critmem_param`]) as a warning. Like the other warnings, they
//! leave the exit status 0: status reports, `check` answers yes or no.

use std::fmt::Write as _;

use critmem_abi::map_file::MapFile;
use critmem_abi::units::human;
use thiserror::Error;

use crate::critmem_param;
use crate::files::{self, GRUB_DROPIN, KERNEL_CMDLINE};
use crate::host::{self, HostError, Root};
use crate::layout::Flavour;
use crate::params::{self, PoolSpec};
use crate::plan::{self, flavour_word, PlanError};
use crate::state::STATE_PATH;
use crate::units::hex;

/// Why the status could not be worked out.
#[derive(Debug, Error)]
pub enum StatusError {
    /// A system file could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The state file could not be read.
    #[error(transparent)]
    State(#[from] PlanError),
}

/// Whether the live pool is what `booted` asked the kernel for.
pub fn pool_matches(booted: &PoolSpec, live: &MapFile) -> Result<(), String> {
    match *booted {
        PoolSpec::Reserve { size, align } => {
            if live.source != "reserve_mem" {
                return Err(format!(
                    "booted in reserve mode, pool source is {}",
                    live.source
                ));
            }
            if live.size != size {
                return Err(format!(
                    "booted with {}, pool is {}",
                    human(size),
                    human(live.size)
                ));
            }
            if live.start % align != 0 {
                return Err(format!(
                    "pool start {} is not {}-aligned",
                    hex(live.start),
                    human(align)
                ));
            }
        }
        PoolSpec::Memmap { size, base } => {
            if live.source != "memmap" {
                return Err(format!(
                    "booted in memmap mode, pool source is {}",
                    live.source
                ));
            }
            if live.start != base || live.size != size {
                return Err(format!(
                    "booted with {} at {}, pool is {} at {}",
                    human(size),
                    hex(base),
                    human(live.size),
                    hex(live.start)
                ));
            }
        }
    }
    Ok(())
}

/// Checks that the configured words are really in the bootloader's files.
fn verify_configured(
    root: &Root,
    flavour: Flavour,
    words: &[String],
) -> Result<Vec<String>, HostError> {
    let mut problems = Vec::new();
    match flavour {
        Flavour::DebianGrub => match root.read(GRUB_DROPIN)? {
            None => problems.push(format!("{GRUB_DROPIN} is missing")),
            Some(t) => {
                let escaped: Vec<String> = words.iter().map(|w| files::grub_escape(w)).collect();
                if !files::is_managed(&t) || !escaped.iter().all(|w| t.contains(w.as_str())) {
                    problems.push(format!("{GRUB_DROPIN} was changed by hand"));
                }
            }
        },
        Flavour::RhelGrubby => {
            let want: Vec<String> = words.iter().map(|w| flavour_word(flavour, w)).collect();
            for (entry, opts) in plan::bls_options(root)? {
                if !want.iter().all(|w| opts.contains(w)) {
                    problems.push(format!("BLS entry {entry} lacks some of the parameters"));
                }
            }
        }
        Flavour::SystemdBoot => {
            let line = root.read(KERNEL_CMDLINE)?.unwrap_or_default();
            let have: Vec<&str> = line.split_whitespace().collect();
            if !words.iter().all(|w| have.contains(&w.as_str())) {
                problems.push(format!("{KERNEL_CMDLINE} lacks some of the parameters"));
            }
        }
    }
    Ok(problems)
}

/// The status report, for people.
pub fn status(root: &Root) -> Result<String, StatusError> {
    let mut s = String::new();
    let state = plan::read_state(root)?;
    let configured = state.as_ref().map(|st| st.params.clone());
    match &state {
        Some(st) => {
            let _ = writeln!(
                s,
                "configured ({}, {}): {}",
                st.flavour,
                STATE_PATH,
                st.params.join(" ")
            );
            for p in verify_configured(root, st.flavour, &st.params)? {
                let _ = writeln!(s, "  warning: {p}; run critmem-boot apply again");
            }
        }
        None => {
            let _ = writeln!(
                s,
                "configured: nothing ({STATE_PATH} absent: critmem-boot apply has not run)"
            );
        }
    }

    let booted_line = host::booted_cmdline(root)?;
    let booted = booted_line.as_deref().map(params::critmem_words);
    match &booted {
        Some(w) if w.is_empty() => {
            let _ = writeln!(s, "booted with (/proc/cmdline): no critmem parameters");
        }
        Some(w) => {
            let _ = writeln!(s, "booted with (/proc/cmdline): {}", w.join(" "));
        }
        None => {
            let _ = writeln!(s, "booted with: unknown (/proc/cmdline unreadable)");
        }
    }

    match host::live_pool(root)? {
        Some(pool) => {
            let _ = writeln!(
                s,
                "live pool (/proc/critmem): source={} start={} end_inclusive={} size={} align={} free={} slices={}",
                pool.source,
                hex(pool.start),
                hex(pool.end_inclusive),
                human(pool.size),
                human(pool.align),
                human(pool.free),
                pool.slice_count
            );
            if let Some(spec) = booted.as_deref().and_then(params::pool_from_words) {
                match pool_matches(&spec, &pool) {
                    Ok(()) => {
                        let _ = writeln!(s, "  matches the boot parameters: yes");
                    }
                    Err(why) => {
                        let _ = writeln!(s, "  matches the boot parameters: NO ({why})");
                    }
                }
            }
        }
        None => {
            let _ = writeln!(
                s,
                "live pool: none (/proc/critmem absent: critmem.ko not loaded)"
            );
        }
    }

    match (configured, booted) {
        (Some(c), Some(b)) if c == b => {
            let _ = writeln!(
                s,
                "a reboot changes nothing: the configured parameters are the booted ones"
            );
        }
        (Some(c), Some(b)) => {
            let from = if b.is_empty() {
                "(none)".to_string()
            } else {
                b.join(" ")
            };
            let _ = writeln!(s, "a reboot changes the pool: {from} -> {}", c.join(" "));
        }
        (Some(c), None) => {
            let _ = writeln!(s, "after a reboot: {}", c.join(" "));
        }
        (None, Some(b)) if !b.is_empty() => {
            let _ = writeln!(
                s,
                "a reboot keeps whatever the bootloader passes now: critmem-boot did not configure {}",
                b.join(" ")
            );
        }
        (None, _) => {
            let _ = writeln!(
                s,
                "a reboot brings no critmem pool unless configured: run critmem-boot apply"
            );
        }
    }
    for finding in critmem_param::scan(root)? {
        let _ = writeln!(s, "warning: {finding}");
    }
    Ok(s)
}
