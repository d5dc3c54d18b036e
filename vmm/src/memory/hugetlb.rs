//! The memory path of a normal VM on hugetlbfs huge pages
//! (`vmm --hugepages 2M|1G`): the baseline a user would pick instead of
//! critmem to get huge stage-2 pages.
//!
//! Guest RAM is one `MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
//! MAP_HUGE_2MB` (or `MAP_HUGE_1GB`) mapping. Why private anonymous:
//! - no hugetlbfs mount and no file to name or clean up, and the memory is
//!   this process's alone (nothing to share: `vmm` has no vhost-user);
//! - a private hugetlb mapping *reserves* its huge pages from the pool at
//!   `mmap` time. A pool that is too small therefore fails `mmap` with
//!   ENOMEM, which is reported here as a clear error, instead of a SIGBUS
//!   later when the guest touches a page the pool cannot supply.
//!
//! Pages are still populated on first touch (or all at start with
//! `--prefault`); only the reservation is up front.
//!
//! The mapping length is guest RAM rounded up to a whole number of huge
//! pages (a 256 MiB guest on 1 GiB pages takes one whole 1 GiB page). The
//! kernel places hugetlb mappings at addresses aligned to their page size,
//! and [`crate::arch::x86_64::layout::ram_ranges`] keeps guest-physical and
//! host-virtual addresses congruent modulo 1 GiB (hence modulo 2 MiB) from
//! any such base: the same layout as a critical VM, so KVM can map the guest
//! with stage-2 pages as large as the host's huge pages.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use critmem_abi::units;

use super::HostMapping;
use crate::arch::x86_64::layout::{SIZE_1G, SIZE_2M};

/// A hugetlb page size `vmm` can back guest RAM with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HugePageSize {
    /// 2 MiB pages (`MAP_HUGE_2MB`).
    Size2M,
    /// 1 GiB pages (`MAP_HUGE_1GB`); the pool must be reserved at boot.
    Size1G,
}

impl HugePageSize {
    /// The page size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            HugePageSize::Size2M => SIZE_2M,
            HugePageSize::Size1G => SIZE_1G,
        }
    }

    /// The `mmap` flag selecting this page size.
    pub fn map_flag(self) -> i32 {
        match self {
            HugePageSize::Size2M => libc::MAP_HUGE_2MB,
            HugePageSize::Size1G => libc::MAP_HUGE_1GB,
        }
    }

    /// The pool's directory in sysfs.
    pub fn sysfs_dir(self) -> PathBuf {
        PathBuf::from(format!(
            "/sys/kernel/mm/hugepages/hugepages-{}kB",
            self.bytes() >> 10
        ))
    }

    /// How to grow the pool, for error messages.
    pub fn how_to_reserve(self, pages: u64) -> String {
        match self {
            HugePageSize::Size2M => format!(
                "raise it with `sysctl vm.nr_hugepages={pages}` (or echo {pages} > {}/nr_hugepages), \
                 or boot with hugepagesz=2M hugepages={pages}",
                self.sysfs_dir().display()
            ),
            HugePageSize::Size1G => format!(
                "1 GiB pages must be reserved at boot: add hugepagesz=1G hugepages={pages} \
                 to the kernel command line"
            ),
        }
    }
}

impl fmt::Display for HugePageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HugePageSize::Size2M => "2M",
            HugePageSize::Size1G => "1G",
        })
    }
}

impl FromStr for HugePageSize {
    type Err = String;

    /// Accepts any size of the kernel's grammar ([`units`]) that is 2 MiB
    /// or 1 GiB: `2M`, `2048K`, `0x200000`, `1G`, `1g`, `1024M`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match units::parse(s, "huge page size") {
            Ok(SIZE_2M) => Ok(HugePageSize::Size2M),
            Ok(SIZE_1G) => Ok(HugePageSize::Size1G),
            _ => Err(format!("invalid huge page size '{s}': expected 2M or 1G")),
        }
    }
}

/// Errors of the hugetlb backing. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum HugetlbError {
    /// The pool for this page size does not exist (the CPU or kernel lacks
    /// the page size, or hugetlbfs is not built in).
    #[error(
        "no {page} hugetlb pool ({path}): the kernel needs CONFIG_HUGETLBFS and the CPU \
         the page size (pdpe1gb for 1G)"
    )]
    NoPool {
        /// The page size.
        page: HugePageSize,
        /// The sysfs directory that is missing or unreadable.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The pool has fewer available pages than the guest needs.
    #[error(
        "hugetlb pool too small: {needed} free {page} pages needed for {mib} MiB, \
         {available} available ({free} free, {reserved} reserved by others, {total} in the pool); \
         {hint}",
        mib = size >> 20,
        hint = page.how_to_reserve(total + needed - available)
    )]
    PoolTooSmall {
        /// The page size.
        page: HugePageSize,
        /// Guest RAM in bytes.
        size: u64,
        /// Pages needed.
        needed: u64,
        /// Pages free and not reserved: `free - reserved`.
        available: u64,
        /// `free_hugepages`.
        free: u64,
        /// `resv_hugepages`.
        reserved: u64,
        /// `nr_hugepages`.
        total: u64,
    },
    /// `mmap` failed for another reason (or the pool shrank meanwhile).
    #[error("cannot map {} MiB of {page} hugetlb memory", size >> 20)]
    Mmap {
        /// The page size.
        page: HugePageSize,
        /// Mapping length.
        size: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Figures of one hugetlb pool, from sysfs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolFigures {
    /// `nr_hugepages`: pages in the pool.
    pub total: u64,
    /// `free_hugepages`: pages not in use.
    pub free: u64,
    /// `resv_hugepages`: free pages promised to existing mappings.
    pub reserved: u64,
}

impl PoolFigures {
    /// Pages a new mapping can reserve.
    pub fn available(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }

    /// Reads the pool of `page` from sysfs.
    pub fn read(page: HugePageSize) -> Result<Self, HugetlbError> {
        let dir = page.sysfs_dir();
        let get = |name: &str| -> Result<u64, HugetlbError> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|source| HugetlbError::NoPool {
                page,
                path: path.clone(),
                source,
            })?;
            text.trim().parse().map_err(|_| HugetlbError::NoPool {
                page,
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, "not a number"),
            })
        };
        Ok(PoolFigures {
            total: get("nr_hugepages")?,
            free: get("free_hugepages")?,
            reserved: get("resv_hugepages")?,
        })
    }
}

/// Huge pages of `page` needed to back `size` bytes.
pub fn pages_needed(size: u64, page: HugePageSize) -> u64 {
    size.div_ceil(page.bytes())
}

/// Checks that `pool` can back `size` bytes with `page` pages.
pub fn check_pool(size: u64, page: HugePageSize, pool: PoolFigures) -> Result<(), HugetlbError> {
    let needed = pages_needed(size, page);
    if pool.available() < needed {
        return Err(HugetlbError::PoolTooSmall {
            page,
            size,
            needed,
            available: pool.available(),
            free: pool.free,
            reserved: pool.reserved,
            total: pool.total,
        });
    }
    Ok(())
}

/// Maps `size` bytes of guest RAM (rounded up to whole pages) on `page`
/// hugetlb pages. The returned mapping may be longer than `size`.
pub fn map(size: u64, page: HugePageSize) -> Result<HostMapping, HugetlbError> {
    check_pool(size, page, PoolFigures::read(page)?)?;
    let len = pages_needed(size, page) * page.bytes();
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB | page.map_flag();
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choice
    // (no MAP_FIXED) cannot alias any existing Rust object.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        let source = io::Error::last_os_error();
        // The pool may have shrunk since it was read: say so clearly.
        if source.raw_os_error() == Some(libc::ENOMEM) {
            if let Ok(pool) = PoolFigures::read(page) {
                check_pool(size, page, pool)?;
            }
        }
        return Err(HugetlbError::Mmap {
            page,
            size: len,
            source,
        });
    }
    // SAFETY: `addr..addr+len` was just mapped read/write by us and is owned
    // by nobody else; `len` is a whole number of huge pages, so it can be
    // unmapped as one.
    let mapping = unsafe { HostMapping::from_raw(addr.cast(), len as usize, flags) };
    // The kernel aligns hugetlb mappings to their page size; the congruence
    // of the memslot layout relies on it.
    debug_assert_eq!(mapping.addr() % page.bytes(), 0);
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::layout;

    #[test]
    fn page_sizes_parse() {
        for s in ["2M", "2m", "2048K", "0x200000"] {
            assert_eq!(s.parse(), Ok(HugePageSize::Size2M), "{s}");
        }
        for s in ["1G", "1g", "1024M"] {
            assert_eq!(s.parse(), Ok(HugePageSize::Size1G), "{s}");
        }
        for s in ["4K", "4M", "2G", "", "huge", "2MiB", "1GB"] {
            assert!(s.parse::<HugePageSize>().is_err(), "{s}");
        }
        assert_eq!(HugePageSize::Size1G.to_string(), "1G");
        assert_eq!(
            HugePageSize::Size2M.sysfs_dir(),
            PathBuf::from("/sys/kernel/mm/hugepages/hugepages-2048kB")
        );
        assert_eq!(
            HugePageSize::Size1G.sysfs_dir(),
            PathBuf::from("/sys/kernel/mm/hugepages/hugepages-1048576kB")
        );
    }

    #[test]
    fn pages_needed_rounds_up() {
        assert_eq!(pages_needed(256 << 20, HugePageSize::Size2M), 128);
        assert_eq!(pages_needed(256 << 20, HugePageSize::Size1G), 1);
        assert_eq!(pages_needed(2 << 30, HugePageSize::Size1G), 2);
        assert_eq!(pages_needed((2 << 30) + 4096, HugePageSize::Size1G), 3);
        assert_eq!(
            pages_needed((1 << 30) + (1 << 20), HugePageSize::Size2M),
            513
        );
    }

    #[test]
    fn pool_check_says_free_versus_needed() {
        let pool = PoolFigures {
            total: 100,
            free: 90,
            reserved: 10,
        };
        assert!(check_pool(160 << 20, HugePageSize::Size2M, pool).is_ok());
        let e = check_pool(256 << 20, HugePageSize::Size2M, pool).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hugetlb pool too small: 128 free 2M pages needed for 256 MiB, 80 available \
             (90 free, 10 reserved by others, 100 in the pool); raise it with \
             `sysctl vm.nr_hugepages=148` (or echo 148 > \
             /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages), or boot with \
             hugepagesz=2M hugepages=148"
        );
        let e = check_pool(2 << 30, HugePageSize::Size1G, PoolFigures::default()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("add hugepagesz=1G hugepages=2 to the kernel command line"),
            "{e}"
        );
    }

    #[test]
    fn layout_is_congruent_for_huge_page_aligned_bases() {
        // The kernel hands out hugetlb mappings aligned to the page size;
        // the one memslot layout keeps every range congruent from there.
        for mem in [256 << 20, 1 << 30, 2 << 30, 4 << 30, (5 << 30) + (2 << 20)] {
            let ranges = layout::ram_ranges(mem);
            assert!(layout::is_congruent(&ranges, SIZE_1G));
            for page in [HugePageSize::Size2M, HugePageSize::Size1G] {
                let base = 0x7f00_0000_0000u64 + page.bytes();
                for s in super::super::memslots(base, &ranges) {
                    assert_eq!(
                        s.guest_phys_addr % page.bytes(),
                        s.userspace_addr % page.bytes()
                    );
                }
            }
        }
    }

    #[test]
    fn missing_pool_is_reported() {
        // Whatever this machine has, a map of a size with no pool, or an
        // empty pool, fails with a clear error rather than a SIGBUS later.
        match PoolFigures::read(HugePageSize::Size1G) {
            Err(e) => assert!(matches!(e, HugetlbError::NoPool { .. })),
            Ok(p) if p.available() == 0 => {
                let e = map(1 << 30, HugePageSize::Size1G).unwrap_err();
                assert!(matches!(e, HugetlbError::PoolTooSmall { .. }), "{e}");
            }
            Ok(_) => {}
        }
    }
}
