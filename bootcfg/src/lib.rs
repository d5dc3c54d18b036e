//! critmem-boot: sets critmem's boot parameters through the system's
//! bootloader (Debian GRUB drop-ins, RHEL grubby, systemd-boot's
//! /etc/kernel/cmdline), installs the module's host files, and reports
//! whether the kernel, its command line and the live pool agree.
//!
//! The binary is a thin clap front end over [`run`]; everything acts on a
//! [`host::Root`] so tests run against fake system trees.

pub mod check;
pub mod critmem_param;
pub mod diff;
pub mod exec;
pub mod files;
pub mod host;
pub mod layout;
pub mod module_sig;
pub mod params;
pub mod plan;
pub mod state;
pub mod status;
pub mod units;
pub mod validate;

use std::io::{self, Write};
use std::path::PathBuf;

use thiserror::Error;

use crate::plan::PlanOptions;
use crate::validate::PoolRequest;

/// What to do.
#[derive(Clone, Debug)]
pub enum Action {
    /// Print parameters and diffs; change nothing.
    Plan(PoolRequest),
    /// Print only the kernel parameters, on one line (`plan --format
    /// cmdline`); validate the request but detect no bootloader.
    PlanCmdline(PoolRequest),
    /// Make the changes.
    Apply(PoolRequest),
    /// Undo what apply did; with `dry_run`, only print it.
    Remove {
        /// Only print what would be done.
        dry_run: bool,
    },
    /// Configured vs booted vs live.
    Status,
    /// Kernel support.
    Check,
}

/// A complete invocation.
#[derive(Clone, Debug)]
pub struct Config {
    /// The system root (`/` or an image / test tree).
    pub root: PathBuf,
    /// Bootloader options.
    pub options: PlanOptions,
    /// The action.
    pub action: Action,
}

/// Any failure of critmem-boot.
#[derive(Debug, Error)]
pub enum Error {
    /// The root or a system file could not be read.
    #[error(transparent)]
    Host(#[from] host::HostError),
    /// The pool request was refused.
    #[error(transparent)]
    Validate(#[from] validate::ValidateError),
    /// No plan could be made.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// Carrying out the plan failed.
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    /// The status could not be worked out.
    #[error(transparent)]
    Status(#[from] status::StatusError),
    /// The kernel check could not run.
    #[error(transparent)]
    Check(#[from] check::CheckError),
    /// Writing the report failed.
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

/// Runs one invocation, writing the report to `out`. Returns the process
/// exit code: 0, or 1 when `check` finds the kernel unsupported or
/// critmem.ko refused by the kernel's module-signature policy.
pub fn run(config: &Config, out: &mut dyn Write) -> Result<u8, Error> {
    let root = host::Root::new(&config.root)?;
    match &config.action {
        Action::Plan(req) => {
            let spec = validate::validate(req, &root)?;
            let plan = plan::plan_apply(&root, &spec, &config.options)?;
            write!(out, "{}", plan.render("would"))?;
        }
        Action::PlanCmdline(req) => {
            let spec = validate::validate(req, &root)?;
            writeln!(out, "{}", spec.params().join(" "))?;
        }
        Action::Apply(req) => {
            let spec = validate::validate(req, &root)?;
            let plan = plan::plan_apply(&root, &spec, &config.options)?;
            writeln!(out, "critmem pool: {}", spec.describe())?;
            writeln!(out, "kernel parameters: {}", plan.params.join(" "))?;
            writeln!(
                out,
                "bootloader: {} ({})",
                plan.layout.flavour, plan.layout.evidence
            )?;
            if plan.is_noop() {
                writeln!(out, "nothing to change: already applied")?;
            } else {
                let mut log = |line: String| {
                    let _ = writeln!(out, "{line}");
                };
                exec::execute(&root, &plan, &mut log)?;
                writeln!(out, "applied; the pool takes effect at the next boot")?;
            }
            for n in &plan.notes {
                writeln!(out, "note: {n}")?;
            }
        }
        Action::Remove { dry_run } => {
            let plan = plan::plan_remove(&root, &config.options)?;
            if *dry_run {
                write!(out, "{}", plan.render("would"))?;
            } else {
                writeln!(
                    out,
                    "bootloader: {} ({})",
                    plan.layout.flavour, plan.layout.evidence
                )?;
                let mut log = |line: String| {
                    let _ = writeln!(out, "{line}");
                };
                exec::execute(&root, &plan, &mut log)?;
                writeln!(out, "removed; the next boot has no critmem pool")?;
                for n in &plan.notes {
                    writeln!(out, "note: {n}")?;
                }
            }
        }
        Action::Status => write!(out, "{}", status::status(&root)?)?,
        Action::Check => {
            let report = check::check(&root)?;
            write!(out, "{}", report.render())?;
            return Ok(if report.passed() { 0 } else { 1 });
        }
    }
    Ok(0)
}
