//! critmem.ko's pure policy code, compiled for the build machine so that
//! `cargo test` checks it. The kernel build compiles the same files; nothing
//! here is copied.

#[path = "../../layout.rs"]
#[allow(dead_code)]
mod layout;
