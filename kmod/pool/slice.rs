// SPDX-License-Identifier: GPL-2.0

//! A slice: one contiguous, exclusively owned part of the pool.
//!
//! A slice lives in an [`Arc`]: the open file that allocated it holds one
//! reference and every mapping of it another, so it returns to the pool when
//! the file is closed and the last mapping is gone, however the owner ended
//! (including SIGKILL, whose exit closes files and unmaps everything).

use super::Pool;
use kernel::sync::Arc;

/// A slice of the pool.
///
/// # Invariants
///
/// `[start, start + size)` is page aligned, lies inside `pool`, was taken
/// from its free map for this slice alone, and was zeroed before the slice
/// was made. It is given back exactly once, in [`Drop`].
pub(crate) struct Slice {
    pool: Arc<Pool>,
    id: u64,
    start: u64,
    size: u64,
}

impl Slice {
    /// Wraps a range just taken from `pool`'s free map and zeroed. Only the
    /// pool makes slices, so no other code can invent one over a range it
    /// never took.
    pub(super) fn new(pool: Arc<Pool>, id: u64, start: u64, size: u64) -> Self {
        Self {
            pool,
            id,
            start,
            size,
        }
    }

    /// The id shown in `/proc/critmem`.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Physical address of the first byte.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The pool it belongs to.
    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Slice {
    fn drop(&mut self) {
        self.pool.release(self.id, self.start, self.size);
    }
}
