//! `critmem=`: the boot parameter of the design document, which no kernel
//! reads.
//!
//! A module cannot reserve memory at boot, so critmem's pool is carved out
//! by the kernel itself: `reserve_mem=SIZE:ALIGN:critmem` (the kernel's own
//! named boot carve-out), or `memmap=SIZE$BASE` with the module parameters
//! `critmem.base=`/`critmem.size=`. A hand-written `critmem=...` on a boot
//! line is passed on to init and reserves nothing, while its author believes
//! a pool is set up. This module finds such words on every boot line
//! critmem-boot reads, and says what to write instead, translated through
//! the same rules as `critmem-boot plan`:
//! - `critmem=SIZE` becomes `reserve_mem=SIZE:ALIGN:critmem` with plan's
//!   default alignment;
//! - `critmem=SIZE:ALIGN` becomes `reserve_mem=SIZE:ALIGN:critmem`;
//! - `critmem=SIZE@BASE` (or `SIZE$BASE`, memmap's spelling) becomes
//!   `memmap=SIZE$BASE critmem.base=BASE critmem.size=SIZE`;
//! - anything plan would refuse is reported with plan's reason.

use std::fmt;

use crate::files::KERNEL_CMDLINE;
use crate::host::{self, HostError, Root};
use crate::params::PoolSpec;
use crate::plan::{self, shell_quote};
use crate::validate::{self, Mode, PoolRequest};

/// How every unread word starts.
pub const PREFIX: &str = "critmem=";

/// The booted command line.
pub const BOOTED: &str = "/proc/cmdline";

/// What a `critmem=` word stands for in parameters a kernel reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Translation {
    /// The pool `critmem-boot plan <plan_args>` would make.
    Pool {
        /// The pool.
        spec: PoolSpec,
        /// The plan arguments that ask for it.
        plan_args: String,
    },
    /// The value names no pool plan would make.
    NotAPool {
        /// The plan arguments the value reads as.
        plan_args: String,
        /// What plan says about them.
        reason: String,
    },
}

/// A `critmem=` word found on a boot line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file the boot line is in, inside the root.
    pub source: String,
    /// The word as written there.
    pub token: String,
    /// What to write instead.
    pub translation: Translation,
}

impl Finding {
    fn new(source: &str, token: String) -> Finding {
        let translation = translate(&token);
        Finding {
            source: source.to_string(),
            token,
            translation,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the boot line in {} has `{}`, which no kernel reads",
            self.source, self.token
        )?;
        match &self.translation {
            Translation::Pool { spec, plan_args } => {
                let params = spec.params();
                match spec {
                    PoolSpec::Reserve { .. } => write!(
                        f,
                        ": critmem's pool is carved out by `{}`; write that instead",
                        params.join(" ")
                    )?,
                    PoolSpec::Memmap { .. } => write!(
                        f,
                        ": critmem's pool is carved out by `{}`, and the module finds it by `{}`; write those instead",
                        params[0],
                        params[1..].join(" ")
                    )?,
                }
                write!(
                    f,
                    " (`critmem-boot plan {plan_args} --format cmdline` prints the parameters)"
                )
            }
            Translation::NotAPool { plan_args, reason } => write!(
                f,
                " and names no pool critmem-boot would make (`critmem-boot plan {plan_args}`: {reason}): \
                 critmem's pool is carved out by `reserve_mem=SIZE:ALIGN:critmem`, or by `memmap=SIZE$BASE` \
                 with `critmem.base=BASE critmem.size=SIZE`; `critmem-boot plan --size SIZE --format cmdline` \
                 prints the parameters to write instead"
            ),
        }
    }
}

/// Translates one `critmem=` word (see the module docs). Backslashes are
/// dropped first: GRUB files and BLS entries escape a `$` as `\$`.
pub fn translate(token: &str) -> Translation {
    let value = token
        .strip_prefix(PREFIX)
        .unwrap_or(token)
        .replace('\\', "");
    let request = match value.split_once(['@', '$']) {
        Some((size, base)) => PoolRequest {
            size: size.to_string(),
            align: None,
            mode: Mode::Memmap,
            base: Some(base.to_string()),
            force: false,
        },
        None => {
            let (size, align) = match value.split_once(':') {
                Some((size, align)) => (size, Some(align.to_string())),
                None => (value.as_str(), None),
            };
            PoolRequest {
                size: size.to_string(),
                align,
                mode: Mode::Reserve,
                base: None,
                force: false,
            }
        }
    };
    let plan_args = plan_args(&request);
    match validate::validate_shape(&request) {
        Ok(spec) => Translation::Pool { spec, plan_args },
        Err(e) => Translation::NotAPool {
            plan_args,
            reason: e.to_string(),
        },
    }
}

fn plan_args(request: &PoolRequest) -> String {
    let mut args = format!("--size {}", shell_quote(&request.size));
    if let Some(align) = &request.align {
        args += &format!(" --align {}", shell_quote(align));
    }
    if let Some(base) = &request.base {
        args += &format!(" --mode memmap --base {}", shell_quote(base));
    }
    args
}

/// The `critmem=` words of a kernel command line, as written.
pub fn tokens_in_cmdline(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter(|w| w.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

/// The `critmem=` words of a GRUB default file: only the `GRUB_CMDLINE_LINUX`
/// and `GRUB_CMDLINE_LINUX_DEFAULT` lines are boot lines (a shell variable
/// named `critmem` elsewhere is not), and shell quotes end a word.
pub fn tokens_in_grub_defaults(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#') && l.contains("GRUB_CMDLINE_LINUX"))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '"' || c == '\''))
        .filter(|w| w.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

/// `critmem=` words on the booted command line.
pub fn scan_booted(root: &Root) -> Result<Vec<Finding>, HostError> {
    let line = host::booted_cmdline(root)?.unwrap_or_default();
    Ok(tokens_in_cmdline(&line)
        .into_iter()
        .map(|t| Finding::new(BOOTED, t))
        .collect())
}

/// `critmem=` words on the boot lines of the next boot: GRUB default files,
/// `/etc/kernel/cmdline` and the BLS entries' `options`.
pub fn scan_configured(root: &Root) -> Result<Vec<Finding>, HostError> {
    let mut found = Vec::new();
    for path in plan::grub_default_files(root) {
        if let Some(text) = root.read(&path)? {
            found.extend(
                tokens_in_grub_defaults(&text)
                    .into_iter()
                    .map(|t| Finding::new(&path, t)),
            );
        }
    }
    if let Some(line) = root.read(KERNEL_CMDLINE)? {
        found.extend(
            tokens_in_cmdline(&line)
                .into_iter()
                .map(|t| Finding::new(KERNEL_CMDLINE, t)),
        );
    }
    for (entry, words) in plan::bls_options(root)? {
        found.extend(
            words
                .into_iter()
                .filter(|w| w.starts_with(PREFIX))
                .map(|t| Finding::new(&entry, t)),
        );
    }
    Ok(found)
}

/// Every `critmem=` word critmem-boot can see: booted, then configured.
pub fn scan(root: &Root) -> Result<Vec<Finding>, HostError> {
    let mut found = scan_booted(root)?;
    found.extend(scan_configured(root)?);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use critmem_abi::units::{GIB, MIB};

    fn pool(token: &str) -> PoolSpec {
        match translate(token) {
            Translation::Pool { spec, .. } => spec,
            other => panic!("{token}: {other:?}"),
        }
    }

    fn not_a_pool(token: &str) -> (String, String) {
        match translate(token) {
            Translation::NotAPool { plan_args, reason } => (plan_args, reason),
            other => panic!("{token}: {other:?}"),
        }
    }

    #[test]
    fn finds_critmem_words_on_a_cmdline() {
        assert_eq!(
            tokens_in_cmdline(
                "BOOT_IMAGE=/vmlinuz ro critmem=1G critmem.base=0x1000 xcritmem=2G critmem=4G@8G quiet"
            ),
            vec!["critmem=1G", "critmem=4G@8G"]
        );
        assert_eq!(
            tokens_in_cmdline("ro reserve_mem=1G:1G:critmem critmem"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn finds_critmem_words_in_grub_cmdline_lines_only() {
        let text = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet critmem=1G\"\n\
                    GRUB_CMDLINE_LINUX='critmem=2G:2M'\n\
                    #GRUB_CMDLINE_LINUX=\"critmem=8G\"\n\
                    critmem=16G\n\
                    GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX critmem=\"\n";
        assert_eq!(
            tokens_in_grub_defaults(text),
            vec!["critmem=1G", "critmem=2G:2M", "critmem="]
        );
    }

    #[test]
    fn size_takes_plans_default_alignment() {
        assert_eq!(
            pool("critmem=1G"),
            PoolSpec::Reserve {
                size: GIB,
                align: GIB
            }
        );
        assert_eq!(
            pool("critmem=512M"),
            PoolSpec::Reserve {
                size: 512 * MIB,
                align: 2 * MIB
            }
        );
    }

    #[test]
    fn size_colon_align_is_reserve_mode() {
        assert_eq!(
            pool("critmem=16G:2M"),
            PoolSpec::Reserve {
                size: 16 * GIB,
                align: 2 * MIB
            }
        );
    }

    #[test]
    fn size_at_base_is_memmap_mode() {
        let want = PoolSpec::Memmap {
            size: GIB,
            base: 4 * GIB,
        };
        assert_eq!(pool("critmem=1G@0x100000000"), want);
        assert_eq!(pool("critmem=1G$4G"), want);
        assert_eq!(pool("critmem=1G\\$4G"), want, "GRUB's escaped $");
    }

    #[test]
    fn values_plan_refuses_give_plans_reason() {
        assert_eq!(
            not_a_pool("critmem=lots"),
            (
                "--size lots".to_string(),
                "invalid --size: malformed size 'lots': expected a number with an optional K, M, G or T suffix (or P, E), such as 16G, 512M or 0x40000000".to_string()
            )
        );
        assert_eq!(
            not_a_pool("critmem="),
            (
                "--size ''".to_string(),
                "invalid --size: empty size: expected a number such as 16G, 512M or 0x40000000"
                    .to_string()
            )
        );
        assert_eq!(
            not_a_pool("critmem=1G:3M").1,
            "invalid --align 3M: the alignment must be a power of two (such as 2M or 1G)"
        );
        assert_eq!(
            not_a_pool("critmem=1G@0x40000800"),
            (
                "--size 1G --mode memmap --base 0x40000800".to_string(),
                "invalid --base 0x40000800: the base must be a multiple of 4 KiB".to_string()
            )
        );
        assert_eq!(
            not_a_pool("critmem=1000").1,
            "invalid --size 1000: the pool size must be a multiple of 4 KiB"
        );
        assert_eq!(
            not_a_pool("critmem=0").1,
            "invalid --size: the pool size must not be zero"
        );
        assert_eq!(not_a_pool("critmem=1G;reboot").0, "--size '1G;reboot'");
    }

    #[test]
    fn reserve_message_names_token_and_replacement() {
        assert_eq!(
            Finding::new(BOOTED, "critmem=1G".into()).to_string(),
            "the boot line in /proc/cmdline has `critmem=1G`, which no kernel reads: critmem's pool is carved out by `reserve_mem=1G:1G:critmem`; write that instead (`critmem-boot plan --size 1G --format cmdline` prints the parameters)"
        );
    }

    #[test]
    fn memmap_message_names_the_module_parameters() {
        assert_eq!(
            Finding::new("/etc/default/grub", "critmem=1G@4G".into()).to_string(),
            "the boot line in /etc/default/grub has `critmem=1G@4G`, which no kernel reads: critmem's pool is carved out by `memmap=1G$0x100000000`, and the module finds it by `critmem.base=0x100000000 critmem.size=0x40000000`; write those instead (`critmem-boot plan --size 1G --mode memmap --base 4G --format cmdline` prints the parameters)"
        );
    }

    #[test]
    fn unparsable_message_says_so_and_points_at_plan() {
        assert_eq!(
            Finding::new(BOOTED, "critmem=2GiB".into()).to_string(),
            "the boot line in /proc/cmdline has `critmem=2GiB`, which no kernel reads and names no pool critmem-boot would make (`critmem-boot plan --size 2GiB`: invalid --size: malformed size '2GiB': write 2G; the suffixes K, M, G, T, P and E already mean KiB, MiB, GiB, TiB, PiB and EiB, as the kernel reads them): critmem's pool is carved out by `reserve_mem=SIZE:ALIGN:critmem`, or by `memmap=SIZE$BASE` with `critmem.base=BASE critmem.size=SIZE`; `critmem-boot plan --size SIZE --format cmdline` prints the parameters to write instead"
        );
    }
}
