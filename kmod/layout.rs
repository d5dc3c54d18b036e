// SPDX-License-Identifier: GPL-2.0

//! Page sizes, and the geometry of one mapping of a slice: which page may map
//! an address, and where the mapping may be cut.
//!
//! This is pure arithmetic with no kernel calls, so that the build machine's
//! `cargo test` checks it (`kmod/host-tests` compiles this file through
//! `#[path]`). `vma.rs` is the unsafe glue that applies it.
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

    /// A tiny deterministic generator, so the property below needs no crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
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
