//! `check`: does the running kernel have what critmem needs, that is, does
//! it support independent memory configuration (a pool of its own for
//! critical VMs)?
//!
//! Reads the kernel release from `/proc/sys/kernel/osrelease` (on `/`
//! falling back to `uname -r`) and its configuration from
//! `/boot/config-<release>`, else `/proc/config.gz`. Requirements:
//! - `reserve_mem=` needs Linux 6.11 or later (reserve mode; memmap mode
//!   works on older kernels);
//! - `CONFIG_RUST=y` and `CONFIG_MODULES=y` (critmem.ko is a Rust module);
//! - `CONFIG_KVM` with `CONFIG_KVM_AMD` or `CONFIG_KVM_INTEL`;
//! - huge PFN mappings: `CONFIG_TRANSPARENT_HUGEPAGE=y` and
//!   `CONFIG_ARCH_SUPPORTS_PMD_PFNMAP=y` (2 MiB); `..._PUD_PFNMAP=y` (1 GiB)
//!   is recommended, without it 1 GiB slices are mapped with 2 MiB pages;
//! - `CONFIG_DEVMEM` is not required.
//!
//! A hand-written `critmem=` on the booted or configured boot line is a
//! warning: it reserves nothing (see [`crate::critmem_param`]).
//!
//! Whether critmem.ko can load under the kernel's module-signature policy
//! is checked by [`crate::module_sig`]. The exit status is 1 when the kernel
//! does not support critmem, or when critmem.ko certainly cannot load (it is
//! unsigned, or signed by a key the kernel does not have, while signatures
//! are enforced); what cannot be told is a warning.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;

use thiserror::Error;

use crate::critmem_param;
use crate::host::{self, HostError, Root};
use crate::module_sig;

/// Why the check could not run.
#[derive(Debug, Error)]
pub enum CheckError {
    /// A system file could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The kernel release is unknown.
    #[error("cannot tell the running kernel's release: {0}/proc/sys/kernel/osrelease is missing")]
    NoRelease(String),
    /// The release string does not start with a version.
    #[error("cannot read a version from kernel release {0:?}")]
    BadRelease(String),
    /// Neither config file exists.
    #[error("cannot find the kernel configuration: neither {0}/boot/config-{1} nor {0}/proc/config.gz exists (enable CONFIG_IKCONFIG_PROC or install the config file)")]
    NoConfig(String, String),
    /// /proc/config.gz is not gzip.
    #[error("cannot decompress /proc/config.gz: {0}")]
    BadGzip(#[source] std::io::Error),
}

/// How one requirement fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Met.
    Ok,
    /// Not met; critmem cannot work (in any mode, or in the mode named).
    Fail,
    /// Works, but not as well.
    Warn,
    /// For information.
    Info,
}

/// The outcome of `check`.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The kernel release.
    pub release: String,
    /// The config file read.
    pub config_source: String,
    /// Each requirement.
    pub items: Vec<(Verdict, String)>,
    /// Reserve mode works.
    pub reserve_mode: bool,
    /// Memmap mode works.
    pub memmap_mode: bool,
    /// Signatures are enforced and critmem.ko certainly cannot load.
    pub module_refused: bool,
}

impl CheckReport {
    /// Whether critmem can work at all.
    pub fn supported(&self) -> bool {
        self.reserve_mode || self.memmap_mode
    }

    /// Whether `check` passes: the kernel supports critmem and nothing
    /// stops critmem.ko from loading.
    pub fn passed(&self) -> bool {
        self.supported() && !self.module_refused
    }

    /// The report, for people.
    pub fn render(&self) -> String {
        let mut s = format!(
            "kernel {} (configuration: {})\n",
            self.release, self.config_source
        );
        for (v, text) in &self.items {
            let tag = match v {
                Verdict::Ok => "ok  ",
                Verdict::Fail => "FAIL",
                Verdict::Warn => "warn",
                Verdict::Info => "info",
            };
            let _ = writeln!(s, "  [{tag}] {text}");
        }
        let answer = match (self.reserve_mode, self.memmap_mode) {
            (true, true) => "yes (reserve and memmap modes)".to_string(),
            (false, true) => {
                "yes, memmap mode only (reserve_mem= needs Linux 6.11 or later)".to_string()
            }
            (true, false) => "yes, reserve mode only".to_string(),
            (false, false) => {
                let reasons: Vec<&str> = self
                    .items
                    .iter()
                    .filter(|(v, _)| *v == Verdict::Fail)
                    .map(|(_, t)| t.as_str())
                    .collect();
                format!("no ({})", reasons.join("; "))
            }
        };
        let _ = writeln!(
            s,
            "kernel supports independent memory configuration: {answer}"
        );
        if self.module_refused {
            let _ = writeln!(
                s,
                "critmem.ko cannot load under this kernel's module-signature policy (see FAIL above)"
            );
        }
        s
    }
}

/// Parses `major.minor` from a release such as `7.2.12-critmem`.
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Parses a kernel .config into `CONFIG_X -> value` for set options.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// Runs the check against the kernel under `root`.
pub fn check(root: &Root) -> Result<CheckReport, CheckError> {
    let release = match host::os_release(root)? {
        Some(r) => r,
        None if root.is_host() => std::process::Command::new("uname")
            .arg("-r")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| CheckError::NoRelease(String::new()))?,
        None => return Err(CheckError::NoRelease(root.message_prefix())),
    };
    let version = parse_version(&release).ok_or_else(|| CheckError::BadRelease(release.clone()))?;
    let boot_config = format!("/boot/config-{release}");
    let (config_source, text) = if let Some(t) = root.read(&boot_config)? {
        (boot_config, t)
    } else if let Some(gz) = root.read_bytes("/proc/config.gz")? {
        let mut t = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut t)
            .map_err(CheckError::BadGzip)?;
        ("/proc/config.gz".to_string(), t)
    } else {
        return Err(CheckError::NoConfig(root.message_prefix(), release));
    };
    let cfg = parse_config(&text);
    let val = |k: &str| cfg.get(k).map(String::as_str);
    let on = |k: &str| matches!(val(k), Some("y") | Some("m"));
    let builtin = |k: &str| val(k) == Some("y");

    let mut items = Vec::new();
    let mut base_ok = true;
    let mut req = |ok: bool, good: String, bad: String, items: &mut Vec<(Verdict, String)>| {
        if ok {
            items.push((Verdict::Ok, good));
        } else {
            base_ok = false;
            items.push((Verdict::Fail, bad));
        }
    };

    let reserve_ok = version >= (6, 11);
    items.push(if reserve_ok {
        (
            Verdict::Ok,
            format!(
                "Linux {}.{} >= 6.11: reserve_mem= is available (reserve mode)",
                version.0, version.1
            ),
        )
    } else {
        (
            Verdict::Fail,
            format!(
                "Linux {}.{} < 6.11: no reserve_mem= (reserve mode unavailable; memmap mode only)",
                version.0, version.1
            ),
        )
    });
    req(
        builtin("CONFIG_RUST"),
        "CONFIG_RUST=y: Rust modules can load".into(),
        "CONFIG_RUST is not y: critmem.ko is a Rust module".into(),
        &mut items,
    );
    req(
        builtin("CONFIG_MODULES"),
        "CONFIG_MODULES=y".into(),
        "CONFIG_MODULES is not y: no loadable modules".into(),
        &mut items,
    );
    let vendor: Vec<&str> = ["CONFIG_KVM_AMD", "CONFIG_KVM_INTEL"]
        .into_iter()
        .filter(|k| on(k))
        .collect();
    req(
        on("CONFIG_KVM") && !vendor.is_empty(),
        format!(
            "CONFIG_KVM={} with {}",
            val("CONFIG_KVM").unwrap_or("?"),
            vendor.join(", ")
        ),
        "CONFIG_KVM with CONFIG_KVM_AMD or CONFIG_KVM_INTEL is not enabled: no KVM".into(),
        &mut items,
    );
    req(
        builtin("CONFIG_TRANSPARENT_HUGEPAGE"),
        "CONFIG_TRANSPARENT_HUGEPAGE=y".into(),
        "CONFIG_TRANSPARENT_HUGEPAGE is not y: no huge PFN mappings".into(),
        &mut items,
    );
    req(
        builtin("CONFIG_ARCH_SUPPORTS_PMD_PFNMAP"),
        "CONFIG_ARCH_SUPPORTS_PMD_PFNMAP=y: 2 MiB PFN mappings".into(),
        "CONFIG_ARCH_SUPPORTS_PMD_PFNMAP is not y: no huge PFN mappings (needs Linux 6.12+ with THP)".into(),
        &mut items,
    );
    items.push(if builtin("CONFIG_ARCH_SUPPORTS_PUD_PFNMAP") {
        (
            Verdict::Ok,
            "CONFIG_ARCH_SUPPORTS_PUD_PFNMAP=y: 1 GiB PFN mappings".into(),
        )
    } else {
        (
            Verdict::Warn,
            "CONFIG_ARCH_SUPPORTS_PUD_PFNMAP is not y: 1 GiB slices use 2 MiB pages".into(),
        )
    });
    items.push((
        Verdict::Info,
        format!(
            "CONFIG_DEVMEM={}: not required (only tests read /dev/mem)",
            val("CONFIG_DEVMEM").unwrap_or("n")
        ),
    ));
    for finding in critmem_param::scan(root)? {
        items.push((Verdict::Warn, finding.to_string()));
    }
    let signature = module_sig::check(root, &release)?;
    let module_refused = signature.verdict == Verdict::Fail;
    items.push((signature.verdict, signature.message));
    Ok(CheckReport {
        release,
        config_source,
        items,
        reserve_mode: base_ok && reserve_ok,
        memmap_mode: base_ok,
        module_refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("7.2.12-critmem"), Some((7, 2)));
        assert_eq!(parse_version("6.11.0-1-amd64"), Some((6, 11)));
        assert!(parse_version("6.11") >= Some((6, 11)));
        assert!(parse_version("6.1.0-25-amd64") < Some((6, 11)));
        assert_eq!(parse_version("x"), None);
    }
}
