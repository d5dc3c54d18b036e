// SPDX-License-Identifier: GPL-2.0

//! The pool: the boot-time reserved physical range critmem hands out.
//!
//! # Zeroing policy
//!
//! - At load the whole pool counts as dirty (it may hold a previous boot's
//!   data) and freed slices return dirty (they hold a previous VM's data).
//! - A work item on the unbound workqueue for long-running work zeroes dirty free memory in
//!   2 MiB chunks, lowest address first, holding the pool lock for one chunk
//!   at a time, until no dirty free memory is left.
//! - ALLOC places a slice inside already-zeroed memory whenever such a place
//!   exists; then it costs no zeroing at all, only bookkeeping, whatever the
//!   size (it may wait for the one chunk the worker is zeroing).
//! - When no zeroed place fits, ALLOC ([`Zeroing::Synchronous`]) takes a
//!   place that is partly or wholly dirty and zeroes the dirty parts itself
//!   before returning (the slice shows `state=zeroing` meanwhile), holding
//!   no lock: the range is already out of the free map, so nobody else can
//!   reach it. Only a fatal signal stops that (the caller is dying anyway);
//!   what was zeroed goes back to the pool as zeroed.
//! - A first mmap without ALLOC runs under the mmap lock and must not zero
//!   ([`Zeroing::AlreadyZeroedOnly`]): it takes zeroed memory or fails with
//!   `EAGAIN`.
//!
//! So no byte of a slice is ever visible to user space before it was zeroed.
//!
//! # Fair sharing
//!
//! Slices are made of whole granules ([`GRANULE`]), so no caller can leave
//! holes smaller than a 2 MiB page; the free map places small slices away
//! from whole 1 GiB blocks; and `max_bytes_per_uid` caps what one user id
//! holds.

mod slice;

pub(crate) use slice::Slice;

use crate::{
    abi,
    caps::Caps,
    firmware_map,
    freemap::{align_up, FreeMap},
    iomem::{self, IomemClaim, KernelMapping, Overlap},
    layout::{PAGE_SIZE, SZ_1G, SZ_2M},
    sys,
};
use kernel::{
    bindings, new_mutex,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{Arc, Mutex, UniqueArc},
    task::Kuid,
    workqueue::{self, impl_has_work, new_work, Work, WorkItem},
};

/// Bytes zeroed between two checks for rescheduling (and, for ALLOC, for a
/// fatal signal); the background worker holds the pool lock for one chunk.
const ZERO_CHUNK: u64 = 2 << 20;

/// Slices are whole multiples of this, at least this aligned (on a pool
/// whose start is at least this aligned; see [`Pool::granule`]).
pub(crate) const GRANULE: u64 = SZ_2M;

/// Whether an allocation may zero unzeroed memory before returning.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Zeroing {
    /// Yes: the caller holds no lock that others need (ALLOC).
    Synchronous,
    /// No: the caller holds the mmap lock (a first mmap). Only memory
    /// already zeroed may be taken; otherwise `EAGAIN`.
    AlreadyZeroedOnly,
}

/// Who asks for a slice.
#[derive(Clone, Copy)]
pub(crate) struct Owner {
    /// Process (thread group) id, shown in `/proc/critmem`.
    pub(crate) pid: i32,
    /// Effective user id, charged against `max_bytes_per_uid`.
    pub(crate) uid: Kuid,
}

/// Where the pool came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Source {
    /// `reserve_mem=<size>:<align>:critmem`.
    ReserveMem,
    /// `memmap=<size>$<base>` with `critmem.base=`/`critmem.size=`.
    Memmap,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Self::ReserveMem => abi::map_keys::SOURCE_RESERVE_MEM,
            Self::Memmap => abi::map_keys::SOURCE_MEMMAP,
        }
    }

    fn abi(self) -> u32 {
        match self {
            Self::ReserveMem => abi::SOURCE_RESERVE_MEM,
            Self::Memmap => abi::SOURCE_MEMMAP,
        }
    }
}

/// The module parameters that select memmap mode.
pub(crate) struct Params {
    /// `critmem.base=`.
    pub(crate) base: u64,
    /// `critmem.size=`; zero selects reserve_mem mode.
    pub(crate) size: u64,
    /// `critmem.max_bytes_per_uid=`; zero means no limit.
    pub(crate) max_bytes_per_uid: u64,
}

/// What `/proc/critmem` lists per live slice.
struct SliceRecord {
    id: u64,
    start: u64,
    size: u64,
    pid: i32,
    uid: Kuid,
    mappings: u32,
    zeroing: bool,
}

/// The pool's mutable state.
struct PoolState {
    free: FreeMap,
    slices: KVec<SliceRecord>,
    next_id: u64,
    /// Set at unload: the worker stops.
    stopping: bool,
}

/// Figures of the pool at one instant.
pub(crate) struct Figures {
    pub(crate) free: u64,
    pub(crate) free_zeroed: u64,
    pub(crate) largest_free: u64,
    pub(crate) slices: u64,
}

/// The claimed pool.
///
/// # Invariants
///
/// - `[start, start + size)` is page aligned, claimed as "critmem" in
///   `/proc/iomem` by `_claim`, and mapped write-back by `mapping`.
/// - Every byte of it is either in `state.free` or in exactly one live
///   [`Slice`].
#[pin_data]
pub(crate) struct Pool {
    start: u64,
    size: u64,
    source: Source,
    caps: Caps,
    max_bytes_per_uid: u64,
    mapping: KernelMapping,
    _claim: IomemClaim,
    #[pin]
    state: Mutex<PoolState>,
    #[pin]
    zero_work: Work<Pool>,
}

impl_has_work! {
    impl HasWork<Self> for Pool { self.zero_work }
}

impl WorkItem for Pool {
    type Pointer = Arc<Pool>;

    fn run(this: Arc<Pool>) {
        this.zero_free_memory();
    }
}

/// Largest power of two dividing `addr`, capped at 1 GiB.
fn natural_align(addr: u64) -> u64 {
    if addr == 0 {
        SZ_1G
    } else {
        (1u64 << addr.trailing_zeros()).min(SZ_1G)
    }
}

/// Finds and validates the range, logging which boot parameter to fix.
fn locate(params: &Params) -> Result<(u64, u64, Source)> {
    if params.size != 0 || params.base != 0 {
        let (base, size) = (params.base, params.size);
        if base == 0 || size == 0 {
            pr_err!(
                "memmap mode needs both critmem.base= and critmem.size= (got base={base:#x} \
                 size={size:#x}); boot with memmap=<size>$<base> and pass both\n"
            );
            return Err(EINVAL);
        }
        if base % PAGE_SIZE != 0 || size % PAGE_SIZE != 0 {
            pr_err!(
                "critmem.base={base:#x} critmem.size={size:#x} must be 4 KiB multiples; fix them \
                 and the matching memmap=<size>$<base>\n"
            );
            return Err(EINVAL);
        }
        if base.checked_add(size).is_none() {
            pr_err!("critmem.base={base:#x} + critmem.size={size:#x} overflows\n");
            return Err(EINVAL);
        }
        return Ok((base, size, Source::Memmap));
    }
    let Some((start, size)) = iomem::find_reserve_mem() else {
        pr_err!(
            "no memory pool: boot with reserve_mem=<size>:<align>:critmem (for example \
             reserve_mem=4G:1G:critmem), or with memmap=<size>$<base> and load with \
             critmem.base=<base> critmem.size=<size>\n"
        );
        return Err(ENODEV);
    };
    if size == 0 || size % PAGE_SIZE != 0 {
        pr_err!(
            "reserve_mem=...:critmem has size {size:#x}, not a non-zero multiple of 4 KiB; fix \
             <size> in reserve_mem=<size>:<align>:critmem\n"
        );
        return Err(EINVAL);
    }
    if start % PAGE_SIZE != 0 {
        pr_err!(
            "reserve_mem=...:critmem starts at {start:#x}, not 4 KiB aligned; use an <align> of \
             at least 4K (2M or 1G recommended) in reserve_mem=<size>:<align>:critmem\n"
        );
        return Err(EINVAL);
    }
    Ok((start, size, Source::ReserveMem))
}

/// memmap mode takes only what the firmware described as RAM. A range the
/// firmware reserved itself (ACPI tables, EFI runtime memory, a ROM) is
/// "Reserved" in `/proc/iomem` exactly as a `memmap=` reservation is, and
/// zeroing it at load would destroy what the firmware keeps there.
fn check_firmware_ram(start: u64, size: u64) -> Result {
    let mut entries = KVec::new();
    match iomem::firmware_map(&mut entries) {
        Ok(()) => {}
        Err(e) if e == ENOENT => {
            pr_err!(
                "memmap mode needs the firmware's memory map to check that critmem.base={start:#x} \
                 critmem.size={size:#x} is RAM, and this kernel has none (/sys/firmware/memmap, \
                 CONFIG_FIRMWARE_MEMMAP); use reserve_mem=<size>:<align>:critmem instead\n"
            );
            return Err(ENODEV);
        }
        Err(e) => {
            pr_err!("cannot read the firmware's memory map (/sys/firmware/memmap): {e:?}\n");
            return Err(e);
        }
    }
    let Some(not_ram) = firmware_map::first_not_ram(&entries, start, size) else {
        return Ok(());
    };
    let what = if not_ram.hole {
        "not described by the firmware at all"
    } else {
        "not RAM in the firmware's memory map (/sys/firmware/memmap)"
    };
    pr_err!(
        "critmem.base={start:#x} critmem.size={size:#x}: [{:#x}-{:#x}] is {what}; memmap mode \
         takes only RAM that memmap=<size>$<base> reserved: move the range into RAM the firmware \
         reports (BIOS-e820 'usable' in dmesg), or use reserve_mem=<size>:<align>:critmem\n",
        not_ram.start,
        not_ram.end_inclusive
    );
    Err(EINVAL)
}

/// Claims `[start, start + size)` in `/proc/iomem` after checking that it is
/// what its source says it is.
fn claim(start: u64, size: u64, source: Source) -> Result<IomemClaim> {
    let end = start + size - 1;
    match source {
        Source::ReserveMem => {
            if iomem::system_ram_overlap(start, size) != Overlap::Inside {
                pr_err!(
                    "reserve_mem pool [{start:#x}-{end:#x}] is not entirely System RAM; fix \
                     reserve_mem=<size>:<align>:critmem\n"
                );
                return Err(EINVAL);
            }
            if let Some((s, e)) = iomem::busy_claim(start, size) {
                pr_err!(
                    "reserve_mem pool [{start:#x}-{end:#x}] overlaps the claimed resource \
                     [{s:#x}-{e:#x}] (see /proc/iomem); fix reserve_mem=<size>:<align>:critmem\n"
                );
                return Err(EBUSY);
            }
            IomemClaim::insert_into_ram(start, size).inspect_err(|e| {
                pr_err!("cannot claim [{start:#x}-{end:#x}] in /proc/iomem: {e:?}\n")
            })
        }
        Source::Memmap => {
            if iomem::system_ram_overlap(start, size) != Overlap::Disjoint {
                pr_err!(
                    "critmem.base={start:#x} critmem.size={size:#x} covers System RAM; reserve \
                     it at boot with memmap={size:#x}${start:#x} (in GRUB write $ as \\\\\\$)\n"
                );
                return Err(EINVAL);
            }
            check_firmware_ram(start, size)?;
            let reserved = iomem::e820_reserved_bytes(start, size);
            if reserved != size {
                pr_err!(
                    "critmem.base={start:#x} critmem.size={size:#x}: only {reserved:#x} bytes \
                     are E820-reserved; boot with memmap={size:#x}${start:#x} covering the whole \
                     range\n"
                );
                return Err(EINVAL);
            }
            if let Some((s, e)) = iomem::busy_claim(start, size) {
                pr_err!(
                    "critmem.base={start:#x} critmem.size={size:#x} overlaps the claimed \
                     resource [{s:#x}-{e:#x}] (see /proc/iomem); fix memmap= and \
                     critmem.base=/critmem.size=\n"
                );
                return Err(EBUSY);
            }
            IomemClaim::request(start, size).inspect_err(|_| {
                pr_err!(
                    "[{start:#x}-{end:#x}] is already claimed (see /proc/iomem); fix memmap= \
                     and critmem.base=/critmem.size=\n"
                )
            })
        }
    }
}

impl Pool {
    /// Finds, validates and claims the pool. Zeroing starts with
    /// [`Pool::start_zeroing`].
    pub(crate) fn claim(params: &Params, caps: Caps) -> Result<Arc<Self>> {
        let (start, size, source) = locate(params)?;
        let claim = claim(start, size, source)?;
        let mapping = KernelMapping::new(start, size).inspect_err(|_| {
            pr_err!(
                "cannot map [{start:#x}-{:#x}] write-back\n",
                start + size - 1
            )
        })?;
        let free = FreeMap::new(start, start + size)?;
        Arc::pin_init(
            try_pin_init!(Pool {
                start,
                size,
                source,
                caps,
                max_bytes_per_uid: params.max_bytes_per_uid,
                mapping,
                _claim: claim,
                state <- new_mutex!(PoolState {
                    free,
                    slices: KVec::new(),
                    next_id: 1,
                    stopping: false,
                }),
                zero_work <- new_work!("critmem::Pool::zero_work"),
            }),
            GFP_KERNEL,
        )
    }

    /// Physical address of the first byte.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Where the pool came from, as named in `/proc/critmem`.
    pub(crate) fn source_name(&self) -> &'static str {
        self.source.name()
    }

    /// Page sizes usable for mappings.
    pub(crate) fn caps(&self) -> Caps {
        self.caps
    }

    /// Queues the background zeroer.
    pub(crate) fn start_zeroing(self: &Arc<Self>) {
        // SAFETY: `system_dfl_long_wq` (unbound, for long-running items) is
        // created at boot and never destroyed, so valid for `'static`.
        let queue = unsafe { workqueue::Queue::from_raw(bindings::system_dfl_long_wq) };
        // An `Err` means it is already queued, which is just as good.
        let _ = queue.enqueue(self.clone());
    }

    /// Stops the background zeroer and waits for it. Nothing may queue it
    /// afterwards (no slice may be live).
    pub(crate) fn stop_zeroing(&self) {
        self.state.lock().stopping = true;
        // SAFETY: `zero_work` is an initialised work item inside `self`,
        // which outlives this call; `flush_work` only waits for it.
        unsafe { bindings::flush_work(Work::raw_get(&raw const self.zero_work)) };
    }

    /// The worker: zeroes dirty free memory chunk by chunk.
    fn zero_free_memory(&self) {
        loop {
            let mut st = self.state.lock();
            if st.stopping {
                return;
            }
            let Some((start, end)) = st.free.next_dirty(ZERO_CHUNK) else {
                return;
            };
            // The range stays free while the lock is held, so nobody can
            // take it half zeroed; it is marked only once it was zeroed.
            if self.mapping.zero(start, end - start).is_err()
                || st.free.mark_zeroed(start, end).is_err()
            {
                // Out of memory for bookkeeping: leave the rest to ALLOC's
                // synchronous zeroing and the next release.
                return;
            }
            drop(st);
            sys::cond_resched();
        }
    }

    /// Zeroes the `dirty` ranges of a range being allocated, which the caller
    /// owns, in chunks, with no lock held. On a fatal signal it stops and
    /// returns the ranges still dirty, in order.
    fn zero_owned(&self, dirty: &[(u64, u64)]) -> Result<(), KVec<(u64, u64)>> {
        for (i, &(start, end)) in dirty.iter().enumerate() {
            let mut at = start;
            while at < end {
                let next = end.min(at + ZERO_CHUNK);
                if sys::fatal_signal_pending() || self.mapping.zero(at, next - at).is_err() {
                    let mut left = KVec::new();
                    // On allocation failure `left` stays short and the whole
                    // range goes back dirty instead (see `abandon`).
                    if left.reserve(dirty.len() - i, GFP_KERNEL).is_ok() {
                        let _ = left.push_within_capacity((at, end));
                        for &r in &dirty[i + 1..] {
                            let _ = left.push_within_capacity(r);
                        }
                        return Err(left);
                    }
                    return Err(KVec::new());
                }
                at = next;
                sys::cond_resched();
            }
        }
        Ok(())
    }

    /// The granule of this pool: [`GRANULE`], or less on a pool whose start
    /// is less aligned (its first granule would otherwise be lost).
    fn granule(&self) -> u64 {
        GRANULE.min(natural_align(self.start))
    }

    /// Hands out a zeroed slice of at least `size` bytes (rounded up to the
    /// granule) whose start is aligned to `align` (at least the granule),
    /// for `owner`.
    ///
    /// Errors, each leaving the pool as it was: `EINVAL` for a size that is
    /// zero, not a 4 KiB multiple or larger than the pool, or an alignment
    /// that is not a power of two; `ENOMEM` when no free range fits;
    /// `EAGAIN` when only unzeroed memory fits and `zeroing` forbids zeroing
    /// it; `EDQUOT` when the owner's user id would hold more than
    /// `max_bytes_per_uid`; `EINTR` when a fatal signal stopped the zeroing.
    pub(crate) fn alloc(
        self: &Arc<Self>,
        size: u64,
        align: u64,
        owner: Owner,
        zeroing: Zeroing,
    ) -> Result<Arc<Slice>> {
        if size == 0 || size % PAGE_SIZE != 0 || size > self.size {
            return Err(EINVAL);
        }
        let granule = self.granule();
        let align = match align {
            0 => granule,
            a if a.is_power_of_two() => a.max(granule),
            _ => return Err(EINVAL),
        };
        // Cannot overflow: `size <= self.size`, a 4 KiB multiple below 2^64.
        let size = align_up(size, granule).ok_or(ENOMEM)?;
        // Allocated before taking memory, so nothing can fail afterwards.
        let slot = UniqueArc::new_uninit(GFP_KERNEL)?;
        let mut dirty = KVec::new();
        let (start, id) = {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let fit = st.free.find(size, align).ok_or(ENOMEM)?;
            if zeroing == Zeroing::AlreadyZeroedOnly && !fit.zeroed {
                return Err(EAGAIN);
            }
            if self.max_bytes_per_uid != 0 {
                let held: u64 = st
                    .slices
                    .iter()
                    .filter(|r| r.uid == owner.uid)
                    .map(|r| r.size)
                    .sum();
                if held.saturating_add(size) > self.max_bytes_per_uid {
                    return Err(sys::edquot());
                }
            }
            st.slices.reserve(1, GFP_KERNEL)?;
            st.free.take(fit.at, size, &mut dirty)?;
            let id = st.next_id;
            st.next_id += 1;
            // Cannot fail: reserved above.
            let _ = st.slices.push_within_capacity(SliceRecord {
                id,
                start: fit.at,
                size,
                pid: owner.pid,
                uid: owner.uid,
                mappings: 0,
                zeroing: !dirty.is_empty(),
            });
            (fit.at, id)
        };
        if !dirty.is_empty() {
            // No lock is held here: the range is out of the free map, so
            // neither the worker nor another ALLOC can reach it.
            if let Err(still_dirty) = self.zero_owned(&dirty) {
                self.abandon(id, start, size, &still_dirty);
                return Err(EINTR);
            }
            if let Some(r) = self.state.lock().slices.iter_mut().find(|r| r.id == id) {
                r.zeroing = false;
            }
        }
        // INVARIANT: `[start, start + size)` left the free map above, belongs
        // to this slice alone and is zeroed now.
        Ok(slot.write(Slice::new(self.clone(), id, start, size)).into())
    }

    /// Gives back a range whose zeroing was stopped, keeping the zeroed
    /// part zeroed: `still_dirty` lists the parts not zeroed (empty if that
    /// list could not be made, and then the whole range counts as dirty).
    fn abandon(self: &Arc<Self>, id: u64, start: u64, size: u64, still_dirty: &[(u64, u64)]) {
        {
            let mut st = self.state.lock();
            if still_dirty.is_empty() {
                st.free.give_back(start, size);
            } else {
                st.free.give_back_partly_zeroed(start, size, still_dirty);
            }
            st.slices.retain(|r| r.id != id);
        }
        self.start_zeroing();
    }

    /// Returns a dropped slice's range to the pool and queues its zeroing.
    pub(crate) fn release(self: &Arc<Self>, id: u64, start: u64, size: u64) {
        {
            let mut st = self.state.lock();
            st.free.give_back(start, size);
            st.slices.retain(|r| r.id != id);
        }
        self.start_zeroing();
    }

    /// Counts a mapping of slice `id` made (`+1`) or gone (`-1`).
    pub(crate) fn note_mapping(&self, id: u64, delta: i32) {
        if let Some(r) = self.state.lock().slices.iter_mut().find(|r| r.id == id) {
            r.mappings = r.mappings.saturating_add_signed(delta);
        }
    }

    /// The pool's figures.
    pub(crate) fn figures(&self) -> Figures {
        let st = self.state.lock();
        Figures {
            free: st.free.free_bytes(),
            free_zeroed: st.free.zeroed_bytes(),
            largest_free: st.free.largest_free(),
            slices: st.slices.len() as u64,
        }
    }

    /// Fills the pool part of an INFO reply.
    pub(crate) fn info(&self) -> abi::PoolInfo {
        let f = self.figures();
        abi::PoolInfo {
            abi_version: abi::ABI_VERSION,
            source: self.source.abi(),
            pool_start: self.start,
            pool_size: self.size,
            pool_align: natural_align(self.start),
            free_bytes: f.free,
            free_zeroed_bytes: f.free_zeroed,
            largest_free: f.largest_free,
            slice_count: f.slices,
            ..Default::default()
        }
    }

    /// Writes `/proc/critmem` (format in `kmod/README.md`).
    pub(crate) fn write_map_file(&self, m: &SeqFile) {
        use abi::map_keys as k;
        let st = self.state.lock();
        seq_print!(m, "{}={}\n", k::VERSION, abi::ABI_VERSION);
        seq_print!(m, "{}={}\n", k::SOURCE, self.source.name());
        seq_print!(m, "{}={:#x}\n", k::START, self.start);
        seq_print!(
            m,
            "{}={:#x}\n",
            k::END_INCLUSIVE,
            self.start + self.size - 1
        );
        seq_print!(m, "{}={}\n", k::SIZE, self.size);
        seq_print!(m, "{}={}\n", k::ALIGN, natural_align(self.start));
        seq_print!(m, "{}={}\n", k::FREE, st.free.free_bytes());
        seq_print!(m, "{}={}\n", k::FREE_ZEROED, st.free.zeroed_bytes());
        seq_print!(m, "{}={}\n", k::LARGEST_FREE_1G, st.free.largest_free_1g());
        seq_print!(m, "{}={}\n", k::SLICES, st.slices.len());
        for r in st.slices.iter() {
            let state = if r.zeroing {
                k::SLICE_STATE_ZEROING
            } else if r.mappings > 0 {
                k::SLICE_STATE_MAPPED
            } else {
                k::SLICE_STATE_ALLOCATED
            };
            seq_print!(
                m,
                "{}=id={} start={:#x} end_inclusive={:#x} size={} pid={} state={}\n",
                k::SLICE,
                r.id,
                r.start,
                r.start + r.size - 1,
                r.size,
                r.pid,
                state
            );
        }
    }
}
