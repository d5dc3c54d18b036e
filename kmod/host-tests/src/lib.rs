//! critmem.ko's pure policy code, compiled for the build machine so that
//! `cargo test` checks it. The kernel build compiles the same files; nothing
//! here is copied. `freemap.rs` uses `kernel::prelude`, which the
//! `kernel-shim` package stands in for here.

#[path = "../../layout.rs"]
#[allow(dead_code)]
mod layout;

#[path = "../../firmware_map.rs"]
#[allow(dead_code)]
mod firmware_map;

#[path = "../../freemap.rs"]
#[allow(dead_code)]
mod freemap;

/// A tiny deterministic generator for the property tests, so they need no
/// crate; each test prints its seed when it fails.
#[cfg(test)]
pub(crate) struct Lcg(pub(crate) u64);

#[cfg(test)]
impl Lcg {
    /// The next 53-bit value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }

    /// A value in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
