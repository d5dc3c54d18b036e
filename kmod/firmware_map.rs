// SPDX-License-Identifier: GPL-2.0

//! The firmware's own memory map, for memmap mode: which ranges the
//! firmware (E820, or EFI as translated to it) described as RAM.
//!
//! `memmap=<size>$<base>` turns RAM into "Reserved" in the kernel's copy of
//! the map, which is what `/proc/iomem` shows; a range the firmware itself
//! reserved (ACPI tables, EFI runtime memory, a BIOS ROM) is "Reserved"
//! there too. Only the firmware's original map tells them apart. The kernel
//! keeps it as `e820_table_firmware` but exports it to modules only through
//! `/sys/firmware/memmap` (`CONFIG_FIRMWARE_MEMMAP`), so the glue reads that
//! (`iomem::firmware_map`), and this file holds the pure part: parsing its
//! files and deciding whether a range is RAM from end to end.

/// The most entries read; E820 tables hold at most a few hundred.
pub(crate) const MAX_ENTRIES: usize = 512;

/// What the firmware said a range is (the `type` file's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `System RAM`: the only kind a pool may come from.
    Ram,
    /// `Reserved`, `ACPI Tables`, `ACPI Non-volatile Storage`, ...
    Other,
}

/// One entry of the firmware's map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// First byte.
    pub(crate) start: u64,
    /// Last byte.
    pub(crate) end_inclusive: u64,
    /// Its kind.
    pub(crate) kind: Kind,
}

impl Entry {
    /// An entry from the contents of its `start`, `end` and `type` files,
    /// or `None` when one of them is malformed.
    pub(crate) fn parse(start: &[u8], end: &[u8], kind: &[u8]) -> Option<Entry> {
        let start = parse_hex(start)?;
        let end_inclusive = parse_hex(end)?;
        if end_inclusive < start {
            return None;
        }
        let kind = if trim(kind) == b"System RAM" {
            Kind::Ram
        } else {
            Kind::Other
        };
        Some(Entry {
            start,
            end_inclusive,
            kind,
        })
    }
}

/// The part of a range that the firmware did not describe as RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NotRam {
    /// First byte of the first such part.
    pub(crate) start: u64,
    /// Its last byte.
    pub(crate) end_inclusive: u64,
    /// `true` when no entry covers it at all (a hole in the map), `false`
    /// when an entry of another kind does.
    pub(crate) hole: bool,
}

/// The first part of `[start, start + size)` that no RAM entry of
/// `entries` covers, or `None` when the firmware described all of it as
/// RAM. Entries may come in any order, and may touch or overlap.
pub(crate) fn first_not_ram(entries: &[Entry], start: u64, size: u64) -> Option<NotRam> {
    if size == 0 {
        return None;
    }
    let last = start.saturating_add(size - 1);
    let mut cursor = start;
    loop {
        let covering = entries
            .iter()
            .filter(|e| e.kind == Kind::Ram && e.start <= cursor && cursor <= e.end_inclusive)
            .map(|e| e.end_inclusive)
            .max();
        match covering {
            Some(end) if end >= last => return None,
            Some(end) => cursor = end + 1,
            None => {
                // Up to the next RAM entry, or the end of the range.
                let next_ram = entries
                    .iter()
                    .filter(|e| e.kind == Kind::Ram && e.start > cursor && e.start <= last)
                    .map(|e| e.start)
                    .min();
                let end_inclusive = next_ram.map_or(last, |s| s - 1);
                let hole = !entries
                    .iter()
                    .any(|e| e.start <= cursor && cursor <= e.end_inclusive);
                return Some(NotRam {
                    start: cursor,
                    end_inclusive,
                    hole,
                });
            }
        }
    }
}

/// Room for the longest `/sys/firmware/memmap/N/FIELD` path and its NUL.
pub(crate) const PATH_LEN: usize = 48;

/// Writes the NUL-terminated path of entry `index`'s `field` file into
/// `buf`, returning its length with the NUL, or `None` if it does not fit.
pub(crate) fn sysfs_path(buf: &mut [u8; PATH_LEN], index: usize, field: &[u8]) -> Option<usize> {
    const DIR: &[u8] = b"/sys/firmware/memmap/";
    let mut digits = [0u8; 20];
    let mut n = index;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = DIR.len() + count + 1 + field.len() + 1;
    if len > PATH_LEN {
        return None;
    }
    buf[..DIR.len()].copy_from_slice(DIR);
    let mut at = DIR.len();
    for &d in digits[..count].iter().rev() {
        buf[at] = d;
        at += 1;
    }
    buf[at] = b'/';
    at += 1;
    buf[at..at + field.len()].copy_from_slice(field);
    at += field.len();
    buf[at] = 0;
    Some(at + 1)
}

fn trim(text: &[u8]) -> &[u8] {
    let mut t = text;
    while let [rest @ .., b'\n' | b' ' | 0] = t {
        t = rest;
    }
    t
}

/// A `0x`-prefixed hexadecimal number with an optional trailing newline,
/// as the map's `start` and `end` files hold.
pub(crate) fn parse_hex(text: &[u8]) -> Option<u64> {
    let digits = trim(text).strip_prefix(b"0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(start: u64, end_inclusive: u64) -> Entry {
        Entry {
            start,
            end_inclusive,
            kind: Kind::Ram,
        }
    }
    fn reserved(start: u64, end_inclusive: u64) -> Entry {
        Entry {
            start,
            end_inclusive,
            kind: Kind::Other,
        }
    }

    /// QEMU's map with SeaBIOS and 2 GiB, as the emulated host boots.
    fn qemu_map() -> [Entry; 6] {
        [
            ram(0, 0x9fbff),
            reserved(0x9fc00, 0x9ffff),
            reserved(0xf0000, 0xfffff),
            ram(0x100000, 0x7ffdffff),
            reserved(0x7ffe0000, 0x7fffffff),
            reserved(0xfffc0000, 0xffffffff),
        ]
    }

    #[test]
    fn builds_the_sysfs_paths() {
        let mut buf = [0u8; PATH_LEN];
        let len = sysfs_path(&mut buf, 0, b"start").unwrap();
        assert_eq!(&buf[..len], b"/sys/firmware/memmap/0/start\0");
        let len = sysfs_path(&mut buf, 511, b"type").unwrap();
        assert_eq!(&buf[..len], b"/sys/firmware/memmap/511/type\0");
        assert_eq!(sysfs_path(&mut buf, usize::MAX, b"a_field_name_too_long"), None);
    }

    #[test]
    fn parses_the_sysfs_files() {
        assert_eq!(
            Entry::parse(b"0x100000\n", b"0x7ffdffff\n", b"System RAM\n"),
            Some(ram(0x100000, 0x7ffdffff))
        );
        assert_eq!(
            Entry::parse(b"0xfffc0000\n", b"0xffffffff\n", b"Reserved\n"),
            Some(reserved(0xfffc0000, 0xffffffff))
        );
        assert_eq!(Entry::parse(b"0x10\n", b"0x1\n", b"System RAM\n"), None, "end before start");
        assert_eq!(Entry::parse(b"100\n", b"0x1ff\n", b"System RAM\n"), None, "no 0x");
        assert_eq!(Entry::parse(b"0x\n", b"0x1ff\n", b"System RAM\n"), None, "no digits");
        assert_eq!(Entry::parse(b"0x1g\n", b"0x1ff\n", b"System RAM\n"), None, "not hex");
        assert_eq!(parse_hex(b"0xffffffffffffffff\n"), Some(u64::MAX));
        assert_eq!(parse_hex(b"0x10000000000000000\n"), None, "17 digits");
    }

    #[test]
    fn a_memmap_reservation_inside_firmware_ram_passes() {
        // memmap=256M$1G: RAM in the firmware's map.
        assert_eq!(first_not_ram(&qemu_map(), 0x4000_0000, 0x1000_0000), None);
        // A range over two touching RAM entries is RAM too.
        let split = [ram(0, 0x3fff_ffff), ram(0x4000_0000, 0x7fff_ffff)];
        assert_eq!(first_not_ram(&split, 0x3000_0000, 0x2000_0000), None);
    }

    #[test]
    fn a_firmware_reserved_range_is_named() {
        assert_eq!(
            first_not_ram(&qemu_map(), 0xfffc0000, 0x40000),
            Some(NotRam {
                start: 0xfffc0000,
                end_inclusive: 0xffffffff,
                hole: false
            })
        );
        // RAM, then the firmware's reserved tail.
        assert_eq!(
            first_not_ram(&qemu_map(), 0x7ff0_0000, 0x20_0000),
            Some(NotRam {
                start: 0x7ffe0000,
                end_inclusive: 0x800f_ffff,
                hole: false
            })
        );
    }

    #[test]
    fn a_hole_in_the_map_is_not_ram() {
        // Between the map's end of RAM and the BIOS ROM nothing is described.
        assert_eq!(
            first_not_ram(&qemu_map(), 0x8000_0000, 0x1000_0000),
            Some(NotRam {
                start: 0x8000_0000,
                end_inclusive: 0x8fff_ffff,
                hole: true
            })
        );
        assert_eq!(
            first_not_ram(&[], 0, 0x1000),
            Some(NotRam {
                start: 0,
                end_inclusive: 0xfff,
                hole: true
            })
        );
    }

    #[test]
    fn the_last_byte_of_the_address_space_does_not_overflow() {
        let top = [ram(0xffff_ffff_ffff_0000, u64::MAX)];
        assert_eq!(first_not_ram(&top, 0xffff_ffff_ffff_0000, 0x1_0000), None);
    }

    #[test]
    fn property_agrees_with_a_byte_by_byte_check() {
        let mut rng = crate::Lcg(0x5eed_f1a3);
        for case in 0..2000 {
            let n = rng.below(6) as usize;
            let entries: [Entry; 6] = core::array::from_fn(|_| {
                let start = rng.below(64);
                let len = rng.below(16);
                let kind = if rng.below(3) == 0 { Kind::Other } else { Kind::Ram };
                Entry {
                    start,
                    end_inclusive: start + len,
                    kind,
                }
            });
            let entries = &entries[..n];
            let start = rng.below(64);
            let size = 1 + rng.below(32);
            let is_ram = |b: u64| {
                entries
                    .iter()
                    .any(|e| e.kind == Kind::Ram && e.start <= b && b <= e.end_inclusive)
            };
            let want = (start..start + size).find(|&b| !is_ram(b));
            let got = first_not_ram(entries, start, size);
            assert_eq!(got.map(|r| r.start), want, "case {case}: {entries:?} [{start}, +{size})");
            if let Some(r) = got {
                assert!((r.start..=r.end_inclusive).all(|b| !is_ram(b)), "case {case}: {r:?}");
                assert!(
                    r.end_inclusive == start + size - 1 || is_ram(r.end_inclusive + 1),
                    "case {case}: {r:?} stops early"
                );
            }
        }
    }
}
