//! `cmtool alloc-storm`: one ALLOC under a storm of `SIGALRM`s
//! (`setitimer(ITIMER_REAL)` every `--interval-us`), with or without
//! `SA_RESTART` (`tests/scenarios/kmod/alloc-signals.sh`).
//!
//! Only a fatal signal may abort ALLOC's zeroing, so the call must succeed
//! either way. The handler counts the signals, and the count taken
//! between the moment the timer starts and the moment ALLOC returns is
//! printed as `signals_during_alloc`, so the output shows that the storm
//! happened while the call ran.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::args::num;
use crate::critmem_dev::{client_errno, errno_name, open_device};

static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// `alloc-storm`.
#[derive(Debug, clap::Args)]
pub struct AllocStormArgs {
    /// ALLOC size.
    #[arg(long, value_parser = num)]
    size: u64,
    /// ALLOC alignment.
    #[arg(long, value_parser = num, default_value = "2M")]
    align: u64,
    /// Timer period in microseconds.
    #[arg(long, value_parser = num, default_value = "1000")]
    interval_us: u64,
    /// Install the handler with SA_RESTART.
    #[arg(long)]
    restart: bool,
}

/// Arms (`period_us` > 0) or disarms (0) the real-time interval timer.
fn set_timer(period_us: u64) -> Result<(), String> {
    let tv = libc::timeval {
        tv_sec: (period_us / 1_000_000) as libc::time_t,
        tv_usec: (period_us % 1_000_000) as libc::suseconds_t,
    };
    let timer = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: `timer` is a valid itimerval; the old value is not asked for.
    if unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) } != 0 {
        return Err(format!("setitimer: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `alloc-storm`.
pub fn run(args: &AllocStormArgs) -> Result<(), String> {
    if args.interval_us == 0 {
        return Err("--interval-us must be at least 1".into());
    }
    let device = open_device(false)?;
    // SAFETY: a zeroed sigaction is valid; the handler only touches an
    // atomic, which is async-signal-safe, and stays installed (SIGALRM
    // would otherwise end the process) for the rest of the process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = if args.restart { libc::SA_RESTART } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()) != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
        }
    }
    println!("sa_restart={}", u8::from(args.restart));
    let before = SIGNALS.load(Ordering::Relaxed);
    set_timer(args.interval_us)?;
    let result = device.alloc(args.size, args.align);
    let during = SIGNALS.load(Ordering::Relaxed) - before;
    set_timer(0)?;
    println!("signals_during_alloc={during}");
    match result {
        Ok(req) => {
            println!("alloc=ok");
            println!("phys_size={}", req.phys_size);
            Ok(())
        }
        Err(e) => {
            println!(
                "alloc={}",
                client_errno(&e)
                    .as_ref()
                    .map(errno_name)
                    .unwrap_or_default()
            );
            Err(format!(
                "{}: only a fatal signal may interrupt ALLOC's zeroing (kmod/README.md)",
                crate::describe(e)
            ))
        }
    }
}
