//! critmem's kernel parameters: building them from a pool request, and
//! finding them in a command line.
//!
//! Two modes (see kmod/README.md, "Pool sources"):
//! - **reserve** (default): `reserve_mem=<size>:<align>:critmem`. The kernel
//!   carves the pool out of RAM at boot; critmem.ko finds it by its label.
//! - **memmap**: `memmap=<size>$<base>` marks a fixed physical range
//!   E820-reserved, and `critmem.base=<base> critmem.size=<size>` tell the
//!   module where it is (modprobe applies `critmem.*` from the command line).
//!   Module parameters are plain integers, so they are written in hex.

use critmem_abi::units;

use crate::units::hex;

/// Where the pool comes from, with its figures, already validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolSpec {
    /// `reserve_mem=<size>:<align>:critmem`.
    Reserve {
        /// Pool size in bytes.
        size: u64,
        /// Alignment of the pool's start in bytes.
        align: u64,
    },
    /// `memmap=<size>$<base>` plus `critmem.base=`/`critmem.size=`.
    Memmap {
        /// Pool size in bytes.
        size: u64,
        /// Physical address of the pool's first byte.
        base: u64,
    },
}

impl PoolSpec {
    /// The pool size in bytes.
    pub fn size(&self) -> u64 {
        match *self {
            PoolSpec::Reserve { size, .. } | PoolSpec::Memmap { size, .. } => size,
        }
    }

    /// The mode's name as used on the command line of this tool.
    pub fn mode_name(&self) -> &'static str {
        match self {
            PoolSpec::Reserve { .. } => "reserve",
            PoolSpec::Memmap { .. } => "memmap",
        }
    }

    /// The kernel parameters, in command-line order.
    pub fn params(&self) -> Vec<String> {
        match *self {
            PoolSpec::Reserve { size, align } => vec![format!(
                "reserve_mem={}:{}:{}",
                units::format(size),
                units::format(align),
                critmem_abi::RESERVE_MEM_LABEL
            )],
            PoolSpec::Memmap { size, base } => vec![
                format!("memmap={}${}", units::format(size), hex(base)),
                format!("critmem.base={}", hex(base)),
                format!("critmem.size={}", hex(size)),
            ],
        }
    }

    /// The `options critmem ...` line for modprobe.d, if the mode needs one.
    pub fn modprobe_options(&self) -> Option<String> {
        match *self {
            PoolSpec::Reserve { .. } => None,
            PoolSpec::Memmap { size, base } => Some(format!(
                "options critmem base={} size={}",
                hex(base),
                hex(size)
            )),
        }
    }

    /// One line for people: `reserve_mem mode, 16 GiB aligned to 1 GiB`.
    pub fn describe(&self) -> String {
        use critmem_abi::units::human;
        match *self {
            PoolSpec::Reserve { size, align } => {
                format!(
                    "reserve_mem mode, {} aligned to {}",
                    human(size),
                    human(align)
                )
            }
            PoolSpec::Memmap { size, base } => format!(
                "memmap mode, {} at physical {}-{}",
                human(size),
                hex(base),
                hex(base + size - 1)
            ),
        }
    }
}

/// Whether a command-line word belongs to critmem by its own shape:
/// `reserve_mem=...:critmem` or `critmem.<param>=...`. A `memmap=` word is
/// not self-identifying (other software uses memmap=), so it counts as
/// critmem's only when listed in the state file or paired with
/// `critmem.base=` (see [`critmem_words`]).
pub fn is_own_word(word: &str) -> bool {
    if word.starts_with("critmem.") {
        return true;
    }
    match word.strip_prefix("reserve_mem=") {
        Some(v) => v.rsplit(':').next() == Some(critmem_abi::RESERVE_MEM_LABEL),
        None => false,
    }
}

/// The critmem words of a command line, in order: self-identifying words,
/// and `memmap=<size>$<base>` words whose base is the `critmem.base=` of the
/// same line.
pub fn critmem_words(cmdline: &str) -> Vec<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let base = words
        .iter()
        .find_map(|w| w.strip_prefix("critmem.base="))
        .and_then(|b| units::parse(b, "base address").ok());
    words
        .iter()
        .filter(|w| {
            is_own_word(w)
                || (w.strip_prefix("memmap=").and_then(|v| v.split_once('$')))
                    .and_then(|(_, b)| units::parse(b, "base address").ok())
                    .is_some_and(|b| Some(b) == base)
        })
        .map(|w| w.to_string())
        .collect()
}

/// Reads the pool a set of critmem words asks the kernel for, if they make
/// one: a `reserve_mem=...:critmem`, or a `memmap=` with its `critmem.*`.
pub fn pool_from_words(words: &[String]) -> Option<PoolSpec> {
    for w in words {
        if let Some(v) = w.strip_prefix("reserve_mem=") {
            let mut it = v.split(':');
            let size = units::parse(it.next()?, "size").ok()?;
            let align = units::parse(it.next()?, "alignment").ok()?;
            return Some(PoolSpec::Reserve { size, align });
        }
    }
    for w in words {
        if let Some((s, b)) = w.strip_prefix("memmap=").and_then(|v| v.split_once('$')) {
            return Some(PoolSpec::Memmap {
                size: units::parse(s, "size").ok()?,
                base: units::parse(b, "base address").ok()?,
            });
        }
    }
    None
}

/// Rewrites a command line (as in `/etc/kernel/cmdline`): drops every
/// critmem word and every word in `also_remove`, then appends `add`.
/// Other words keep their order and spelling.
pub fn edit_cmdline(cmdline: &str, also_remove: &[String], add: &[String]) -> String {
    let own = critmem_words(cmdline);
    let mut out: Vec<String> = cmdline
        .split_whitespace()
        .filter(|w| !own.iter().any(|o| o == w) && !also_remove.iter().any(|r| r == w))
        .map(str::to_string)
        .collect();
    out.extend(add.iter().cloned());
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use critmem_abi::units::{GIB, MIB};

    #[test]
    fn reserve_params() {
        let p = PoolSpec::Reserve {
            size: 16 * GIB,
            align: GIB,
        };
        assert_eq!(p.params(), vec!["reserve_mem=16G:1G:critmem"]);
        assert_eq!(p.modprobe_options(), None);
    }

    #[test]
    fn memmap_params() {
        let p = PoolSpec::Memmap {
            size: 256 * MIB,
            base: 0x4000_0000,
        };
        assert_eq!(
            p.params(),
            vec![
                "memmap=256M$0x40000000",
                "critmem.base=0x40000000",
                "critmem.size=0x10000000"
            ]
        );
        assert_eq!(pool_from_words(&p.params()), Some(p));
    }

    #[test]
    fn finds_own_words() {
        let line = "BOOT_IMAGE=/vmlinuz ro memmap=1G$0x100000000 memmap=4K$0x1000 \
                    critmem.base=0x100000000 critmem.size=0x40000000 reserve_mem=1G:1G:other quiet";
        assert_eq!(
            critmem_words(line),
            vec![
                "memmap=1G$0x100000000",
                "critmem.base=0x100000000",
                "critmem.size=0x40000000"
            ]
        );
        assert_eq!(
            critmem_words("reserve_mem=2G:2M:critmem ro"),
            vec!["reserve_mem=2G:2M:critmem"]
        );
    }

    #[test]
    fn edits_cmdline() {
        let old = "root=UUID=abc ro reserve_mem=2G:2M:critmem quiet";
        let new = edit_cmdline(old, &[], &["reserve_mem=4G:1G:critmem".into()]);
        assert_eq!(new, "root=UUID=abc ro quiet reserve_mem=4G:1G:critmem");
        assert_eq!(edit_cmdline(&new, &[], &[]), "root=UUID=abc ro quiet");
    }
}
