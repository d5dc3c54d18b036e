//! Guest RAM: what backs it on the host, and how it is shown to KVM.
//!
//! Guest RAM is always one contiguous host mapping (a [`HostMapping`]),
//! split into KVM memslots by [`layout::ram_ranges`] around the MMIO hole.
//! Three backings exist, one module each:
//! - [`anonymous`]: a normal VM. Private anonymous memory, reserved lazily.
//! - [`hugetlb`]: a normal VM on hugetlbfs pages (`--hugepages 2M|1G`).
//! - [`critmem`]: a critical VM (`--critical-mem`). A contiguous physical
//!   slice of the critmem pool, allocated from `/dev/critmem` and mapped at
//!   a 1 GiB-aligned host address so KVM can use 1 GiB stage-2 pages.

pub mod anonymous;
pub mod critmem;
pub mod hugetlb;
pub mod prefault;

use std::fmt;

use critmem_abi::client::Device;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use crate::arch::x86_64::layout::{self, RamRange};
use crate::config::{MemorySpec, VmConfig};

/// Errors setting up guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The anonymous mapping could not be created.
    #[error(transparent)]
    Anonymous(#[from] anonymous::AnonymousError),
    /// The critmem slice could not be obtained or mapped.
    #[error(transparent)]
    Critmem(#[from] critmem::CritmemError),
    /// The hugetlb mapping could not be created.
    #[error(transparent)]
    Hugetlb(#[from] hugetlb::HugetlbError),
    /// `--prefault` failed.
    #[error(transparent)]
    Prefault(#[from] prefault::PrefaultError),
    /// vm-memory refused a region of the mapping.
    #[error("cannot describe guest memory to vm-memory")]
    Region(#[source] vm_memory::mmap::MmapRegionError),
    /// vm-memory refused the set of regions.
    #[error("cannot build the guest memory map")]
    Collection(#[source] vm_memory::GuestRegionCollectionError),
    /// KVM refused a memslot.
    #[error("KVM refused memslot {slot} (guest 0x{gpa:x}, {size} bytes)")]
    SetMemslot {
        /// Slot number.
        slot: u32,
        /// Guest-physical start.
        gpa: u64,
        /// Length.
        size: u64,
        /// The KVM error.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// What backs guest RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Private anonymous memory.
    Anonymous,
    /// Private anonymous hugetlb pages of this size.
    Hugetlb(hugetlb::HugePageSize),
    /// A critmem slice.
    Critmem {
        /// Physical address of the slice's first byte.
        phys_start: u64,
        /// Slice size in bytes.
        size: u64,
        /// Slice id in `/proc/critmem`.
        slice_id: u64,
        /// Physical alignment the slice was allocated with.
        align: u64,
    },
}

impl fmt::Display for Backing {
    /// The line logged at start: `anonymous` or
    /// `critmem slice 0x<start>-0x<end inclusive> (<N> MiB)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::Anonymous => write!(f, "anonymous"),
            Backing::Hugetlb(page) => write!(f, "hugetlbfs {page} pages"),
            // critmem.ko shows physical addresses to CAP_SYS_ADMIN only.
            Backing::Critmem {
                phys_start: 0,
                size,
                ..
            } => write!(
                f,
                "critmem slice ({} MiB; physical address hidden: it is shown to CAP_SYS_ADMIN only)",
                size >> 20
            ),
            Backing::Critmem {
                phys_start, size, ..
            } => write!(
                f,
                "critmem slice 0x{:x}-0x{:x} ({} MiB)",
                phys_start,
                phys_start + size - 1,
                size >> 20
            ),
        }
    }
}

/// One host mapping of all guest RAM, unmapped on drop.
#[derive(Debug)]
pub struct HostMapping {
    addr: *mut u8,
    len: usize,
    flags: i32,
}

// SAFETY: `HostMapping` only owns the address range; it never dereferences
// the pointer itself. Access to the memory goes through vm-memory's volatile
// accessors (or the guest), which are safe to use from any thread.
unsafe impl Send for HostMapping {}
// SAFETY: as above, shared references give no access to the memory.
unsafe impl Sync for HostMapping {}

impl HostMapping {
    /// Takes ownership of the mapping `[addr, addr + len)`, made with the
    /// `mmap` flags `flags`.
    ///
    /// # Safety
    /// `addr..addr+len` must be a live mapping made by this process with
    /// `mmap`, readable and writable, owned by nobody else: it is unmapped
    /// when the `HostMapping` is dropped.
    pub unsafe fn from_raw(addr: *mut u8, len: usize, flags: i32) -> Self {
        HostMapping { addr, len, flags }
    }

    /// Host virtual address of the first byte.
    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty mapping (never made).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for HostMapping {
    fn drop(&mut self) {
        // SAFETY: by the contract of `from_raw`, this process mapped the
        // range and nobody else owns it; every user of the memory (the
        // `GuestMemoryMmap` in `GuestRam`, the KVM VM) is dropped first.
        unsafe {
            libc::munmap(self.addr.cast(), self.len);
        }
    }
}

/// Guest RAM: its host mapping, its backing, and the guest-physical view.
#[derive(Debug)]
pub struct GuestRam {
    /// vm-memory's view, for loading the kernel and boot structures. Dropped
    /// before `mapping`, which it points into.
    mem: GuestMemoryMmap,
    /// Guest RAM in bytes; the mapping may be longer (whole huge pages).
    size: u64,
    ranges: Vec<RamRange>,
    backing: Backing,
    /// The critmem device file, which owns the slice: kept open while the
    /// VM lives. `None` for anonymous memory.
    _device: Option<Device>,
    mapping: HostMapping,
}

impl GuestRam {
    /// Allocates and maps guest RAM as `config.memory_spec` asks:
    /// anonymous or hugetlb pages, populated at once when asked, or a
    /// critmem slice.
    pub fn new(config: &VmConfig) -> Result<Self, MemoryError> {
        let size = config.memory;
        let (mapping, backing, device, prefault) = match &config.memory_spec {
            MemorySpec::Critmem { device } => {
                let slice = critmem::CritmemSlice::allocate(device, size)?;
                let backing = slice.backing();
                let (device, mapping) = slice.into_parts();
                (mapping, backing, Some(device), false)
            }
            &MemorySpec::Hugetlb { page, prefault } => (
                hugetlb::map(size, page)?,
                Backing::Hugetlb(page),
                None,
                prefault,
            ),
            &MemorySpec::Anonymous { prefault } => {
                (anonymous::map(size)?, Backing::Anonymous, None, prefault)
            }
        };
        if prefault {
            prefault::populate_write(&mapping, size)?;
        }
        Self::from_mapping(mapping, size, backing, device)
    }

    fn from_mapping(
        mapping: HostMapping,
        size: u64,
        backing: Backing,
        device: Option<Device>,
    ) -> Result<Self, MemoryError> {
        let size = size.min(mapping.len() as u64);
        let ranges = layout::ram_ranges(size);
        let mut regions = Vec::with_capacity(ranges.len());
        for r in &ranges {
            // SAFETY: `[addr + offset, addr + offset + size)` lies inside
            // `mapping` (the ranges' offsets and sizes add up to its
            // length), which is a live read/write mapping that outlives this
            // region: `GuestRam` drops `mem` before `mapping`.
            let region = unsafe {
                MmapRegion::build_raw(
                    mapping.addr.add(r.offset as usize),
                    r.size as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    mapping.flags,
                )
            }
            .map_err(MemoryError::Region)?;
            regions.push(
                GuestRegionMmap::new(region, GuestAddress(r.gpa))
                    .expect("RAM ranges never overflow the guest address space"),
            );
        }
        let mem = GuestMemoryMmap::from_regions(regions).map_err(MemoryError::Collection)?;
        Ok(GuestRam {
            mem,
            size,
            ranges,
            backing,
            _device: device,
            mapping,
        })
    }

    /// vm-memory's view of guest RAM.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// What backs guest RAM.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The RAM ranges (one memslot each).
    pub fn ranges(&self) -> &[RamRange] {
        &self.ranges
    }

    /// Size of guest RAM in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host virtual address of guest-physical address 0.
    pub fn host_base(&self) -> u64 {
        self.mapping.addr()
    }

    /// The memslots for KVM: one per RAM range, no dirty logging.
    pub fn memslots(&self) -> Vec<kvm_userspace_memory_region> {
        memslots(self.mapping.addr(), &self.ranges)
    }

    /// Registers the memslots with KVM.
    ///
    /// The caller must keep `self` alive as long as `vm` (in practice: the
    /// VM is dropped first), since KVM maps guest RAM from these addresses.
    pub fn register(&self, vm: &VmFd) -> Result<(), MemoryError> {
        for slot in self.memslots() {
            // SAFETY: the slot's host range lies inside `self.mapping`, a
            // live read/write mapping; it stays mapped as long as `self`,
            // which the VM owner drops after the VM fd. Slots do not overlap.
            unsafe { vm.set_user_memory_region(slot) }.map_err(|source| {
                MemoryError::SetMemslot {
                    slot: slot.slot,
                    gpa: slot.guest_phys_addr,
                    size: slot.memory_size,
                    source,
                }
            })?;
        }
        Ok(())
    }
}

/// The memslots for RAM `ranges` of a mapping at host address `host_base`.
pub fn memslots(host_base: u64, ranges: &[RamRange]) -> Vec<kvm_userspace_memory_region> {
    ranges
        .iter()
        .enumerate()
        .map(|(i, r)| kvm_userspace_memory_region {
            slot: i as u32,
            flags: 0, // no KVM_MEM_LOG_DIRTY_PAGES: it would forbid huge pages
            guest_phys_addr: r.gpa,
            memory_size: r.size,
            userspace_addr: host_base + r.offset,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::layout::SIZE_1G;
    use vm_memory::{Bytes, GuestMemoryBackend};

    #[test]
    fn memslots_keep_gpa_and_hva_congruent_mod_1g() {
        let base = 0x7f00_0000_0000u64; // 1 GiB aligned
        for mem in [512 << 20, 1 << 30, 3 << 30, 5 << 30, (6 << 30) + (4 << 20)] {
            let slots = memslots(base, &layout::ram_ranges(mem));
            let mut total = 0;
            for s in &slots {
                assert_eq!(s.flags, 0);
                assert_eq!(
                    s.guest_phys_addr % SIZE_1G,
                    s.userspace_addr % SIZE_1G,
                    "{s:?}"
                );
                total += s.memory_size;
            }
            assert_eq!(total, mem);
            assert_eq!(slots[0].userspace_addr, base);
            if mem > 3 << 30 {
                assert_eq!(slots[1].guest_phys_addr, 4 << 30);
                assert_eq!(slots[1].userspace_addr, base + (3 << 30));
                assert_eq!(slots[1].slot, 1);
            }
        }
    }

    #[test]
    fn anonymous_guest_ram_is_usable() {
        let mut cfg = VmConfig::new("/k");
        cfg.memory = 64 << 20;
        let ram = GuestRam::new(&cfg).unwrap();
        assert_eq!(ram.backing(), &Backing::Anonymous);
        assert_eq!(ram.size(), 64 << 20);
        assert_eq!(ram.memory().num_regions(), 1);
        ram.memory()
            .write_obj(0x1234_5678u32, GuestAddress(0x10_0000))
            .unwrap();
        let v: u32 = ram.memory().read_obj(GuestAddress(0x10_0000)).unwrap();
        assert_eq!(v, 0x1234_5678);
        assert_eq!(ram.memslots().len(), 1);
    }

    #[test]
    fn backing_lines() {
        assert_eq!(Backing::Anonymous.to_string(), "anonymous");
        let b = Backing::Critmem {
            phys_start: 0x4000_0000,
            size: 1 << 30,
            slice_id: 1,
            align: 1 << 30,
        };
        assert_eq!(
            b.to_string(),
            "critmem slice 0x40000000-0x7fffffff (1024 MiB)"
        );
        let hidden = Backing::Critmem {
            phys_start: 0,
            size: 1 << 30,
            slice_id: 1,
            align: 1 << 30,
        };
        assert_eq!(
            hidden.to_string(),
            "critmem slice (1024 MiB; physical address hidden: it is shown to CAP_SYS_ADMIN only)"
        );
    }
}
