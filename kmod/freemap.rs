// SPDX-License-Identifier: GPL-2.0

//! Free-space bookkeeping of the pool.
//!
//! The free part of the pool is a sorted list of page-aligned extents, each
//! either known to be zeroed or possibly holding old data ("dirty"). Slices
//! are carved out of it and given back as dirty; the background zeroer turns
//! dirty extents into zeroed ones.
//!
//! Nothing here touches the memory itself: this is pure bookkeeping, guarded
//! by the pool's lock.

use crate::layout::{PAGE_SIZE, SZ_1G};
use kernel::prelude::*;

/// A free physical range `[start, end)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extent {
    /// First byte.
    pub(crate) start: u64,
    /// One past the last byte.
    pub(crate) end: u64,
    /// Whether every byte of the range is known to read zero.
    pub(crate) zeroed: bool,
}

impl Extent {
    fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two), or `None` on
/// overflow.
pub(crate) fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// Where `size` bytes aligned to `align` fit first in `[start, end)`.
fn fit(start: u64, end: u64, size: u64, align: u64) -> Option<u64> {
    let at = align_up(start, align)?;
    (at.checked_add(size)? <= end).then_some(at)
}

/// Where `size` bytes aligned to `align` fit last in `[start, end)`.
fn fit_high(start: u64, end: u64, size: u64, align: u64) -> Option<u64> {
    let at = end.checked_sub(size)? & !(align - 1);
    (at >= start).then_some(at)
}

/// The whole 1 GiB-aligned 1 GiB blocks inside `[start, end)`, as the range
/// `[first, last)` they cover (empty when `first >= last`).
fn whole_blocks(start: u64, end: u64) -> (u64, u64) {
    (
        align_up(start, SZ_1G).unwrap_or(u64::MAX),
        end & !(SZ_1G - 1),
    )
}

/// A place chosen by [`FreeMap::find`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fit {
    /// First byte of the place.
    pub(crate) at: u64,
    /// Whether every byte of the place is already zeroed, so handing it out
    /// needs no zeroing.
    pub(crate) zeroed: bool,
}

/// The free extents of the pool.
///
/// # Invariants
///
/// - `extents` is sorted by `start`; extents are non-empty, page aligned and
///   do not overlap.
/// - Two touching extents (`a.end == b.start`) differ in `zeroed`.
/// - `extents` has spare capacity for at least `taken + 1` more elements,
///   where `taken` counts ranges handed out by [`FreeMap::take`] and not yet
///   returned by [`FreeMap::give_back`] or
///   [`FreeMap::give_back_partly_zeroed`]. So `give_back`, which runs when a
///   slice is dropped and cannot fail, never allocates.
pub(crate) struct FreeMap {
    extents: KVec<Extent>,
    taken: usize,
}

impl FreeMap {
    /// A map whose whole range `[start, end)` is free and dirty: at load the
    /// pool may hold a previous boot's data.
    pub(crate) fn new(start: u64, end: u64) -> Result<Self> {
        let mut extents = KVec::with_capacity(8, GFP_KERNEL)?;
        extents.push(
            Extent {
                start,
                end,
                zeroed: false,
            },
            GFP_KERNEL,
        )?;
        // INVARIANT: one extent, capacity 8 >= 1 + 0 + 1.
        Ok(Self { extents, taken: 0 })
    }

    /// Bytes owned by no slice.
    pub(crate) fn free_bytes(&self) -> u64 {
        self.extents.iter().map(Extent::len).sum()
    }

    /// Free bytes known to be zeroed.
    pub(crate) fn zeroed_bytes(&self) -> u64 {
        self.extents
            .iter()
            .filter(|e| e.zeroed)
            .map(Extent::len)
            .sum()
    }

    /// The maximal runs of touching extents, as index ranges into `extents`.
    fn runs(&self) -> impl Iterator<Item = core::ops::Range<usize>> + '_ {
        let mut next = 0;
        core::iter::from_fn(move || {
            let first = next;
            if first >= self.extents.len() {
                return None;
            }
            next += 1;
            while next < self.extents.len()
                && self.extents[next - 1].end == self.extents[next].start
            {
                next += 1;
            }
            Some(first..next)
        })
    }

    /// The free range `[start, end)` that the run `run` covers.
    fn run_bounds(&self, run: &core::ops::Range<usize>) -> (u64, u64) {
        (self.extents[run.start].start, self.extents[run.end - 1].end)
    }

    /// Largest contiguous free range in bytes.
    pub(crate) fn largest_free(&self) -> u64 {
        self.runs()
            .map(|run| {
                let (start, end) = self.run_bounds(&run);
                end - start
            })
            .max()
            .unwrap_or(0)
    }

    /// Bytes of the largest contiguous free range made of whole 1 GiB-aligned
    /// 1 GiB blocks (0 if no such block is free): the largest slice that can
    /// still be mapped with 1 GiB pages only.
    pub(crate) fn largest_free_1g(&self) -> u64 {
        self.runs()
            .map(|run| {
                let (start, end) = self.run_bounds(&run);
                let (first, last) = whole_blocks(start, end);
                last.saturating_sub(first)
            })
            .max()
            .unwrap_or(0)
    }

    /// Finds a place for `size` bytes aligned to `align` (a power of two, at
    /// least [`PAGE_SIZE`]), or `None` if no free range can hold it.
    ///
    /// The policy keeps whole 1 GiB-aligned 1 GiB blocks free for as long as
    /// possible, so that one user handing out many small, widely aligned
    /// slices (for example from many open files) cannot leave every other
    /// user without a 1 GiB page. Among the candidate places, in this order
    /// of importance, it prefers:
    ///
    /// 1. one that is entirely zeroed, so that ALLOC costs no zeroing. This
    ///    wins even over breaking a whole block: a dirty place would be
    ///    zeroed synchronously, inside the caller's ALLOC. The background
    ///    zeroer runs after every release, so freed holes are soon zeroed
    ///    and compete again;
    /// 2. the one that leaves the most whole free 1 GiB blocks, i.e. that
    ///    overlaps the fewest blocks all of whose bytes are free (zeroed or
    ///    dirty);
    /// 3. the smallest containing free run (best fit), keeping large runs for
    ///    large slices;
    /// 4. the lowest address.
    ///
    /// The candidates are, in every free run and in every zeroed extent, the
    /// lowest aligned place, and for slices smaller than 1 GiB also the
    /// highest aligned place (aligned down from the range's end). A small
    /// slice therefore goes to an edge of a run, into a block that is already
    /// broken when one is, rather than into the middle of a run, where it
    /// would break a block that a place at an edge leaves whole. The lowest
    /// place of any range that can hold the slice fits, so `None` means no
    /// free range can.
    pub(crate) fn find(&self, size: u64, align: u64) -> Option<Fit> {
        // Compared as a tuple: not zeroed, blocks broken, run length, address.
        let mut best: Option<((bool, u64, u64, u64), Fit)> = None;
        for run in self.runs() {
            let (run_start, run_end) = self.run_bounds(&run);
            let (first_block, last_block) = whole_blocks(run_start, run_end);
            let mut consider = |at: u64| {
                let end = at + size;
                let zeroed = self.extents[run.clone()]
                    .iter()
                    .any(|e| e.zeroed && e.start <= at && end <= e.end);
                let lo = first_block.max(at & !(SZ_1G - 1));
                let hi = last_block.min(align_up(end, SZ_1G).unwrap_or(u64::MAX));
                let broken = hi.saturating_sub(lo) / SZ_1G;
                let key = (!zeroed, broken, run_end - run_start, at);
                if best.is_none_or(|(best_key, _)| key < best_key) {
                    best = Some((key, Fit { at, zeroed }));
                }
            };
            let mut consider_range = |start: u64, end: u64| {
                if let Some(at) = fit(start, end, size, align) {
                    consider(at);
                    if size < SZ_1G {
                        if let Some(high) = fit_high(start, end, size, align) {
                            consider(high);
                        }
                    }
                }
            };
            consider_range(run_start, run_end);
            for e in self.extents[run.clone()].iter().filter(|e| e.zeroed) {
                consider_range(e.start, e.end);
            }
        }
        best.map(|(_, fit)| fit)
    }

    /// Index of the first extent ending after `addr`.
    fn first_ending_after(&self, addr: u64) -> usize {
        self.extents
            .iter()
            .position(|e| e.end > addr)
            .unwrap_or(self.extents.len())
    }

    /// Merges touching extents of the same state. Only removes elements.
    fn coalesce(&mut self) {
        let mut i = 1;
        while i < self.extents.len() {
            let (prev, cur) = (self.extents[i - 1], self.extents[i]);
            if prev.end == cur.start && prev.zeroed == cur.zeroed {
                self.extents[i - 1].end = cur.end;
                // Cannot fail: `i` is in bounds.
                let _ = self.extents.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Removes `[start, start + size)`, which [`FreeMap::find`] returned, from
    /// the free space and appends its dirty parts to `dirty`.
    ///
    /// Either everything or nothing changes: the allocations this needs are
    /// made before the map is touched, and their failure is `ENOMEM`.
    pub(crate) fn take(&mut self, start: u64, size: u64, dirty: &mut KVec<(u64, u64)>) -> Result {
        let end = start.checked_add(size).ok_or(EINVAL)?;
        let first = self.first_ending_after(start);
        let mut last = first;
        let mut covered = 0;
        let mut dirty_parts = 0;
        while last < self.extents.len() && self.extents[last].start < end {
            let e = self.extents[last];
            covered += e.end.min(end) - e.start.max(start);
            dirty_parts += usize::from(!e.zeroed);
            last += 1;
        }
        if covered != size {
            // Not entirely free: a caller bug, refuse rather than corrupt.
            return Err(EINVAL);
        }
        // One split adds at most one extent; keep the invariant's spare for
        // this range's own give_back and the one after it.
        self.extents.reserve(self.taken + 3, GFP_KERNEL)?;
        dirty.reserve(dirty_parts, GFP_KERNEL)?;

        let head = self.extents[first];
        let tail = self.extents[last - 1];
        for e in &self.extents[first..last] {
            if !e.zeroed {
                // Cannot fail: reserved above.
                let _ = dirty.push_within_capacity((e.start.max(start), e.end.min(end)));
            }
        }
        for _ in first..last {
            // Cannot fail: `first` is in bounds.
            let _ = self.extents.remove(first);
        }
        let mut at = first;
        if head.start < start {
            // Cannot fail: capacity reserved above.
            let _ = self.extents.insert_within_capacity(
                at,
                Extent {
                    start: head.start,
                    end: start,
                    zeroed: head.zeroed,
                },
            );
            at += 1;
        }
        if tail.end > end {
            // Cannot fail: capacity reserved above.
            let _ = self.extents.insert_within_capacity(
                at,
                Extent {
                    start: end,
                    end: tail.end,
                    zeroed: tail.zeroed,
                },
            );
        }
        // INVARIANT: at most one element was added against `taken + 3` spare.
        self.taken += 1;
        Ok(())
    }

    /// Returns `[start, start + size)`, earlier removed by [`FreeMap::take`],
    /// as dirty free space. Never allocates.
    pub(crate) fn give_back(&mut self, start: u64, size: u64) {
        let at = self.first_ending_after(start);
        let extent = Extent {
            start,
            end: start + size,
            zeroed: false,
        };
        if self.extents.insert_within_capacity(at, extent).is_err() {
            // Unreachable by the type invariant; losing a range is the only
            // safe reaction.
            pr_err!("free map out of capacity, {size} bytes at {start:#x} lost\n");
            return;
        }
        self.taken = self.taken.saturating_sub(1);
        self.coalesce();
    }

    /// Returns `[start, start + size)`, earlier removed by [`FreeMap::take`],
    /// whose parts outside `dirty` are known to be zeroed: a synchronous
    /// zeroing that stopped half way. `dirty` is sorted, non-overlapping,
    /// page aligned and inside the range.
    ///
    /// Never fails: if room for the extra extents cannot be reserved, or
    /// `dirty` breaks its rules, the whole range comes back dirty, as
    /// [`FreeMap::give_back`] returns it (zeroed memory counted as dirty
    /// only costs a second zeroing).
    pub(crate) fn give_back_partly_zeroed(&mut self, start: u64, size: u64, dirty: &[(u64, u64)]) {
        let Some(end) = start.checked_add(size) else {
            return self.give_back(start, size);
        };
        // Pieces alternate zeroed, dirty, zeroed, ...; empty ones are skipped.
        let mut pieces = 0;
        let mut cursor = start;
        for &(s, e) in dirty {
            if s < cursor || e < s || e > end || s % PAGE_SIZE != 0 || e % PAGE_SIZE != 0 {
                pr_err!("bad dirty list for the range at {start:#x}, returned all dirty\n");
                return self.give_back(start, size);
            }
            pieces += usize::from(cursor < s) + usize::from(s < e);
            cursor = e;
        }
        pieces += usize::from(cursor < end);
        // After `pieces` insertions `taken - 1 + 1` must stay spare.
        if self
            .extents
            .reserve(self.taken + pieces, GFP_KERNEL)
            .is_err()
        {
            return self.give_back(start, size);
        }
        let mut at = self.first_ending_after(start);
        let mut cursor = start;
        let mut insert = |s: u64, e: u64, zeroed: bool, at: &mut usize| {
            if s < e {
                // Cannot fail: capacity reserved above.
                let _ = self.extents.insert_within_capacity(
                    *at,
                    Extent {
                        start: s,
                        end: e,
                        zeroed,
                    },
                );
                *at += 1;
            }
        };
        for &(s, e) in dirty {
            insert(cursor, s, true, &mut at);
            insert(s, e, false, &mut at);
            cursor = e;
        }
        insert(cursor, end, true, &mut at);
        // INVARIANT: `pieces` elements were added against `taken + pieces`
        // spare, so `taken` remain for the `taken - 1` ranges still out;
        // coalescing only removes.
        self.taken = self.taken.saturating_sub(1);
        self.coalesce();
    }

    /// The first dirty free range, cut to at most `chunk` bytes (a power of
    /// two) ending on a `chunk` boundary.
    pub(crate) fn next_dirty(&self, chunk: u64) -> Option<(u64, u64)> {
        let e = self.extents.iter().find(|e| !e.zeroed)?;
        let boundary = align_up(e.start + 1, chunk).unwrap_or(e.end);
        Some((e.start, e.end.min(boundary)))
    }

    /// Records that `[start, end)`, a part of one dirty free extent, is now
    /// zeroed. Fails with `ENOMEM`, changing nothing, if the split cannot be
    /// made room for.
    pub(crate) fn mark_zeroed(&mut self, start: u64, end: u64) -> Result {
        let i = self.first_ending_after(start);
        let e = *self.extents.get(i).ok_or(EINVAL)?;
        if e.zeroed || e.start > start || e.end < end {
            return Err(EINVAL);
        }
        self.extents.reserve(self.taken + 3, GFP_KERNEL)?;
        // Cannot fail: `i` is in bounds.
        let _ = self.extents.remove(i);
        let mut at = i;
        for piece in [
            Extent {
                start: e.start,
                end: start,
                zeroed: false,
            },
            Extent {
                start,
                end,
                zeroed: true,
            },
            Extent {
                start: end,
                end: e.end,
                zeroed: false,
            },
        ] {
            if piece.start < piece.end {
                // Cannot fail: capacity reserved above.
                let _ = self.extents.insert_within_capacity(at, piece);
                at += 1;
            }
        }
        // INVARIANT: at most two elements were added against `taken + 3`
        // spare, and coalescing only removes.
        self.coalesce();
        Ok(())
    }
}

#[cfg(test)]
#[path = "host-tests/src/freemap_tests.rs"]
mod tests;
