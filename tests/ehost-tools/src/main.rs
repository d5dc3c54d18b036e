//! `cmtool`: the test tool run inside the emulated host by the scenarios.
//! Each subcommand lives in its own module and prints `key=value` lines that
//! scenarios parse.

mod args;
mod critmem_dev;
mod cut;
mod fault_kernel;
mod kvm_selftest;
mod memwrite;
mod pattern;
mod phys;
mod physscan;
mod tsc;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("kvm-selftest") => kvm_selftest::run(),
        Some(cmd @ ("info" | "alloc" | "mmap" | "touch" | "ioctl")) => {
            critmem_dev::run(cmd, &args[1..])
        }
        Some(cmd @ ("physread" | "physcheck" | "physfill")) => phys::run(cmd, &args[1..]),
        Some("cut") => cut::run(&args[1..]),
        Some("fault-kernel") => fault_kernel::run(&args[1..]),
        Some("physscan") => physscan::run(&args[1..]),
        Some("memwrite") => memwrite::memwrite(&args[1..]),
        Some("hog") => memwrite::hog(&args[1..]),
        Some("tsc-khz") => tsc::run(),
        _ => Err(
            "usage: cmtool kvm-selftest | info | alloc | mmap | touch | ioctl | cut | fault-kernel | physread | \
             physcheck | physfill | physscan | memwrite | hog | tsc-khz (see the module docs)"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmtool: {e}");
            ExitCode::FAILURE
        }
    }
}
