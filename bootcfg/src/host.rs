//! The system being configured, seen through `--root`.
//!
//! Every read of `/proc`, `/sys`, `/etc` and `/boot` goes through [`Root`],
//! so the whole tool runs against a fake tree in tests exactly as it runs
//! against `/` on a real host. This module also parses the kernel's files
//! that the other modules need: `/proc/meminfo`, `/sys/firmware/memmap`,
//! `/proc/iomem`, `/proc/cmdline` and critmem's own `/proc/critmem`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use critmem_abi::map_file::{self, MapFile, MapFileError};
use thiserror::Error;

/// Why the system's files could not be read or understood.
#[derive(Debug, Error)]
pub enum HostError {
    /// `--root` does not name a directory.
    #[error("--root {0}: not a directory")]
    BadRoot(PathBuf),
    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file, as seen on this machine (root prefix included).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file that must exist is missing.
    #[error("{path} is missing: {why}")]
    Missing {
        /// The file, as seen on this machine.
        path: PathBuf,
        /// What it was needed for.
        why: &'static str,
    },
    /// A file's content is not in the format the kernel writes.
    #[error("{path}: cannot parse line {line:?}: {reason}")]
    Parse {
        /// The file, as seen on this machine.
        path: PathBuf,
        /// The offending line.
        line: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// `/proc/critmem` is not what critmem.ko writes.
    #[error("{path}: {source}")]
    MapFile {
        /// The file, as seen on this machine.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: MapFileError,
    },
}

/// The root of the system being configured: `/`, or a system image / test
/// tree given with `--root`.
#[derive(Clone, Debug)]
pub struct Root {
    dir: PathBuf,
    host: bool,
}

/// Directories searched, inside the root, for bootloader tools.
const TOOL_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl Root {
    /// Opens `dir` as the root. It must be an existing directory.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, HostError> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(HostError::BadRoot(dir));
        }
        let host = fs::canonicalize(&dir)
            .map(|p| p == Path::new("/"))
            .unwrap_or(false);
        Ok(Root { dir, host })
    }

    /// True when the root is the running system's `/`: only then are
    /// bootloader tools of the running system run.
    /// The root as a prefix for messages: empty for `/`, else the
    /// directory without a trailing slash.
    pub fn message_prefix(&self) -> String {
        if self.is_host() {
            String::new()
        } else {
            self.dir()
                .display()
                .to_string()
                .trim_end_matches('/')
                .to_string()
        }
    }

    pub fn is_host(&self) -> bool {
        self.host
    }

    /// The root directory as given.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Maps an absolute path inside the root (`/etc/default/grub`) to the
    /// path on this machine.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.dir.join(abs.trim_start_matches('/'))
    }

    /// Whether `abs` exists inside the root.
    pub fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }

    /// Whether `abs` is a directory inside the root.
    pub fn is_dir(&self, abs: &str) -> bool {
        self.path(abs).is_dir()
    }

    /// Reads a text file inside the root; `Ok(None)` when it does not exist.
    pub fn read(&self, abs: &str) -> Result<Option<String>, HostError> {
        let path = self.path(abs);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HostError::Read { path, source }),
        }
    }

    /// Reads raw bytes of a file inside the root; `Ok(None)` when missing.
    pub fn read_bytes(&self, abs: &str) -> Result<Option<Vec<u8>>, HostError> {
        let path = self.path(abs);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HostError::Read { path, source }),
        }
    }

    /// Finds an executable named `name` in the usual bin/sbin directories
    /// inside the root. Returns the absolute path inside the root.
    pub fn find_tool(&self, name: &str) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        TOOL_DIRS.iter().find_map(|d| {
            let abs = format!("{d}/{name}");
            let meta = fs::metadata(self.path(&abs)).ok()?;
            (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(abs)
        })
    }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn mem_total(root: &Root) -> Result<u64, HostError> {
    const P: &str = "/proc/meminfo";
    let text = root.read(P)?.ok_or_else(|| HostError::Missing {
        path: root.path(P),
        why: "needed to check the pool size against the host's RAM",
    })?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("MemTotal:") {
            let kib = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .map_err(|_| HostError::Parse {
                    path: root.path(P),
                    line: line.to_string(),
                    reason: "expected 'MemTotal: <n> kB'",
                })?;
            return Ok(kib * 1024);
        }
    }
    Err(HostError::Parse {
        path: root.path(P),
        line: String::new(),
        reason: "no MemTotal line",
    })
}

/// The RAM ranges of the machine, inclusive `(first, last)` byte addresses,
/// merged and sorted, and which file they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamMap {
    /// The file the ranges were read from (inside the root).
    pub source: String,
    /// Sorted, merged, inclusive ranges.
    pub ranges: Vec<(u64, u64)>,
}

impl RamMap {
    /// Whether `[start, start + len)` lies inside one RAM range.
    pub fn contains(&self, start: u64, len: u64) -> bool {
        let Some(last) = start.checked_add(len).and_then(|e| e.checked_sub(1)) else {
            return false;
        };
        self.ranges.iter().any(|&(a, b)| a <= start && last <= b)
    }
}

fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

/// Reads the machine's RAM ranges: the firmware's map in
/// `/sys/firmware/memmap` (unchanged by `memmap=`) when present, otherwise
/// the "System RAM" entries of `/proc/iomem` plus the live critmem pool
/// (which `memmap=` turns into "Reserved"). `Ok(None)` when neither exists.
pub fn ram_map(root: &Root) -> Result<Option<RamMap>, HostError> {
    const FW: &str = "/sys/firmware/memmap";
    if root.is_dir(FW) {
        let dir = root.path(FW);
        let entries = fs::read_dir(&dir).map_err(|source| HostError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut ranges = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| HostError::Read {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let get = |f: &str| root.read(&format!("{FW}/{name}/{f}"));
            let (Some(start), Some(end), Some(kind)) = (get("start")?, get("end")?, get("type")?)
            else {
                continue;
            };
            if kind.trim() != "System RAM" {
                continue;
            }
            let bad = |line: &str| HostError::Parse {
                path: root.path(&format!("{FW}/{name}")),
                line: line.to_string(),
                reason: "expected a 0x-prefixed hexadecimal address",
            };
            ranges.push((
                parse_hex(&start).ok_or_else(|| bad(&start))?,
                parse_hex(&end).ok_or_else(|| bad(&end))?,
            ));
        }
        if !ranges.is_empty() {
            return Ok(Some(RamMap {
                source: FW.to_string(),
                ranges: merge(ranges),
            }));
        }
    }
    const IOMEM: &str = "/proc/iomem";
    let Some(text) = root.read(IOMEM)? else {
        return Ok(None);
    };
    let mut ranges = Vec::new();
    for line in text.lines() {
        let Some((span, name)) = line.split_once(" : ") else {
            continue;
        };
        let top_level = !line.starts_with(' ');
        let name = name.trim();
        if !((top_level && name == "System RAM") || name == "critmem") {
            continue;
        }
        let parsed = span
            .trim()
            .split_once('-')
            .and_then(|(a, b)| Some((parse_hex(a)?, parse_hex(b)?)));
        let Some((a, b)) = parsed else {
            return Err(HostError::Parse {
                path: root.path(IOMEM),
                line: line.to_string(),
                reason: "expected '<start>-<end> : <name>'",
            });
        };
        if (a, b) != (0, 0) {
            ranges.push((a, b));
        }
    }
    if ranges.is_empty() {
        return Ok(None);
    }
    Ok(Some(RamMap {
        source: IOMEM.to_string(),
        ranges: merge(ranges),
    }))
}

/// The kernel command line the running kernel booted with
/// (`/proc/cmdline`), or `None` when unreadable (a fake root without it).
pub fn booted_cmdline(root: &Root) -> Result<Option<String>, HostError> {
    Ok(root.read("/proc/cmdline")?.map(|s| s.trim().to_string()))
}

/// The running kernel's release (`/proc/sys/kernel/osrelease`, as `uname
/// -r` prints it).
pub fn os_release(root: &Root) -> Result<Option<String>, HostError> {
    Ok(root
        .read("/proc/sys/kernel/osrelease")?
        .map(|s| s.trim().to_string()))
}

/// Reads and parses `/proc/critmem`, the live pool as critmem.ko publishes
/// it; `Ok(None)` when it does not exist (the module is not loaded).
pub fn live_pool(root: &Root) -> Result<Option<MapFile>, HostError> {
    let path = critmem_abi::MAP_FILE_PATH;
    let Some(text) = root.read(path)? else {
        return Ok(None);
    };
    map_file::parse(&text)
        .map(Some)
        .map_err(|source| HostError::MapFile {
            path: root.path(path),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_adjacent_ranges() {
        assert_eq!(
            merge(vec![
                (0x100000, 0x1fffff),
                (0, 0x9ffff),
                (0x200000, 0x2fffff)
            ]),
            vec![(0, 0x9ffff), (0x100000, 0x2fffff)]
        );
    }

    fn tmp_root(name: &str) -> (PathBuf, Root) {
        let dir =
            std::env::temp_dir().join(format!("critmem-boot-host-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("proc")).unwrap();
        let root = Root::new(&dir).unwrap();
        (dir, root)
    }

    /// A memmap-booted host: the pool is "Reserved" in /proc/iomem with
    /// critmem's resource inside; it still counts as RAM for --base.
    #[test]
    fn iomem_counts_the_critmem_pool_as_ram() {
        let (dir, root) = tmp_root("iomem");
        fs::write(
            dir.join("proc/iomem"),
            "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n00100000-3fffffff : System RAM\n  01000000-01ffffff : Kernel code\n40000000-4fffffff : Reserved\n  40000000-4fffffff : critmem\n50000000-7ffdffff : System RAM\nfec00000-fec003ff : Reserved\n",
        )
        .unwrap();
        let map = ram_map(&root).unwrap().unwrap();
        assert_eq!(map.source, "/proc/iomem");
        assert_eq!(map.ranges, vec![(0x1000, 0x9fbff), (0x100000, 0x7ffdffff)]);
        assert!(map.contains(0x4000_0000, 0x1000_0000));
        assert!(!map.contains(0xfec0_0000, 0x1000));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_malformed_proc_critmem_names_the_file() {
        let (dir, root) = tmp_root("critmem");
        fs::write(dir.join("proc/critmem"), "version=1\n").unwrap();
        let e = live_pool(&root).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: no 'source=' line", dir.join("proc/critmem").display())
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn contains_checks_whole_range() {
        let m = RamMap {
            source: String::new(),
            ranges: vec![(0x100000, 0x7fffffff)],
        };
        assert!(m.contains(0x40000000, 0x10000000));
        assert!(m.contains(0x40000000, 0x40000000));
        assert!(!m.contains(0x40000000, 0x40000001));
        assert!(!m.contains(0, 0x1000));
        assert!(!m.contains(u64::MAX, 2));
    }
}
