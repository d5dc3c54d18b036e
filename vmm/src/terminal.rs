//! The console terminal: raw-ish mode while the guest runs, restored on
//! every exit path.
//!
//! When stdin is a terminal, canonical mode and echo are switched off so
//! each typed byte goes to the guest's serial port at once (signals stay on:
//! Ctrl-C sends SIGINT, which asks the guest to shut down; see
//! [`crate::runner`]). The original settings are saved in a process-wide
//! slot and restored:
//! - when the [`RawMode`] guard drops (normal return),
//! - by [`restore`], called before `process::exit`,
//! - from a panic hook (the release build aborts on panic),
//! - from handlers of SIGHUP and SIGQUIT, which then re-raise the signal
//!   with its default action. (SIGINT and SIGTERM are blocked and taken by
//!   the runner's signal thread, so they end the VM through a normal
//!   return.)
//!
//! When stdin is not a terminal (a pipe, a file, `/dev/null`), nothing is
//! changed. SIGKILL cannot be caught; a shell's `reset` fixes the terminal.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static SAVED: OnceLock<libc::termios> = OnceLock::new();
static RAW_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Errors of terminal setup.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// `tcgetattr`/`tcsetattr` failed on a terminal.
    #[error("cannot change the terminal mode of stdin")]
    Termios(#[source] io::Error),
}

/// True if stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

/// Guard of raw mode; restores the terminal when dropped.
#[derive(Debug)]
pub struct RawMode {
    active: bool,
}

impl RawMode {
    /// Switches stdin to raw mode if it is a terminal, and installs the
    /// restore hooks. A no-op otherwise.
    pub fn enable() -> Result<Self, TerminalError> {
        if !stdin_is_tty() {
            return Ok(RawMode { active: false });
        }
        // SAFETY: termios is plain old data; an all-zero value is valid
        // storage for tcgetattr to fill.
        let mut orig: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `orig` is a valid, writable termios.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut orig) } != 0 {
            return Err(TerminalError::Termios(io::Error::last_os_error()));
        }
        let _ = SAVED.set(orig);
        install_hooks();
        let mut raw = orig;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_iflag &= !(libc::ICRNL | libc::IXON);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a valid termios derived from the current one.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return Err(TerminalError::Termios(io::Error::last_os_error()));
        }
        RAW_ACTIVE.store(true, Ordering::SeqCst);
        Ok(RawMode { active: true })
    }

    /// True if the terminal was changed.
    pub fn is_active(&self) -> bool {
        self.active
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the saved terminal settings, if raw mode is on. Idempotent and
/// async-signal-safe (one atomic swap and `tcsetattr`).
pub fn restore() {
    if RAW_ACTIVE.swap(false, Ordering::SeqCst) {
        if let Some(orig) = SAVED.get() {
            // SAFETY: `orig` is the termios read from this terminal by
            // tcgetattr; tcsetattr is async-signal-safe.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, orig);
            }
        }
    }
}

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    restore();
    // SAFETY: signal and raise are async-signal-safe; restoring the default
    // action and re-raising ends the process as the signal would have.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn install_hooks() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    for sig in [libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: `on_fatal_signal` is an `extern "C"` handler that only
        // calls async-signal-safe functions.
        unsafe {
            libc::signal(sig, on_fatal_signal as *const () as libc::sighandler_t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_tty_is_a_no_op() {
        // Under `cargo test` stdin is usually not a terminal; either way,
        // enabling and dropping must leave the terminal as it was.
        let guard = RawMode::enable().unwrap();
        assert_eq!(guard.is_active(), stdin_is_tty());
        drop(guard);
        assert!(!RAW_ACTIVE.load(Ordering::SeqCst));
        restore(); // idempotent
    }
}
