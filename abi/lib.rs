//! The `critmem-abi` crate: critmem's user/kernel ABI, and with the `std`
//! feature the one userspace view of it.
//!
//! - The ABI itself ([`CRITMEM_IOC_ALLOC`], [`PoolInfo`], [`map_keys`], ...)
//!   lives in `critmem_abi.rs`, which `critmem.ko` compiles too (through
//!   `#[path]`, in the kernel, with no std). Without `std` this crate is
//!   `no_std` and depends on nothing, so a userspace build proves that file
//!   still builds the way the kernel needs it.
//! - `std` adds what every userspace tool needs and used to write for
//!   itself: `client` (open `/dev/critmem`, ALLOC, INFO, map a slice),
//!   `map_file` (read `/proc/critmem`) and `units` (the kernel's size
//!   grammar). They live in files of their own, so the kernel never sees
//!   them.

#![cfg_attr(not(feature = "std"), no_std)]

#[path = "critmem_abi.rs"]
mod abi;

pub use abi::*;

#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod map_file;
#[cfg(feature = "std")]
pub mod units;
