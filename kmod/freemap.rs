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

/// A place [`FreeMap::find`] found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fit {
    /// Its first byte.
    pub(crate) at: u64,
    /// Whether every byte of it is already zeroed.
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
///   returned by [`FreeMap::give_back`]. So `give_back`, which runs when a
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

    /// Calls `f` with each maximal run of touching extents, as `[start, end)`.
    fn for_each_run(&self, mut f: impl FnMut(u64, u64)) {
        let mut run: Option<(u64, u64)> = None;
        for e in self.extents.iter() {
            run = match run {
                Some((s, end)) if end == e.start => Some((s, e.end)),
                Some((s, end)) => {
                    f(s, end);
                    Some((e.start, e.end))
                }
                None => Some((e.start, e.end)),
            };
        }
        if let Some((s, end)) = run {
            f(s, end);
        }
    }

    /// Largest contiguous free range in bytes.
    pub(crate) fn largest_free(&self) -> u64 {
        let mut largest = 0;
        self.for_each_run(|s, e| largest = largest.max(e - s));
        largest
    }

    /// Finds a place for `size` bytes aligned to `align` (a power of two, at
    /// least [`PAGE_SIZE`](crate::layout::PAGE_SIZE)).
    ///
    /// Prefers a place that is already entirely zeroed, so that ALLOC costs
    /// no zeroing; among candidates, it takes the smallest free range that
    /// fits (best fit), keeping large aligned ranges for large slices.
    pub(crate) fn find(&self, size: u64, align: u64) -> Option<Fit> {
        let mut best: Option<(u64, u64)> = None;
        let consider = |best: &mut Option<(u64, u64)>, start: u64, end: u64| {
            if let Some(at) = fit(start, end, size, align) {
                if best.is_none_or(|(len, _)| end - start < len) {
                    *best = Some((end - start, at));
                }
            }
        };
        for e in self.extents.iter().filter(|e| e.zeroed) {
            consider(&mut best, e.start, e.end);
        }
        if let Some((_, at)) = best {
            return Some(Fit { at, zeroed: true });
        }
        self.for_each_run(|s, e| consider(&mut best, s, e));
        best.map(|(_, at)| Fit { at, zeroed: false })
    }

    /// Bytes of the largest free run made of whole 1 GiB-aligned blocks.
    pub(crate) fn largest_free_1g(&self) -> u64 {
        const SZ_1G: u64 = 1 << 30;
        let mut largest = 0;
        self.for_each_run(|s, e| {
            if let Some(first) = align_up(s, SZ_1G) {
                let last = e & !(SZ_1G - 1);
                largest = largest.max(last.saturating_sub(first));
            }
        });
        largest
    }

    /// Returns `[start, start + size)`, earlier removed by [`FreeMap::take`],
    /// with only the `dirty` parts (sorted, inside the range) unzeroed.
    /// Never fails: without room for the extra extents the whole range
    /// counts as dirty.
    pub(crate) fn give_back_partly_zeroed(&mut self, start: u64, size: u64, dirty: &[(u64, u64)]) {
        self.give_back(start, size);
        let mut at = start;
        for &(s, e) in Iterator::chain(dirty.iter(), core::iter::once(&(start + size, start + size))) {
            if at < s {
                // Failure leaves that part dirty, which is only slower.
                let _ = self.mark_zeroed(at, s);
            }
            at = at.max(e);
        }
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
