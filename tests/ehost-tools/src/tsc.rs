//! `cmtool tsc-khz` (on the build machine): measures this CPU's TSC rate in
//! kHz against the monotonic clock and prints it.
//!
//! The emulated host's TSC under TCG is the build machine's TSC, so this is
//! the rate the emulated host's kernel will calibrate. `scripts/ehost` uses
//! it to boot an emulated host whose early TSC calibration is off by a known
//! amount (`tsc_early_khz=`), as on real hosts whose refined calibration
//! differs from the rate KVM saw when it loaded.

use std::time::{Duration, Instant};

/// How long each measurement lasts: long enough that a microsecond of clock
/// read jitter is under 10 ppm.
const WINDOW: Duration = Duration::from_millis(200);
/// Measurements taken; the median is printed.
const SAMPLES: usize = 5;

fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads a counter and has no memory effects; every x86_64
    // CPU implements it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// kHz from `ticks` TSC ticks over `elapsed`.
fn khz(ticks: u64, elapsed: Duration) -> u64 {
    (ticks as u128 * 1_000_000 / elapsed.as_micros().max(1)) as u64 / 1000
}

fn measure_once() -> u64 {
    let (t0, c0) = (Instant::now(), rdtsc());
    while t0.elapsed() < WINDOW {
        std::hint::spin_loop();
    }
    let (c1, t1) = (rdtsc(), Instant::now());
    khz(c1.wrapping_sub(c0), t1 - t0)
}

pub fn run() -> Result<(), String> {
    let mut samples: Vec<u64> = (0..SAMPLES).map(|_| measure_once()).collect();
    samples.sort_unstable();
    let median = samples[SAMPLES / 2];
    if median == 0 {
        return Err("the TSC did not advance".into());
    }
    println!("{median}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khz_arithmetic() {
        assert_eq!(khz(2_600_000_000, Duration::from_secs(1)), 2_600_000);
        assert_eq!(khz(520_000_000, Duration::from_millis(200)), 2_600_000);
    }

    #[test]
    fn measures_a_running_tsc() {
        let k = measure_once();
        // Any x86_64 CPU made this century: 100 MHz to 10 GHz.
        assert!((100_000..10_000_000).contains(&k), "{k} kHz");
    }
}
