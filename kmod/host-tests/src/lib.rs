//! critmem.ko's pure policy code, compiled for the build machine so that
//! `cargo test` checks it. The kernel build compiles the same files; nothing
//! here is copied. `freemap.rs` uses `kernel::prelude`, which the
//! `kernel-shim` package stands in for here.

#[path = "../../layout.rs"]
#[allow(dead_code)]
mod layout;

#[path = "../../freemap.rs"]
#[allow(dead_code)]
mod freemap;
