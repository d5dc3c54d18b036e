//! Works out every change `apply` or `remove` makes, without making any:
//! file contents before and after, directories, and bootloader commands.
//! `plan` prints this; `apply`/`remove` hand it to [`crate::exec`].

use std::fmt::Write as _;
use std::path::PathBuf;

use thiserror::Error;

use crate::critmem_param::{self, Finding};
use crate::diff;
use crate::files::{self, GRUB_DROPIN, KERNEL_CMDLINE};
use crate::host::{self, HostError, Root};
use crate::layout::{self, Flavour, Layout, LayoutError};
use crate::params::{self, PoolSpec};
use crate::state::{State, StateError, STATE_PATH};

/// Why no plan could be made.
#[derive(Debug, Error)]
pub enum PlanError {
    /// The bootloader setup is unknown.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A system file could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The state file is corrupt.
    #[error(transparent)]
    State(#[from] StateError),
    /// A file critmem-boot would write exists and is someone else's.
    #[error("refusing to overwrite {path}: it exists and was not written by critmem-boot (move it away first)")]
    NotOurs {
        /// The file, inside the root.
        path: String,
    },
    /// The system was configured for another flavour.
    #[error("critmem-boot last configured {was} but this system now looks like {now}; run `critmem-boot remove` first")]
    FlavourChanged {
        /// The flavour in the state file.
        was: Flavour,
        /// The flavour detected now.
        now: Flavour,
    },
    /// /etc/kernel/cmdline must be created but /proc/cmdline is unreadable.
    #[error("cannot create {KERNEL_CMDLINE}: it would replace the running command line, and {0} is unreadable")]
    NoProcCmdline(String),
    /// A boot line of the next boot has a hand-written `critmem=`.
    #[error("{}", critmem_param_refusal(.0))]
    CritmemParam(Vec<Finding>),
    /// `remove` with nothing applied.
    #[error("nothing to remove: {STATE_PATH} does not exist (critmem-boot apply has not run on this system)")]
    NotApplied,
}

fn critmem_param_refusal(found: &[Finding]) -> String {
    let mut s = "refusing to plan or apply while a boot line of the next boot has `critmem=`:\n"
        .to_string();
    for f in found {
        let _ = writeln!(s, "  {f}");
    }
    s + "remove each `critmem=` word from the file named (critmem-boot leaves files it did not write to you), then run critmem-boot again"
}

/// Options shared by plan, apply and remove.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Use this flavour instead of detecting one.
    pub bootloader: Option<Flavour>,
    /// Never run update-grub, grub-mkconfig, kernel-install or grubby.
    pub no_update: bool,
}

/// One file's change. `None` means absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// Absolute path inside the root.
    pub path: String,
    /// Content now.
    pub old: Option<String>,
    /// Content after.
    pub new: Option<String>,
}

impl FileChange {
    /// Whether the file changes at all.
    pub fn changes(&self) -> bool {
        self.old != self.new
    }
}

/// A command to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// The executable on this machine.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl Cmd {
    /// The command as a shell line, for people.
    pub fn display(&self) -> String {
        let mut s = shell_quote(&self.program.display().to_string());
        for a in &self.args {
            s.push(' ');
            s.push_str(&shell_quote(a));
        }
        s
    }
}

/// Quotes a word for a shell line shown to people.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Everything apply or remove will do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The bootloader setup.
    pub layout: Layout,
    /// The pool configured (None for remove).
    pub spec: Option<PoolSpec>,
    /// The kernel parameters configured (empty for remove).
    pub params: Vec<String>,
    /// Every file considered; unchanged ones included.
    pub files: Vec<FileChange>,
    /// Directories to create, parents first.
    pub mkdirs: Vec<String>,
    /// Directories to remove when empty, children first.
    pub rmdirs: Vec<String>,
    /// Commands to run, in order, after the files are written.
    pub commands: Vec<Cmd>,
    /// Things the user should know.
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether executing the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.mkdirs.is_empty()
            && self.rmdirs.is_empty()
            && self.commands.is_empty()
            && !self.files.iter().any(FileChange::changes)
    }

    /// The diffs of every changing file.
    pub fn diffs(&self) -> String {
        self.files
            .iter()
            .map(|f| diff::unified(&f.path, f.old.as_deref(), f.new.as_deref()))
            .collect()
    }

    /// The whole plan, for people.
    pub fn render(&self, verb: &str) -> String {
        let mut s = String::new();
        if let Some(spec) = &self.spec {
            let _ = writeln!(s, "critmem pool: {}", spec.describe());
            let _ = writeln!(s, "kernel parameters: {}", self.params.join(" "));
        }
        let _ = writeln!(
            s,
            "bootloader: {} ({})",
            self.layout.flavour, self.layout.evidence
        );
        if self.is_noop() {
            let _ = writeln!(s, "nothing to change: the system is already as asked");
        } else {
            let _ = writeln!(s);
            s += &self.diffs();
            for d in &self.mkdirs {
                let _ = writeln!(s, "{verb} create directory {d}");
            }
            for d in &self.rmdirs {
                let _ = writeln!(s, "{verb} remove directory {d} (if empty)");
            }
            for c in &self.commands {
                let _ = writeln!(s, "{verb} run: {}", c.display());
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

/// A kernel word as the flavour's config file must spell it. GRUB's BLS
/// support (blscfg) expands `$` in an entry's `options`, so RHEL-family
/// entries and the /etc/kernel/cmdline they are made from need `\$`.
/// systemd-boot passes options verbatim.
pub fn flavour_word(flavour: Flavour, word: &str) -> String {
    match flavour {
        Flavour::RhelGrubby => word.replace('$', "\\$"),
        _ => word.to_string(),
    }
}

fn flavour_words(flavour: Flavour, words: &[String]) -> Vec<String> {
    words.iter().map(|w| flavour_word(flavour, w)).collect()
}

/// Reads the state file, if any.
pub fn read_state(root: &Root) -> Result<Option<State>, PlanError> {
    Ok(match root.read(STATE_PATH)? {
        Some(t) => Some(State::parse(&t)?),
        None => None,
    })
}

/// The `options` words of every BLS entry, per entry file.
pub fn bls_options(root: &Root) -> Result<Vec<(String, Vec<String>)>, HostError> {
    const DIR: &str = "/boot/loader/entries";
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(root.path(DIR)) else {
        return Ok(out);
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    for n in names {
        let path = format!("{DIR}/{n}");
        let text = root.read(&path)?.unwrap_or_default();
        let words = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("options"))
            .flat_map(|rest| rest.split_whitespace().map(str::to_string))
            .collect();
        out.push((path, words));
    }
    Ok(out)
}

/// Parent directories of `path` (inside the root) that do not exist yet,
/// parents first.
fn missing_dirs(root: &Root, path: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut p = std::path::Path::new(path).parent();
    while let Some(d) = p {
        let s = d.to_string_lossy().into_owned();
        if s == "/" || s.is_empty() || root.is_dir(&s) {
            break;
        }
        dirs.push(s);
        p = d.parent();
    }
    dirs.reverse();
    dirs
}

fn grub_update_cmd(root: &Root) -> Option<Cmd> {
    if let Some(u) = root.find_tool("update-grub") {
        return Some(Cmd {
            program: root.path(&u),
            args: vec![],
            env: vec![],
        });
    }
    for (tool, out) in [
        ("grub-mkconfig", "/boot/grub/grub.cfg"),
        ("grub2-mkconfig", "/boot/grub2/grub.cfg"),
    ] {
        if let Some(t) = root.find_tool(tool) {
            return Some(Cmd {
                program: root.path(&t),
                args: vec!["-o".into(), out.into()],
                env: vec![],
            });
        }
    }
    None
}

fn grubby_cmd(root: &Root, layout: &Layout, arg: String) -> Cmd {
    let grubby = layout
        .grubby
        .clone()
        .unwrap_or_else(|| "/usr/sbin/grubby".into());
    let env = if root.is_host() {
        vec![]
    } else {
        vec![(
            "CRITMEM_BOOT_ROOT".to_string(),
            root.dir().display().to_string(),
        )]
    };
    Cmd {
        program: root.path(&grubby),
        args: vec!["--update-kernel=ALL".into(), arg],
        env,
    }
}

fn kernel_install_cmd(root: &Root, notes: &mut Vec<String>) -> Result<Option<Cmd>, HostError> {
    let Some(ki) = root.find_tool("kernel-install") else {
        notes.push("kernel-install not found: boot entries pick up /etc/kernel/cmdline when the next kernel is installed".into());
        return Ok(None);
    };
    let Some(rel) = host::os_release(root)? else {
        notes.push(
            "running kernel unknown: run kernel-install add for it to refresh its boot entry"
                .into(),
        );
        return Ok(None);
    };
    let image = [
        format!("/usr/lib/modules/{rel}/vmlinuz"),
        format!("/lib/modules/{rel}/vmlinuz"),
        format!("/boot/vmlinuz-{rel}"),
    ]
    .into_iter()
    .find(|p| root.exists(p));
    let Some(image) = image else {
        notes.push(format!("no kernel image found for {rel}: run kernel-install add {rel} <image> to refresh its boot entry"));
        return Ok(None);
    };
    Ok(Some(Cmd {
        program: root.path(&ki),
        args: vec!["add".into(), rel, image],
        env: vec![],
    }))
}

/// Why a bootloader command is skipped, or None to run it.
fn skip_reason(root: &Root, opts: &PlanOptions) -> Option<&'static str> {
    if opts.no_update {
        Some("--no-update was given")
    } else if !root.is_host() {
        Some("--root is not /")
    } else {
        None
    }
}

/// Builds the plan for `apply` with the pool `spec`.
pub fn plan_apply(root: &Root, spec: &PoolSpec, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let old_state = read_state(root)?;
    // A re-apply keeps the flavour apply chose before, unless told otherwise.
    let forced = opts.bootloader.or(old_state.as_ref().map(|s| s.flavour));
    let mut layout = layout::detect(root, forced)?;
    if opts.bootloader.is_none() && forced.is_some() {
        layout.evidence = format!("recorded in {STATE_PATH}");
    }
    let flavour = layout.flavour;
    if let Some(old) = &old_state {
        if old.flavour != flavour {
            return Err(PlanError::FlavourChanged {
                was: old.flavour,
                now: flavour,
            });
        }
    }
    // A hand-written `critmem=` says its author wanted a pool, maybe not the
    // one asked for now, and sits in a file critmem-boot did not write (a
    // shell script, in GRUB's case). Editing it away would change someone
    // else's file on a guess and leave `remove` unable to undo exactly what
    // apply did; keeping it would leave them believing it does something.
    // So plan and apply refuse, before anything is written, and say what to
    // write instead.
    let found = critmem_param::scan_configured(root)?;
    if !found.is_empty() {
        return Err(PlanError::CritmemParam(found));
    }
    let old_params = old_state
        .as_ref()
        .map(|s| s.params.clone())
        .unwrap_or_default();
    let old_created = old_state
        .as_ref()
        .map(|s| s.created.clone())
        .unwrap_or_default();
    let params = spec.params();
    let mut state = State::new(flavour);
    state.params = params.clone();
    let mut notes = Vec::new();
    let mut files = Vec::new();
    let mut commands = Vec::new();

    // Whole files of ours.
    let mut ours: Vec<(&str, String)> = Vec::new();
    if flavour == Flavour::DebianGrub {
        ours.push((GRUB_DROPIN, files::grub_dropin(spec)));
    }
    ours.extend(files::host_files(spec));
    for (path, content) in ours {
        let old = root.read(path)?;
        if let Some(o) = &old {
            if !files::is_managed(o) && !old_created.iter().any(|c| c == path) {
                return Err(PlanError::NotOurs { path: path.into() });
            }
        }
        state.created.push(path.to_string());
        files.push(FileChange {
            path: path.into(),
            old,
            new: Some(content),
        });
    }

    // /etc/kernel/cmdline: edited in place, or created (systemd-boot only).
    let words = flavour_words(flavour, &params);
    let old_words = flavour_words(flavour, &old_params);
    if let Some(old) = root.read(KERNEL_CMDLINE)? {
        if flavour != Flavour::DebianGrub {
            let new = params::edit_cmdline(&old, &old_words, &words) + "\n";
            if old_created.iter().any(|c| c == KERNEL_CMDLINE) {
                state.created.push(KERNEL_CMDLINE.into());
            } else {
                state.edited.push(KERNEL_CMDLINE.into());
            }
            files.push(FileChange {
                path: KERNEL_CMDLINE.into(),
                old: Some(old),
                new: Some(new),
            });
        }
    } else if flavour == Flavour::SystemdBoot {
        // Without the file kernel-install uses /proc/cmdline; keep that.
        let proc = host::booted_cmdline(root)?.ok_or_else(|| {
            PlanError::NoProcCmdline(root.path("/proc/cmdline").display().to_string())
        })?;
        // The new file is critmem-boot's own, so a `critmem=` of the booted
        // line is left out of it rather than carried into every next boot.
        let unread = critmem_param::tokens_in_cmdline(&proc);
        let base: String = proc
            .split_whitespace()
            .filter(|w| !w.starts_with("BOOT_IMAGE=") && !w.starts_with("initrd="))
            .filter(|w| !unread.iter().any(|u| u == w))
            .collect::<Vec<_>>()
            .join(" ");
        state.created.push(KERNEL_CMDLINE.into());
        files.push(FileChange {
            path: KERNEL_CMDLINE.into(),
            old: None,
            new: Some(params::edit_cmdline(&base, &old_words, &words) + "\n"),
        });
        notes.push(format!(
            "{KERNEL_CMDLINE} did not exist; it is created from /proc/cmdline (without BOOT_IMAGE= and initrd=)"
        ));
        for token in unread {
            notes.push(format!(
                "{KERNEL_CMDLINE} leaves out `{token}` of /proc/cmdline: no kernel reads it, and the kernel parameters above carve out the pool"
            ));
        }
    }

    // Directories to create; keep the ones created by earlier applies.
    let mut mkdirs: Vec<String> = Vec::new();
    for f in files.iter().map(|f| f.path.as_str()).chain([STATE_PATH]) {
        for d in missing_dirs(root, f) {
            if !mkdirs.contains(&d) {
                mkdirs.push(d);
            }
        }
    }
    state.dirs = old_state
        .as_ref()
        .map(|s| s.dirs.clone())
        .unwrap_or_default();
    state.dirs.extend(mkdirs.iter().cloned());

    // Bootloader commands.
    let skip = skip_reason(root, opts);
    match flavour {
        Flavour::DebianGrub => {
            let dropin_changes = files[0].changes();
            let cfg = ["/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"]
                .iter()
                .find_map(|p| root.read(p).ok().flatten());
            let escaped: Vec<String> = params.iter().map(|w| w.replace('$', "\\$")).collect();
            let cfg_stale = cfg.is_some_and(|c| !escaped.iter().all(|w| c.contains(w.as_str())));
            if dropin_changes || cfg_stale {
                match (skip, grub_update_cmd(root)) {
                    (Some(why), _) => notes.push(format!(
                        "not running update-grub/grub-mkconfig because {why}; run it on the target system to regenerate grub.cfg"
                    )),
                    (None, Some(cmd)) => commands.push(cmd),
                    (None, None) => notes.push(
                        "neither update-grub nor grub-mkconfig found: regenerate grub.cfg yourself".into(),
                    ),
                }
            }
        }
        Flavour::RhelGrubby => {
            state.grubby = true;
            let entries = bls_options(root)?;
            let stale: Vec<String> = old_words
                .iter()
                .filter(|w| !words.contains(w))
                .cloned()
                .collect();
            let in_sync = !entries.is_empty()
                && entries.iter().all(|(_, opts)| {
                    words.iter().all(|w| opts.contains(w))
                        && !stale.iter().any(|w| opts.contains(w))
                });
            if !in_sync {
                if opts.no_update {
                    notes.push(
                        "grubby not run because --no-update was given: BLS entries unchanged"
                            .into(),
                    );
                } else {
                    if !stale.is_empty() {
                        commands.push(grubby_cmd(
                            root,
                            &layout,
                            format!("--remove-args={}", stale.join(" ")),
                        ));
                    }
                    commands.push(grubby_cmd(
                        root,
                        &layout,
                        format!("--args={}", words.join(" ")),
                    ));
                    if !root.is_host() {
                        notes.push("--root is not /: running the grubby inside the root, with CRITMEM_BOOT_ROOT set (for test trees; for a real image run critmem-boot inside a chroot)".into());
                    }
                }
            }
        }
        Flavour::SystemdBoot => {
            if files
                .iter()
                .any(|f| f.path == KERNEL_CMDLINE && f.changes())
            {
                match skip {
                    Some(why) => notes.push(format!(
                        "not running kernel-install because {why}; boot entries pick up {KERNEL_CMDLINE} at the next kernel-install"
                    )),
                    None => commands.extend(kernel_install_cmd(root, &mut notes)?),
                }
            }
        }
    }

    files.push(FileChange {
        path: STATE_PATH.into(),
        old: root.read(STATE_PATH)?,
        new: Some(state.render()),
    });
    if flavour == Flavour::DebianGrub {
        warn_hand_made(root, &mut notes)?;
    }
    Ok(Plan {
        layout,
        spec: Some(*spec),
        params,
        files,
        mkdirs,
        rmdirs: vec![],
        commands,
        notes,
    })
}

/// The GRUB default files grub-mkconfig sources, other than critmem-boot's
/// own drop-in: `/etc/default/grub`, then `/etc/default/grub.d/*.cfg` in
/// the order grub-mkconfig reads them.
pub fn grub_default_files(root: &Root) -> Vec<String> {
    let mut paths = vec!["/etc/default/grub".to_string()];
    if let Ok(rd) = std::fs::read_dir(root.path("/etc/default/grub.d")) {
        let mut more: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| format!("/etc/default/grub.d/{}", e.file_name().to_string_lossy()))
            .filter(|p| p.ends_with(".cfg") && p != GRUB_DROPIN)
            .collect();
        more.sort();
        paths.extend(more);
    }
    paths
}

/// Notes critmem words put into /etc/default/grub or other drop-ins by hand:
/// they would be passed twice.
fn warn_hand_made(root: &Root, notes: &mut Vec<String>) -> Result<(), HostError> {
    for p in grub_default_files(root) {
        if let Some(text) = root.read(&p)? {
            if text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| l.contains(":critmem") || l.contains("critmem."))
            {
                notes.push(format!(
                    "{p} also sets critmem parameters by hand; remove them there, or the kernel gets both"
                ));
            }
        }
    }
    Ok(())
}

/// Builds the plan for `remove`: undo what the state file lists.
pub fn plan_remove(root: &Root, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let state = read_state(root)?.ok_or(PlanError::NotApplied)?;
    let flavour = state.flavour;
    let layout = Layout {
        flavour,
        grubby: if flavour == Flavour::RhelGrubby {
            root.find_tool("grubby")
        } else {
            None
        },
        evidence: format!("recorded in {STATE_PATH}"),
    };
    let words = flavour_words(flavour, &state.params);
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let mut commands = Vec::new();
    for path in &state.created {
        if let Some(old) = root.read(path)? {
            files.push(FileChange {
                path: path.clone(),
                old: Some(old),
                new: None,
            });
        }
    }
    for path in &state.edited {
        if let Some(old) = root.read(path)? {
            let new = params::edit_cmdline(&old, &words, &[]) + "\n";
            files.push(FileChange {
                path: path.clone(),
                old: Some(old),
                new: Some(new),
            });
        }
    }
    files.push(FileChange {
        path: STATE_PATH.into(),
        old: root.read(STATE_PATH)?,
        new: None,
    });
    let deleted: Vec<&str> = files
        .iter()
        .filter(|f| f.new.is_none())
        .map(|f| f.path.as_str())
        .collect();
    let mut rmdirs = Vec::new();
    for d in state.dirs.iter().rev() {
        let Ok(rd) = std::fs::read_dir(root.path(d)) else {
            continue;
        };
        let left = rd
            .filter_map(|e| e.ok())
            .map(|e| format!("{d}/{}", e.file_name().to_string_lossy()))
            .filter(|p| !deleted.contains(&p.as_str()) && !rmdirs.contains(p))
            .count();
        if left == 0 {
            rmdirs.push(d.clone());
        } else {
            notes.push(format!(
                "keeping {d}: it holds files critmem-boot did not write"
            ));
        }
    }
    let skip = skip_reason(root, opts);
    match flavour {
        Flavour::DebianGrub => match (skip, grub_update_cmd(root)) {
            (Some(why), _) => notes.push(format!(
                "not running update-grub/grub-mkconfig because {why}; run it on the target system to regenerate grub.cfg"
            )),
            (None, Some(cmd)) => commands.push(cmd),
            (None, None) => {
                notes.push("neither update-grub nor grub-mkconfig found: regenerate grub.cfg yourself".into())
            }
        },
        Flavour::RhelGrubby if state.grubby && !words.is_empty() => {
            if opts.no_update {
                notes.push("grubby not run because --no-update was given: BLS entries keep the parameters".into());
            } else {
                commands.push(grubby_cmd(root, &layout, format!("--remove-args={}", words.join(" "))));
            }
        }
        Flavour::RhelGrubby => {}
        Flavour::SystemdBoot => match skip {
            Some(why) => notes.push(format!(
                "not running kernel-install because {why}; boot entries pick up {KERNEL_CMDLINE} at the next kernel-install"
            )),
            None => commands.extend(kernel_install_cmd(root, &mut notes)?),
        },
    }
    Ok(Plan {
        layout,
        spec: None,
        params: vec![],
        files,
        mkdirs: vec![],
        rmdirs,
        commands,
        notes,
    })
}
