// SPDX-License-Identifier: GPL-2.0

//! critmem: gives critical virtual machines contiguous physical memory of
//! their own.
//!
//! At boot the kernel reserves a contiguous physical range, either with
//! `reserve_mem=<size>:<align>:critmem` or with `memmap=<size>$<base>` (then
//! the module parameters `critmem.base=`/`critmem.size=` name it). This
//! module claims that range as the pool, publishes it in `/proc/critmem` and
//! `/proc/iomem`, and hands out exclusive, zeroed slices of it through
//! `/dev/critmem`, mapped with 1 GiB / 2 MiB pages where alignment allows.
//!
//! See `kmod/README.md` for the user-visible formats and policies.

use kernel::prelude::*;

#[path = "../abi/critmem_abi.rs"]
#[allow(dead_code, unreachable_pub)]
mod abi;
mod caps;
mod device;
mod firmware_map;
mod freemap;
mod iomem;
mod layout;
mod pool;
mod procfs;
mod sys;
mod vma;

module! {
    type: Critmem,
    name: "critmem",
    authors: ["critmem developers"],
    description: "Boot-time reserved memory pool for critical VMs",
    license: "GPL",
    params: {
        base: u64 {
            default: 0,
            description: "memmap mode: physical start of the memmap=<size>$<base> range",
        },
        size: u64 {
            default: 0,
            description: "memmap mode: size in bytes of that range (0: use reserve_mem)",
        },
        max_bytes_per_uid: u64 {
            default: 0,
            description: "most bytes of live slices one user id may hold (0: no limit)",
        },
    },
}

/// The loaded module.
///
/// Field order is teardown order: no new opens, no new map-file readers,
/// then the pool (after [`Drop`] stopped its worker).
struct Critmem {
    _device: device::Registration,
    _map_file: procfs::MapFile,
    pool: kernel::sync::Arc<pool::Pool>,
}

impl kernel::Module for Critmem {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let caps = caps::check()?;
        let params = pool::Params {
            base: sys::param_value(&module_parameters::base),
            size: sys::param_value(&module_parameters::size),
            max_bytes_per_uid: sys::param_value(&module_parameters::max_bytes_per_uid),
        };
        let pool = pool::Pool::claim(&params, caps)?;
        let map_file = procfs::MapFile::create(pool.clone())?;
        let device = device::Registration::register(module, pool.clone())?;
        pr_info!(
            "pool start={:#x} end_inclusive={:#x} size={} source={} 1G-pages={}\n",
            pool.start(),
            pool.start() + pool.size() - 1,
            pool.size(),
            pool.source_name(),
            caps.pud
        );
        // Last, so that no failed load leaves the worker queued.
        pool.start_zeroing();
        Ok(Critmem {
            _device: device,
            _map_file: map_file,
            pool,
        })
    }
}

impl Drop for Critmem {
    fn drop(&mut self) {
        // Every open file pins the module and every mapping pins its file, so
        // no slice is live here and nothing can queue the worker again.
        self.pool.stop_zeroing();
    }
}
