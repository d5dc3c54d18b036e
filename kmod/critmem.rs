// SPDX-License-Identifier: GPL-2.0

//! critmem: gives critical virtual machines memory of their own.
//!
//! At boot the kernel reserves a contiguous physical range with
//! `reserve_mem=<size>:<align>:critmem`. This module finds that range.

use kernel::prelude::*;

#[path = "../abi/critmem_abi.rs"]
#[allow(dead_code)]
mod abi;

module! {
    type: Critmem,
    name: "critmem",
    authors: ["critmem developers"],
    description: "Boot-time reserved memory pool for critical VMs",
    license: "GPL",
}

struct Critmem;

/// Finds the `reserve_mem=...:critmem` region, as `(start, size)`.
fn find_reserve_mem() -> Option<(u64, u64)> {
    let mut start: bindings::phys_addr_t = 0;
    let mut size: bindings::phys_addr_t = 0;
    // SAFETY: the name is a NUL-terminated static string, and `start` and
    // `size` are valid for writes for the duration of the call; the function
    // only reads the name and writes the two outputs.
    let found = unsafe {
        bindings::reserve_mem_find_by_name(c"critmem".as_ptr().cast(), &mut start, &mut size)
    };
    (found != 0).then_some((start, size))
}

impl kernel::Module for Critmem {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        match find_reserve_mem() {
            Some((start, size)) => {
                pr_info!(
                    "pool start={:#x} end_inclusive={:#x} size={} source=reserve_mem abi={}\n",
                    start,
                    start + size - 1,
                    size,
                    abi::ABI_VERSION
                );
                Ok(Critmem)
            }
            None => {
                pr_err!("no pool: boot with reserve_mem=<size>:<align>:critmem\n");
                Err(ENODEV)
            }
        }
    }
}
