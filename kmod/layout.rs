// SPDX-License-Identifier: GPL-2.0

//! Page sizes, and the geometry of one mapping of a slice: which page a fault
//! maps ([`MappingGeometry::fault`]), where the mapping may be cut, and where
//! a new mapping is placed so that huge pages fit ([`place_mapping`]).
//!
//! This is pure arithmetic with no kernel calls, so that the build machine's
//! `cargo test` checks it (`kmod/host-tests` compiles this file through
//! `#[path]`). `vma.rs` (`huge_fault`, `may_split`) and `device.rs`
//! (`get_unmapped_area`) are the thin unsafe glue that applies it.
//!
//! # The rule for cuts
//!
//! The fault path maps the `page`-sized block around an address with one huge
//! entry when the block lies inside the vma and the slice and its physical
//! address is `page` aligned ([`MappingGeometry::block`]). Linux 7.2's split
//! code (`__split_vma` → `vma_adjust_trans_huge`) only knows how to cut
//! anonymous and file THP entries: handed a 1 GiB PFN leaf it walks the leaf
//! as if it pointed at a PMD table, and so reads and writes slice data, or a
//! struct page that does not exist, as page-table memory. So a vma is never
//! cut strictly inside a block that a huge entry may map
//! ([`MappingGeometry::may_split_at`]). The rule depends on the vma's
//! geometry alone, not on what is faulted in at the moment, so no fault
//! racing with the split can change the answer.

/// The base page.
pub(crate) const PAGE_SIZE: u64 = 4096;
/// A PMD-level huge page.
pub(crate) const SZ_2M: u64 = 2 << 20;
/// A PUD-level huge page.
pub(crate) const SZ_1G: u64 = 1 << 30;

/// `PMD_ORDER` on x86_64: a 2 MiB page is `1 << 9` base pages. `vma.rs`
/// checks at build time that it equals the kernel's.
pub(crate) const PMD_ORDER: u32 = 9;
/// `PUD_ORDER` on x86_64: a 1 GiB page is `1 << 18` base pages.
pub(crate) const PUD_ORDER: u32 = 18;

/// The page size a fault of `order` (0 for `.fault`, else the order
/// `.huge_fault` is asked for) wants, or `None` for an order we never map:
/// orders between the page-table levels, and PUD without 1 GiB pages.
pub(crate) fn fault_page_size(order: u32, pud_pages: bool) -> Option<u64> {
    match order {
        0 => Some(PAGE_SIZE),
        PMD_ORDER => Some(SZ_2M),
        PUD_ORDER if pud_pages => Some(SZ_1G),
        _ => None,
    }
}

/// What a fault handler does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// Map the `page`-sized block at `va` to physical `pa` with one entry.
    Insert {
        /// First virtual address of the block.
        va: u64,
        /// Physical address of the block, `page` aligned.
        pa: u64,
        /// The page size: [`PAGE_SIZE`], [`SZ_2M`] or [`SZ_1G`].
        page: u64,
    },
    /// No entry of this size here: the core retries with a smaller page.
    Fallback,
    /// Not even a 4 KiB page of the slice lies here.
    SigBus,
}

/// Where one vma of a slice lies, in virtual and in physical memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MappingGeometry {
    /// First virtual address of the vma.
    pub(crate) vm_start: u64,
    /// First virtual address past the vma.
    pub(crate) vm_end: u64,
    /// Offset into the slice of the byte mapped at `vm_start`.
    pub(crate) offset: u64,
    /// Physical address of the slice's first byte.
    pub(crate) slice_start: u64,
    /// Size of the slice in bytes.
    pub(crate) slice_size: u64,
    /// Whether 1 GiB entries may be used (the CPU has pdpe1gb).
    pub(crate) pud_pages: bool,
}

impl MappingGeometry {
    /// The huge page sizes this mapping may use, largest first.
    fn huge_sizes(&self) -> impl Iterator<Item = u64> {
        let pud = self.pud_pages;
        [SZ_1G, SZ_2M]
            .into_iter()
            .filter(move |&page| page != SZ_1G || pud)
    }

    /// The `page`-sized block around `va`, as `(first virtual address,
    /// physical address)`, if one entry of that size may map it: the block
    /// lies inside the vma and inside the slice, and its physical address is
    /// `page` aligned. `page` is a power of two of at least [`PAGE_SIZE`].
    pub(crate) fn block(&self, va: u64, page: u64) -> Option<(u64, u64)> {
        let block_va = va & !(page - 1);
        if block_va < self.vm_start || block_va.checked_add(page)? > self.vm_end {
            return None;
        }
        let offset = self.offset.checked_add(block_va - self.vm_start)?;
        if offset.checked_add(page)? > self.slice_size {
            return None;
        }
        let pa = self.slice_start.checked_add(offset)?;
        (pa % page == 0).then_some((block_va, pa))
    }

    /// What a fault at `va` asking for a page of `order` does: insert the
    /// block around `va` when [`MappingGeometry::block`] allows that page
    /// size, otherwise fall back to a smaller page (huge orders) or raise
    /// SIGBUS (order 0: the address maps no byte of the slice).
    pub(crate) fn fault(&self, va: u64, order: u32) -> FaultAction {
        let Some(page) = fault_page_size(order, self.pud_pages) else {
            return FaultAction::Fallback;
        };
        match self.block(va, page) {
            Some((va, pa)) => FaultAction::Insert { va, pa, page },
            None if order == 0 => FaultAction::SigBus,
            None => FaultAction::Fallback,
        }
    }

    /// The size of the largest huge entry that may map a block strictly
    /// containing `addr` (one that would straddle a cut at `addr`), if any.
    pub(crate) fn huge_page_across(&self, addr: u64) -> Option<u64> {
        self.huge_sizes()
            .find(|&page| addr % page != 0 && self.block(addr, page).is_some())
    }

    /// Whether the vma may be cut in two at `addr` (munmap, mprotect, mremap
    /// of part of it): only where no huge entry may straddle the cut.
    pub(crate) fn may_split_at(&self, addr: u64) -> bool {
        self.huge_page_across(addr).is_none()
    }

    /// Virtual address minus slice offset: two vmas with the same value map
    /// every slice byte at the same virtual address. A split keeps it; an
    /// mremap move changes it.
    pub(crate) fn va_minus_offset(&self) -> u64 {
        self.vm_start.wrapping_sub(self.offset)
    }

    /// The virtual range `[start, end)` of this vma that maps slice bytes
    /// `other` (a vma of the same slice) maps too, if any.
    pub(crate) fn range_shared_with(&self, other: &MappingGeometry) -> Option<(u64, u64)> {
        let first = self.offset.max(other.offset);
        let end = (self.offset + (self.vm_end - self.vm_start))
            .min(other.offset + (other.vm_end - other.vm_start));
        (first < end).then(|| {
            let start = self.vm_start + (first - self.offset);
            (start, start + (end - first))
        })
    }
}

/// The alignment a mapping of `len` bytes wants so that huge pages can map
/// it: 1 GiB from 1 GiB on, 2 MiB from 2 MiB on, none below.
pub(crate) fn mapping_align(len: u64) -> Option<u64> {
    if len >= SZ_1G {
        Some(SZ_1G)
    } else if len >= SZ_2M {
        Some(SZ_2M)
    } else {
        None
    }
}

/// `IS_ERR_VALUE`: the top 4095 values of an address are negative errnos.
fn is_err_value(value: u64) -> bool {
    value > (-4096i64) as u64
}

/// The policy of `f_op->get_unmapped_area`: the address for a new mapping
/// of `len` bytes.
///
/// A mapping with no address hint (`addr == 0`), not `MAP_FIXED`, of at least
/// 2 MiB goes to the first address congruent to `phys()` (the physical
/// address its first byte will map) modulo [`mapping_align`] inside a hole of
/// `len + align` bytes that `hole` finds, so that huge pages fit.
/// Everything else, and every case where that fails (the padded length
/// overflows, `hole` returns an error value, the address would overflow),
/// gets `plain()`, the default placement of the request as it was made.
/// `phys` is only called when its answer is used.
pub(crate) fn place_mapping(
    addr: u64,
    len: u64,
    fixed: bool,
    phys: impl FnOnce() -> u64,
    hole: impl FnOnce(u64) -> u64,
    plain: impl FnOnce() -> u64,
) -> u64 {
    let Some(align) = mapping_align(len) else {
        return plain();
    };
    if addr != 0 || fixed {
        return plain();
    }
    let residue = phys() % align;
    let Some(padded) = len.checked_add(align) else {
        return plain();
    };
    let base = hole(padded);
    if is_err_value(base) {
        return plain();
    }
    // The first address at or above `base` congruent to `phys`; it and the
    // `len` bytes after it lie inside the padded hole.
    base.checked_add((residue + align - base % align) % align)
        .unwrap_or_else(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = SZ_1G;
    const M2: u64 = SZ_2M;
    const K4: u64 = PAGE_SIZE;

    /// A vma at `va` of `len` bytes mapping a slice at `pa` from offset 0.
    fn geo(va: u64, len: u64, pa: u64) -> MappingGeometry {
        MappingGeometry {
            vm_start: va,
            vm_end: va + len,
            offset: 0,
            slice_start: pa,
            slice_size: len,
            pud_pages: true,
        }
    }

    #[test]
    fn a_congruent_gigabyte_is_one_pud_block() {
        let g = geo(64 * G, G, 4 * G);
        assert_eq!(g.block(64 * G + 12345 * K4, G), Some((64 * G, 4 * G)));
        assert_eq!(
            g.block(64 * G + 3 * M2 + 5, M2),
            Some((64 * G + 3 * M2, 4 * G + 3 * M2))
        );
    }

    #[test]
    fn no_pud_block_without_pdpe1gb_or_congruence() {
        let mut g = geo(64 * G, G, 4 * G);
        g.pud_pages = false;
        assert!(
            g.may_split_at(64 * G + G / 2),
            "2 MiB aligned cut, no PUD possible"
        );
        assert_eq!(g.huge_page_across(64 * G + G / 2 + K4), Some(M2));

        // VA and PA congruent modulo 2 MiB, not modulo 1 GiB: PMD blocks only.
        let g = geo(64 * G + M2, G, 4 * G);
        assert_eq!(g.block(65 * G, G), None);
        assert_eq!(g.block(64 * G + M2, M2), Some((64 * G + M2, 4 * G)));
        assert_eq!(g.huge_page_across(64 * G + G / 2 + K4), Some(M2));
    }

    #[test]
    fn cuts_inside_huge_blocks_are_refused() {
        let g = geo(64 * G, 2 * G, 4 * G);
        // The reproduction: 4 KiB at +512 MiB of a PUD-mapped GiB.
        assert_eq!(g.huge_page_across(64 * G + 512 * (1 << 20)), Some(G));
        assert!(!g.may_split_at(64 * G + 512 * (1 << 20) + K4));
        // 2 MiB aligned but inside a PUD block: still refused.
        assert!(!g.may_split_at(64 * G + M2));
        // On the PUD boundary between the two GiB: allowed.
        assert!(g.may_split_at(65 * G));
    }

    #[test]
    fn cuts_inside_pmd_blocks_are_refused_and_4k_regions_may_be_cut() {
        // 16 MiB at a 2 MiB-aligned VA: PMD blocks only.
        let g = geo(64 * G + M2, 16 << 20, 4 * G + M2);
        assert_eq!(g.huge_page_across(64 * G + 3 * M2 + K4), Some(M2));
        assert!(g.may_split_at(64 * G + 3 * M2));
        // Same but VA not congruent to PA modulo 2 MiB: 4 KiB pages only.
        let g = geo(64 * G + M2 + K4, 16 << 20, 4 * G + M2);
        for i in 1..4096 {
            assert!(g.may_split_at(g.vm_start + i * K4), "cut {i}");
        }
    }

    #[test]
    fn blocks_must_lie_inside_the_slice() {
        // The vma maps the last 1 GiB - 4 KiB of a slice at a 1 GiB-aligned VA:
        // the block would run past the slice end.
        let g = MappingGeometry {
            vm_start: 64 * G,
            vm_end: 65 * G - K4,
            offset: K4,
            slice_start: 4 * G - K4,
            slice_size: G,
            pud_pages: true,
        };
        assert_eq!(g.block(64 * G, G), None);
    }

    #[test]
    fn overflowing_geometry_yields_no_block() {
        let g = MappingGeometry {
            vm_start: u64::MAX - G + 1,
            vm_end: u64::MAX,
            offset: u64::MAX - 10,
            slice_start: u64::MAX - G,
            slice_size: u64::MAX,
            pud_pages: true,
        };
        assert_eq!(g.block(u64::MAX - 5, G), None);
        assert_eq!(g.block(u64::MAX - 5, K4), None);
    }

    #[test]
    fn moves_change_the_relation_and_splits_keep_it() {
        let whole = geo(64 * G, 2 * G, 4 * G);
        let upper = MappingGeometry {
            vm_start: 65 * G,
            offset: G,
            ..whole
        };
        assert_eq!(whole.va_minus_offset(), upper.va_minus_offset());
        let moved = MappingGeometry {
            vm_start: 80 * G + K4,
            vm_end: 82 * G + K4,
            ..whole
        };
        assert_ne!(whole.va_minus_offset(), moved.va_minus_offset());
        assert_eq!(whole.range_shared_with(&moved), Some((64 * G, 66 * G)));
        assert_eq!(whole.range_shared_with(&upper), Some((65 * G, 66 * G)));
        let lower = MappingGeometry {
            vm_end: 65 * G,
            ..whole
        };
        assert_eq!(lower.range_shared_with(&upper), None);
        // mremap moves a part of a vma before splitting it: the source's
        // range that the moved part covers is exactly that part.
        let moved_part = MappingGeometry {
            vm_start: 80 * G,
            vm_end: 80 * G + M2,
            offset: 512 * M2,
            ..whole
        };
        assert_eq!(
            whole.range_shared_with(&moved_part),
            Some((64 * G + 512 * M2, 64 * G + 513 * M2))
        );
    }

    #[test]
    fn fault_orders_map_to_page_sizes() {
        assert_eq!(fault_page_size(0, false), Some(K4));
        assert_eq!(fault_page_size(PMD_ORDER, false), Some(M2));
        assert_eq!(fault_page_size(PUD_ORDER, true), Some(G));
        assert_eq!(fault_page_size(PUD_ORDER, false), None);
        for order in [1, 8, 10, 17, 19, 30] {
            assert_eq!(fault_page_size(order, true), None, "order {order}");
        }
    }

    #[test]
    fn faults_insert_the_largest_allowed_block_or_fall_back() {
        let g = geo(64 * G, G, 4 * G);
        let va = 64 * G + 5 * M2 + 3 * K4;
        assert_eq!(
            g.fault(va, PUD_ORDER),
            FaultAction::Insert {
                va: 64 * G,
                pa: 4 * G,
                page: G
            }
        );
        assert_eq!(
            g.fault(va, PMD_ORDER),
            FaultAction::Insert {
                va: 64 * G + 5 * M2,
                pa: 4 * G + 5 * M2,
                page: M2
            }
        );
        assert_eq!(
            g.fault(va, 0),
            FaultAction::Insert {
                va: 64 * G + 5 * M2 + 3 * K4,
                pa: 4 * G + 5 * M2 + 3 * K4,
                page: K4
            }
        );
        assert_eq!(g.fault(va, 3), FaultAction::Fallback);
        let no_pud = MappingGeometry {
            pud_pages: false,
            ..g
        };
        assert_eq!(no_pud.fault(va, PUD_ORDER), FaultAction::Fallback);
        // Not congruent modulo 2 MiB: both huge orders fall back.
        let g = geo(64 * G + K4, G, 4 * G);
        assert_eq!(g.fault(64 * G + M2, PUD_ORDER), FaultAction::Fallback);
        assert_eq!(g.fault(64 * G + 2 * M2, PMD_ORDER), FaultAction::Fallback);
    }

    #[test]
    fn a_fault_past_the_slice_is_sigbus() {
        // The vma is longer than what is left of the slice after its offset.
        let g = MappingGeometry {
            offset: M2,
            ..geo(64 * G, 2 * M2, 4 * G)
        };
        assert_eq!(g.fault(64 * G + M2 + K4, 0), FaultAction::SigBus);
        assert_eq!(g.fault(64 * G + M2 + K4, PMD_ORDER), FaultAction::Fallback);
        assert!(matches!(g.fault(64 * G, 0), FaultAction::Insert { .. }));
    }

    #[test]
    fn mapping_alignment_follows_the_length() {
        assert_eq!(mapping_align(M2 - K4), None);
        assert_eq!(mapping_align(M2), Some(M2));
        assert_eq!(mapping_align(G - K4), Some(M2));
        assert_eq!(mapping_align(G), Some(G));
        assert_eq!(mapping_align(u64::MAX), Some(G));
    }

    /// What [`place_mapping`] asked for and answered.
    fn place(addr: u64, len: u64, fixed: bool, phys: u64, hole: u64) -> (u64, Vec<String>) {
        let calls = std::cell::RefCell::new(Vec::new());
        let at = place_mapping(
            addr,
            len,
            fixed,
            || {
                calls.borrow_mut().push("phys".to_string());
                phys
            },
            |padded| {
                calls.borrow_mut().push(format!("hole {padded:#x}"));
                hole
            },
            || {
                calls.borrow_mut().push("plain".to_string());
                0xdead_0000
            },
        );
        (at, calls.into_inner())
    }

    #[test]
    fn mappings_are_placed_congruent_to_their_physical_address() {
        let base = 0x7f00_1234_5000;
        let (at, calls) = place(0, G, false, 4 * G + 3 * M2, base);
        assert_eq!(calls, ["phys", "hole 0x80000000"]);
        assert_eq!(at % G, 3 * M2);
        assert!(at >= base && at + G <= base + 2 * G);
        let (at, _) = place(0, 4 * M2, false, 4 * G + K4, base);
        assert_eq!(at % M2, K4);
        assert!(at >= base && at + 4 * M2 <= base + 5 * M2);
        // An already congruent hole is used as it is.
        assert_eq!(place(0, G, false, 4 * G, 64 * G).0, 64 * G);
    }

    #[test]
    fn hinted_fixed_and_small_mappings_get_the_default_placement() {
        for (addr, len, fixed) in [(0x1000_0000, G, false), (0, G, true), (0, M2 - K4, false)] {
            let (at, calls) = place(addr, len, fixed, 0, 0);
            assert_eq!(
                (at, calls.as_slice()),
                (0xdead_0000, &["plain".to_string()][..])
            );
        }
    }

    #[test]
    fn failed_or_overflowing_placements_get_the_default_placement() {
        // -ENOMEM from the padded search.
        let (at, calls) = place(0, G, false, 0, (-12i64) as u64);
        assert_eq!((at, calls.len()), (0xdead_0000, 3));
        // The padded length overflows.
        let (at, calls) = place(0, u64::MAX - G + 2, false, 0, 0);
        assert_eq!(at, 0xdead_0000);
        assert_eq!(calls, ["phys", "plain"]);
        // The last address that is not an error value is a hole; the next
        // congruent address would overflow.
        let top = (-4096i64) as u64;
        let (at, calls) = place(0, G, false, 0, top);
        assert_eq!((at, calls.len()), (0xdead_0000, 3));
        // ... unless it is congruent itself.
        let (at, calls) = place(0, M2, false, top % M2, top);
        assert_eq!((at, calls.len()), (top, 2));
    }

    // The tests run only in host-tests, which provides the generator.
    use crate::Lcg;

    #[test]
    fn placed_mappings_fit_their_hole_and_are_congruent() {
        let mut rng = Lcg(0x91ace);
        for _ in 0..5000 {
            let len = (1 + rng.below(3 * G / K4)) * K4;
            let base = rng.below(1 << 35) * K4;
            let phys = rng.below(1 << 40) * K4;
            let mut padded = 0;
            let at = place_mapping(
                0,
                len,
                false,
                || phys,
                |p| {
                    padded = p;
                    base
                },
                || 0,
            );
            match mapping_align(len) {
                None => assert_eq!(at, 0),
                Some(align) => {
                    assert_eq!(padded, len + align);
                    assert_eq!(at % align, phys % align, "{len:#x} {base:#x} {phys:#x}");
                    assert!(at >= base && at + len <= base + padded);
                }
            }
        }
    }

    /// The property that keeps the host safe: a cut is allowed exactly where
    /// no single huge entry that the fault path may insert would map pages on
    /// both sides of it.
    #[test]
    fn allowed_cuts_never_straddle_a_mappable_huge_block() {
        let mut rng = Lcg(0x5eed);
        for _ in 0..2000 {
            let pages = 1 + rng.below(3 * G / K4);
            let len = pages * K4;
            let va_align = [K4, M2, G][rng.below(3) as usize];
            let va = (64 * G + rng.below(4 * G / K4) * K4) / va_align * va_align;
            let slice_size = len + rng.below(G / K4) * K4;
            let offset = rng.below((slice_size - len) / K4 + 1) * K4;
            let pa_align = [K4, M2, G][rng.below(3) as usize];
            let pa = (4 * G + rng.below(G / K4) * K4) / pa_align * pa_align;
            let g = MappingGeometry {
                vm_start: va,
                vm_end: va + len,
                offset,
                slice_start: pa,
                slice_size,
                pud_pages: rng.below(4) != 0,
            };
            for _ in 0..20 {
                let addr = va + rng.below(pages) * K4;
                // A huge entry straddles the cut when one entry would serve
                // faults on both sides of it.
                let straddled = addr > va
                    && [G, M2].iter().any(|&page| {
                        (page != G || g.pud_pages)
                            && g.block(addr, page).is_some()
                            && g.block(addr, page) == g.block(addr - K4, page)
                    });
                assert_eq!(g.may_split_at(addr), !straddled, "{g:?} at {addr:#x}");
            }
        }
    }
}
