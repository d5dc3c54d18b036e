//! `vmm`: a small KVM virtual machine monitor built on the rust-vmm crates.
//!
//! It boots an x86_64 Linux kernel (bzImage or ELF vmlinux) with a serial
//! console, and places the guest's memory either in anonymous host memory
//! (a *normal* VM) or in a contiguous slice of the critmem pool handed out by
//! `critmem.ko` (a *critical* VM, `--critical-mem`).
//!
//! Where to look:
//! - [`config`]: the validated VM configuration the CLI builds.
//! - [`arch::x86_64::layout`]: the guest-physical memory map, in one place.
//! - [`memory`]: what backs guest RAM; [`memory::critmem`] is the memory
//!   path of a critical VM, [`memory::anonymous`] that of a normal VM.
//! - [`runner`]: the whole life of a VM, from configuration to its end.
//! - [`vstate`]: the KVM VM, the vCPUs (register setup, run loop, one
//!   thread each, stopping them), and how a VM ends ([`vstate::exit`]: the
//!   exit statuses).
//! - [`devices`]: the legacy port-I/O devices (16550 serial, i8042).
//! - [`stats`]: KVM's binary statistics (stage-2 page counts).
//! - [`faults`]: the page faults of the `vmm` process (`getrusage`).
//! - [`terminal`]: raw mode for the console, restored on every exit path.

#![cfg(target_arch = "x86_64")]

pub mod arch;
pub mod config;
pub mod devices;
pub mod faults;
pub mod loader;
pub mod memory;
pub mod runner;
pub mod stats;
pub mod terminal;
pub mod vstate;

pub use config::VmConfig;
pub use runner::{run, RunEvent, RunReport};
pub use vstate::exit::VmExit;
