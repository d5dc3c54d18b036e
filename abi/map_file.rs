//! `/proc/critmem` read back: the one parser of the map file, for `vmm`,
//! `critmem-boot` and cmtool (and through `cmtool map-file`, the scenarios'
//! shell helpers).
//!
//! The format is in `kmod/README.md`: one `key=value` per line with the keys
//! of [`map_keys`], addresses in `0x` hexadecimal, byte counts and ids in
//! decimal, and one `slice=` line per live slice whose value is
//! space-separated `key=value` fields.
//!
//! What is checked, and why:
//! - Every key the kernel writes must be there, once, in its notation;
//!   otherwise the file is not what this parser understands and an error
//!   says which key is wrong.
//! - Unknown keys, and unknown fields of a slice line, are skipped: the
//!   kernel may add keys in later versions (existing keys keep their
//!   meaning), and an older tool must still read the file.
//! - A slice's state is kept as its word, for the same reason: a later
//!   module may add states. Compare it with the `SLICE_STATE_*` constants.
//! - The kernel's arithmetic (`end_inclusive = start + size - 1`, the slice
//!   count) is not re-checked: the kernel writes the file in one go under
//!   its lock, and this is a parser, not a test of the module.

use std::io;
use std::path::{Path, PathBuf};

use crate::map_keys;

/// Why the map file could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum MapFileError {
    /// The file does not exist.
    #[error("{path} does not exist: critmem.ko is not loaded (modprobe critmem)")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A line, or a field of a slice line, is not `key=value`.
    #[error("'{line}' is not a key=value line")]
    MalformedLine {
        /// The line or field as found.
        line: String,
    },
    /// A key the kernel always writes is absent.
    #[error("no '{key}=' line")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A slice line lacks one of its fields.
    #[error("slice line '{line}' has no '{key}=' field")]
    MissingSliceField {
        /// The field's key.
        key: &'static str,
        /// The slice line's value.
        line: String,
    },
    /// A key appears twice (as a line, or as a field of one slice line).
    #[error("'{key}=' appears more than once")]
    DuplicateKey {
        /// The key.
        key: &'static str,
    },
    /// A value is not in its key's notation.
    #[error("'{key}={value}': expected {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as found.
        value: String,
        /// The notation the key is written in.
        expected: &'static str,
    },
}

/// The pool and its slices, as `/proc/critmem` lists them. Field names are
/// those of [`map_keys`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapFile {
    /// [`map_keys::VERSION`]: the module's ABI version.
    pub version: u64,
    /// [`map_keys::SOURCE`]: [`map_keys::SOURCE_RESERVE_MEM`] or
    /// [`map_keys::SOURCE_MEMMAP`].
    pub source: String,
    /// [`map_keys::START`]: physical address of the pool's first byte.
    pub start: u64,
    /// [`map_keys::END_INCLUSIVE`]: physical address of its last byte.
    pub end_inclusive: u64,
    /// [`map_keys::SIZE`]: pool size in bytes.
    pub size: u64,
    /// [`map_keys::ALIGN`]: alignment of the pool's start in bytes.
    pub align: u64,
    /// [`map_keys::FREE`]: bytes owned by no slice.
    pub free: u64,
    /// [`map_keys::FREE_ZEROED`]: free bytes already zeroed.
    pub free_zeroed: u64,
    /// [`map_keys::LARGEST_FREE_1G`]: the largest free run of whole 1 GiB
    /// blocks, in bytes.
    pub largest_free_1g: u64,
    /// [`map_keys::SLICES`]: number of live slices.
    pub slice_count: u64,
    /// The [`map_keys::SLICE`] lines, in file order (by id).
    pub slices: Vec<SliceEntry>,
}

/// One `slice=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEntry {
    /// `id`: the slice's id, as ALLOC returned it.
    pub id: u64,
    /// `start`: physical address of the slice's first byte.
    pub start: u64,
    /// `end_inclusive`: physical address of its last byte.
    pub end_inclusive: u64,
    /// `size`: slice size in bytes.
    pub size: u64,
    /// `pid`: the process that allocated it.
    pub pid: u64,
    /// `state`: one of the `map_keys::SLICE_STATE_*` words (or a newer one).
    pub state: String,
}

/// The fields of a slice line.
const SLICE_ID: &str = "id";
const SLICE_START: &str = "start";
const SLICE_END_INCLUSIVE: &str = "end_inclusive";
const SLICE_SIZE: &str = "size";
const SLICE_PID: &str = "pid";
const SLICE_STATE: &str = "state";

/// Reads and parses the map file at `path` (normally
/// [`crate::MAP_FILE_PATH`]).
pub fn read(path: &Path) -> Result<MapFile, MapFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            MapFileError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            MapFileError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    parse(&text)
}

/// Parses the text of the map file (see the module docs for what is
/// checked).
pub fn parse(text: &str) -> Result<MapFile, MapFileError> {
    const KEYS: [&str; 10] = [
        map_keys::VERSION,
        map_keys::SOURCE,
        map_keys::START,
        map_keys::END_INCLUSIVE,
        map_keys::SIZE,
        map_keys::ALIGN,
        map_keys::FREE,
        map_keys::FREE_ZEROED,
        map_keys::LARGEST_FREE_1G,
        map_keys::SLICES,
    ];
    let mut slices = Vec::new();
    let mut pool_pairs = Vec::new();
    for pair in text.lines().map(key_value) {
        let (key, value) = pair?;
        if key == map_keys::SLICE {
            slices.push(parse_slice(value)?);
        } else {
            pool_pairs.push((key, value));
        }
    }
    let [version, source, start, end_inclusive, size, align, free, free_zeroed, largest_free_1g, slice_count] =
        pick(KEYS, &pool_pairs, |key| MapFileError::MissingKey { key })?;
    Ok(MapFile {
        version: decimal(map_keys::VERSION, version)?,
        source: word(map_keys::SOURCE, source)?,
        start: address(map_keys::START, start)?,
        end_inclusive: address(map_keys::END_INCLUSIVE, end_inclusive)?,
        size: decimal(map_keys::SIZE, size)?,
        align: decimal(map_keys::ALIGN, align)?,
        free: decimal(map_keys::FREE, free)?,
        free_zeroed: decimal(map_keys::FREE_ZEROED, free_zeroed)?,
        largest_free_1g: decimal(map_keys::LARGEST_FREE_1G, largest_free_1g)?,
        slice_count: decimal(map_keys::SLICES, slice_count)?,
        slices,
    })
}

/// Parses the value of a `slice=` line.
fn parse_slice(line: &str) -> Result<SliceEntry, MapFileError> {
    const FIELDS: [&str; 6] = [
        SLICE_ID,
        SLICE_START,
        SLICE_END_INCLUSIVE,
        SLICE_SIZE,
        SLICE_PID,
        SLICE_STATE,
    ];
    let pairs = line
        .split(' ')
        .map(key_value)
        .collect::<Result<Vec<_>, _>>()?;
    let [id, start, end_inclusive, size, pid, state] =
        pick(FIELDS, &pairs, |key| MapFileError::MissingSliceField {
            key,
            line: line.to_string(),
        })?;
    Ok(SliceEntry {
        id: decimal(SLICE_ID, id)?,
        start: address(SLICE_START, start)?,
        end_inclusive: address(SLICE_END_INCLUSIVE, end_inclusive)?,
        size: decimal(SLICE_SIZE, size)?,
        pid: decimal(SLICE_PID, pid)?,
        state: word(SLICE_STATE, state)?,
    })
}

/// Splits `key=value` at its first `=` (a slice line's value holds more).
fn key_value(line: &str) -> Result<(&str, &str), MapFileError> {
    line.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| MapFileError::MalformedLine {
            line: line.to_string(),
        })
}

/// The value of each of `keys` among `pairs`, in `keys` order; other keys
/// are skipped (see the module docs), and `missing` makes the error for a
/// key that is not there.
fn pick<'a, const N: usize>(
    keys: [&'static str; N],
    pairs: &[(&str, &'a str)],
    missing: impl Fn(&'static str) -> MapFileError,
) -> Result<[&'a str; N], MapFileError> {
    let mut values = [None; N];
    for &(key, value) in pairs {
        if let Some(i) = keys.iter().position(|&k| k == key) {
            if values[i].replace(value).is_some() {
                return Err(MapFileError::DuplicateKey { key: keys[i] });
            }
        }
    }
    if let Some(i) = values.iter().position(Option::is_none) {
        return Err(missing(keys[i]));
    }
    Ok(values.map(Option::unwrap_or_default))
}

/// A byte count or id: decimal digits.
fn decimal(key: &'static str, value: &str) -> Result<u64, MapFileError> {
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| bad_value(key, value, "a decimal number"))
}

/// A physical address: `0x` and hexadecimal digits.
fn address(key: &'static str, value: &str) -> Result<u64, MapFileError> {
    value
        .strip_prefix("0x")
        .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| bad_value(key, value, "a 0x-prefixed hexadecimal address"))
}

/// A word such as `reserve_mem` or `mapped`.
fn word(key: &'static str, value: &str) -> Result<String, MapFileError> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(bad_value(key, value, "a word"));
    }
    Ok(value.to_string())
}

fn bad_value(key: &'static str, value: &str, expected: &'static str) -> MapFileError {
    MapFileError::BadValue {
        key,
        value: value.to_string(),
        expected,
    }
}

impl MapFile {
    /// The value of the pool key `key`, written as the kernel writes it;
    /// `None` for a key this parser does not know (or [`map_keys::SLICE`]).
    pub fn value(&self, key: &str) -> Option<String> {
        Some(match key {
            map_keys::VERSION => self.version.to_string(),
            map_keys::SOURCE => self.source.clone(),
            map_keys::START => format!("{:#x}", self.start),
            map_keys::END_INCLUSIVE => format!("{:#x}", self.end_inclusive),
            map_keys::SIZE => self.size.to_string(),
            map_keys::ALIGN => self.align.to_string(),
            map_keys::FREE => self.free.to_string(),
            map_keys::FREE_ZEROED => self.free_zeroed.to_string(),
            map_keys::LARGEST_FREE_1G => self.largest_free_1g.to_string(),
            map_keys::SLICES => self.slice_count.to_string(),
            _ => return None,
        })
    }

    /// The first slice allocated by process `pid`.
    pub fn slice_of(&self, pid: u64) -> Option<&SliceEntry> {
        self.slices.iter().find(|s| s.pid == pid)
    }
}

impl SliceEntry {
    /// The value of the slice field `key`, written as the kernel writes it;
    /// `None` for a field this parser does not know.
    pub fn value(&self, key: &str) -> Option<String> {
        Some(match key {
            SLICE_ID => self.id.to_string(),
            SLICE_START => format!("{:#x}", self.start),
            SLICE_END_INCLUSIVE => format!("{:#x}", self.end_inclusive),
            SLICE_SIZE => self.size.to_string(),
            SLICE_PID => self.pid.to_string(),
            SLICE_STATE => self.state.clone(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What critmem.ko writes with two live slices (kmod/README.md).
    const TWO_SLICES: &str = "version=1\nsource=reserve_mem\nstart=0x6d400000\n\
        end_inclusive=0x7d3fffff\nsize=268435456\nalign=4194304\nfree=67108864\n\
        free_zeroed=67108864\nlargest_free_1g=0\nslices=2\n\
        slice=id=1 start=0x6d400000 end_inclusive=0x755fffff size=134217728 pid=83 state=mapped\n\
        slice=id=2 start=0x75600000 end_inclusive=0x795fffff size=67108864 pid=85 state=zeroing\n";

    #[test]
    fn a_good_file() {
        let map = parse(TWO_SLICES).unwrap();
        assert_eq!(map.version, 1);
        assert_eq!(map.source, map_keys::SOURCE_RESERVE_MEM);
        assert_eq!((map.start, map.end_inclusive), (0x6d40_0000, 0x7d3f_ffff));
        assert_eq!((map.size, map.align), (256 << 20, 4 << 20));
        assert_eq!(
            (map.free, map.free_zeroed, map.slice_count),
            (64 << 20, 64 << 20, 2)
        );
        assert_eq!(
            map.slices[1],
            SliceEntry {
                id: 2,
                start: 0x7560_0000,
                end_inclusive: 0x795f_ffff,
                size: 64 << 20,
                pid: 85,
                state: map_keys::SLICE_STATE_ZEROING.into(),
            }
        );
        assert_eq!(map.slice_of(83).map(|s| s.id), Some(1));
        assert_eq!(map.slice_of(84), None);
    }

    #[test]
    fn values_are_written_back_as_the_kernel_writes_them() {
        let map = parse(TWO_SLICES).unwrap();
        let mut slices = map.slices.iter();
        for line in TWO_SLICES.lines() {
            let (key, value) = line.split_once('=').unwrap();
            if key == map_keys::SLICE {
                let slice = slices.next().unwrap();
                for field in value.split(' ') {
                    let (k, v) = field.split_once('=').unwrap();
                    assert_eq!(slice.value(k).as_deref(), Some(v), "{line}");
                }
            } else {
                assert_eq!(map.value(key).as_deref(), Some(value), "{line}");
            }
        }
        assert_eq!(map.value("nonsense"), None);
        assert_eq!(map.value(map_keys::SLICE), None);
        assert_eq!(map.slices[0].value("nonsense"), None);
    }

    #[test]
    fn a_pool_without_slices() {
        let text = TWO_SLICES
            .lines()
            .filter(|l| !l.starts_with("slice="))
            .collect::<Vec<_>>()
            .join("\n");
        let map = parse(&text).unwrap();
        assert!(map.slices.is_empty());
    }

    #[test]
    fn unknown_keys_and_fields_are_skipped() {
        let text = TWO_SLICES
            .replace("slices=2\n", "slices=2\nnuma_node=0\n")
            .replace("state=mapped", "state=mapped owner=vmm")
            .replace("state=zeroing", "state=hibernating");
        let map = parse(&text).unwrap();
        assert_eq!(map.slices.len(), 2);
        assert_eq!(map.slices[1].state, "hibernating");
    }

    #[test]
    fn a_missing_key_is_named() {
        let text = TWO_SLICES.replace("free=67108864\n", "");
        assert!(matches!(
            parse(&text),
            Err(MapFileError::MissingKey { key: "free" })
        ));
        let text = TWO_SLICES.replace(" pid=85", "");
        let e = parse(&text).unwrap_err();
        assert!(
            matches!(e, MapFileError::MissingSliceField { key: "pid", .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "slice line 'id=2 start=0x75600000 end_inclusive=0x795fffff size=67108864 \
             state=zeroing' has no 'pid=' field"
        );
        assert!(matches!(
            parse(""),
            Err(MapFileError::MissingKey { key: "version" })
        ));
    }

    #[test]
    fn a_malformed_value_is_named() {
        for (from, to, key) in [
            ("start=0x6d400000", "start=1832910848", "start"),
            ("start=0x6d400000", "start=0x", "start"),
            ("start=0x6d400000", "start=0x6d40000g", "start"),
            ("size=268435456", "size=0x10000000", "size"),
            ("size=268435456", "size=-1", "size"),
            ("size=268435456", "size=+1", "size"),
            ("size=268435456", "size=", "size"),
            ("free=67108864", "free=99999999999999999999", "free"),
            ("source=reserve_mem", "source=", "source"),
            ("id=1 ", "id=one ", "id"),
        ] {
            let text = TWO_SLICES.replacen(from, to, 1);
            match parse(&text) {
                Err(MapFileError::BadValue { key: k, .. }) => assert_eq!(k, key, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        let e = parse(&TWO_SLICES.replace("size=268435456", "size=256M")).unwrap_err();
        assert_eq!(e.to_string(), "'size=256M': expected a decimal number");
    }

    #[test]
    fn malformed_lines_and_duplicates_are_refused() {
        for text in [
            TWO_SLICES.replace("slices=2\n", "slices=2\ngarbage\n"),
            TWO_SLICES.replace("slices=2\n", "slices=2\n=5\n"),
            TWO_SLICES.replace("state=mapped", "state=mapped  extra"),
            format!("\n{TWO_SLICES}"),
        ] {
            assert!(
                matches!(parse(&text), Err(MapFileError::MalformedLine { .. })),
                "{text}"
            );
        }
        let text = format!("{TWO_SLICES}free=0\n");
        assert!(matches!(
            parse(&text),
            Err(MapFileError::DuplicateKey { key: "free" })
        ));
        let text = TWO_SLICES.replace("pid=83", "pid=83 pid=84");
        assert!(matches!(
            parse(&text),
            Err(MapFileError::DuplicateKey { key: "pid" })
        ));
    }

    #[test]
    fn a_missing_file_says_the_module_is_not_loaded() {
        let e = read(Path::new("/nonexistent/critmem")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/critmem does not exist: critmem.ko is not loaded (modprobe critmem)"
        );
    }
}
