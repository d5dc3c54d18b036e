//! `cmtool`: the test tool run inside the emulated host by the scenarios.
//! Each subcommand lives in its own module and prints `key=value` lines that
//! scenarios parse.

mod kvm_selftest;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("kvm-selftest") => kvm_selftest::run(),
        _ => Err("usage: cmtool kvm-selftest".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmtool: {e}");
            ExitCode::FAILURE
        }
    }
}
