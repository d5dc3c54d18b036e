//! The e820 memory map handed to the guest in the zero page.

use super::layout::{self, EBDA_START, HIMEM_START, MMIO_GAP_END};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// One e820 entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub kind: u32,
}

/// The guest's e820 map for `mem_size` bytes of RAM (at least 1 MiB):
/// - RAM from 0 to the EBDA;
/// - the EBDA and BIOS area up to 1 MiB reserved (it holds the ACPI tables
///   and the MP table);
/// - RAM from 1 MiB to the MMIO hole (or the end of memory);
/// - RAM from 4 GiB on for the memory that did not fit below the hole.
///
/// The MMIO hole itself is left out of the map, as firmware does: that tells
/// the guest it holds no RAM.
pub fn e820_map(mem_size: u64) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        E820Entry {
            addr: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
    ];
    let low_end = layout::low_ram_end(mem_size);
    if low_end > HIMEM_START {
        map.push(E820Entry {
            addr: HIMEM_START,
            size: low_end - HIMEM_START,
            kind: E820_RAM,
        });
    }
    if mem_size > low_end {
        map.push(E820Entry {
            addr: MMIO_GAP_END,
            size: mem_size - low_end,
            kind: E820_RAM,
        });
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::layout::MMIO_GAP_START;

    fn ram_total(map: &[E820Entry]) -> u64 {
        map.iter()
            .filter(|e| e.kind == E820_RAM)
            .map(|e| e.size)
            .sum()
    }

    #[test]
    fn small_guest_map() {
        let map = e820_map(512 << 20);
        assert_eq!(
            map,
            vec![
                E820Entry {
                    addr: 0,
                    size: 0x9fc00,
                    kind: E820_RAM
                },
                E820Entry {
                    addr: 0x9fc00,
                    size: 0x100000 - 0x9fc00,
                    kind: E820_RESERVED
                },
                E820Entry {
                    addr: 0x100000,
                    size: (512 << 20) - 0x100000,
                    kind: E820_RAM
                },
            ]
        );
        // Everything but the EBDA/BIOS area is RAM.
        assert_eq!(ram_total(&map), (512 << 20) - (0x100000 - 0x9fc00));
    }

    #[test]
    fn large_guest_has_ram_above_the_hole() {
        let mem = 5 << 30;
        let map = e820_map(mem);
        assert_eq!(map.len(), 4);
        assert_eq!(map[2].addr + map[2].size, MMIO_GAP_START);
        assert_eq!(
            map[3],
            E820Entry {
                addr: 4 << 30,
                size: 2 << 30,
                kind: E820_RAM
            }
        );
        // Nothing is placed inside the hole.
        for e in &map {
            assert!(e.addr + e.size <= MMIO_GAP_START || e.addr >= MMIO_GAP_END);
        }
    }

    #[test]
    fn entries_are_sorted_and_disjoint() {
        for mem in [32 << 20, 3 << 30, (3 << 30) + 4096, 9 << 30] {
            let map = e820_map(mem);
            for w in map.windows(2) {
                assert!(w[0].addr + w[0].size <= w[1].addr, "{map:?}");
            }
        }
    }
}
