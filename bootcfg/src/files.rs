//! The host files critmem-boot installs, shipped as templates in
//! `bootcfg/files/` and compiled into the binary.
//!
//! Every file starts with [`MARKER`], so a file of ours is recognised (and
//! one that is not ours is never overwritten).

use crate::params::PoolSpec;

/// First line of every file critmem-boot writes itself.
pub const MARKER: &str = "# critmem-boot: managed file";

/// Where the GRUB drop-in goes.
pub const GRUB_DROPIN: &str = "/etc/default/grub.d/99-critmem.cfg";
/// Where the modprobe options go.
pub const MODPROBE_CONF: &str = "/etc/modprobe.d/critmem.conf";
/// Where the load-at-boot list goes.
pub const MODULES_LOAD_CONF: &str = "/etc/modules-load.d/critmem.conf";
/// Where the udev rule goes.
pub const UDEV_RULE: &str = "/etc/udev/rules.d/60-critmem.rules";
/// The kernel-install command line (systemd-boot, and RHEL when present).
pub const KERNEL_CMDLINE: &str = "/etc/kernel/cmdline";

const MODPROBE_TEMPLATE: &str = include_str!("../files/modprobe.d/critmem.conf");
const MODULES_LOAD_TEMPLATE: &str = include_str!("../files/modules-load.d/critmem.conf");
const UDEV_TEMPLATE: &str = include_str!("../files/udev/rules.d/60-critmem.rules");
const GRUB_TEMPLATE: &str = include_str!("../files/grub.d/99-critmem.cfg");

/// Whether a file's content was written by critmem-boot.
pub fn is_managed(content: &str) -> bool {
    content.starts_with(MARKER)
}

/// The host files every flavour installs: `(path, content)`.
pub fn host_files(spec: &PoolSpec) -> Vec<(&'static str, String)> {
    let options = spec.modprobe_options().unwrap_or_else(|| {
        "# reserve_mem mode: the module finds its pool by the label \"critmem\"; no options."
            .to_string()
    });
    vec![
        (
            MODPROBE_CONF,
            MODPROBE_TEMPLATE.replace("@OPTIONS@", &options),
        ),
        (MODULES_LOAD_CONF, MODULES_LOAD_TEMPLATE.to_string()),
        (UDEV_RULE, UDEV_TEMPLATE.to_string()),
    ]
}

/// Escapes one kernel command-line word for a double-quoted value in
/// `/etc/default/grub` (or a drop-in).
///
/// The value passes two parsers: the shell that sources the file, then
/// GRUB reading the `linux` line grub-mkconfig writes into grub.cfg
/// verbatim. GRUB treats `$` (variables), `\`, `"` and `'` specially, so
/// they reach grub.cfg backslash-escaped; the shell then needs each of those
/// backslashes and the character doubled up again. `$` becomes `\\\$`.
pub fn grub_escape(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        match c {
            // grub.cfg needs `\$`; in shell double quotes `\\` gives `\` and
            // `\$` gives `$`.
            '$' => out.push_str("\\\\\\$"),
            '\\' => out.push_str("\\\\\\\\"),
            '"' => out.push_str("\\\\\\\""),
            '`' => out.push_str("\\`"),
            '\'' => out.push_str("\\\\'"),
            c => out.push(c),
        }
    }
    out
}

/// The GRUB drop-in for a pool.
pub fn grub_dropin(spec: &PoolSpec) -> String {
    let words: Vec<String> = spec.params().iter().map(|w| grub_escape(w)).collect();
    GRUB_TEMPLATE
        .replace("@DESCRIPTION@", &spec.describe())
        .replace("@PARAMS@", &words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The drop-in, sourced by a real shell as grub-mkconfig does, yields
    /// `\$` in GRUB_CMDLINE_LINUX: what GRUB needs for a literal `$`.
    #[test]
    fn dropin_survives_the_shell() {
        let spec = PoolSpec::Memmap {
            size: 256 << 20,
            base: 0x4000_0000,
        };
        let dir = std::env::temp_dir().join(format!("critmem-boot-esc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("99-critmem.cfg");
        std::fs::write(&f, grub_dropin(&spec)).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg("GRUB_CMDLINE_LINUX='ro quiet'; . \"$1\"; printf %s \"$GRUB_CMDLINE_LINUX\"")
            .arg("sh")
            .arg(&f)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "ro quiet memmap=256M\\$0x40000000 critmem.base=0x40000000 critmem.size=0x10000000"
        );
    }

    #[test]
    fn dollar_is_triple_escaped() {
        assert_eq!(grub_escape("memmap=1G$0x1"), "memmap=1G\\\\\\$0x1");
    }
}
