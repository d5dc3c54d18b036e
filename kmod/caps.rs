// SPDX-License-Identifier: GPL-2.0

//! What critmem needs from the running kernel ("does the kernel support
//! independent memory configuration"), checked at load.
//!
//! Kernel configuration is fixed when the module is built against a kernel
//! tree, so those needs are checked at build time; the CPU's page sizes are
//! only known at run time.

use kernel::{bindings, prelude::*};

// Huge PFN mappings (`vmf_insert_pfn_pmd`/`vmf_insert_pfn_pud`) exist only
// with transparent huge pages on an architecture supporting them; procfs
// carries the map file. README lists these options.
#[cfg(not(all(
    CONFIG_X86_64,
    CONFIG_TRANSPARENT_HUGEPAGE,
    CONFIG_ARCH_SUPPORTS_PMD_PFNMAP,
    CONFIG_ARCH_SUPPORTS_PUD_PFNMAP,
    CONFIG_PROC_FS
)))]
compile_error!(
    "critmem needs CONFIG_X86_64, CONFIG_TRANSPARENT_HUGEPAGE (for PMD/PUD PFN mappings) \
     and CONFIG_PROC_FS"
);

const _: () = assert!(bindings::PAGE_SIZE == 4096, "critmem assumes 4 KiB pages");

/// Page sizes usable for user mappings of the pool.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// 1 GiB pages (CPUID pdpe1gb).
    pub(crate) pud: bool,
}

/// Whether the boot CPU has feature bit `bit` (an `X86_FEATURE_*`).
fn boot_cpu_has(bit: u32) -> bool {
    // SAFETY: `boot_cpu_data` is written during early boot only; by the time
    // modules load it is read-only, so reading it cannot race.
    let words = unsafe { bindings::boot_cpu_data.__bindgen_anon_3.x86_capability };
    words
        .get((bit / 32) as usize)
        .is_some_and(|w| w & (1 << (bit % 32)) != 0)
}

/// Checks the running system, logging what is missing.
pub(crate) fn check() -> Result<Caps> {
    if !boot_cpu_has(bindings::X86_FEATURE_PSE) {
        pr_err!("the CPU has no PSE (2 MiB pages); critmem cannot map slices\n");
        return Err(ENODEV);
    }
    let pud = boot_cpu_has(bindings::X86_FEATURE_GBPAGES);
    if !pud {
        pr_warn!("the CPU has no 1 GiB pages (pdpe1gb): slices map with 2 MiB pages at most\n");
    }
    Ok(Caps { pud })
}
