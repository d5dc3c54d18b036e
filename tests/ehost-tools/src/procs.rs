//! Process plumbing shared by the lifetime subcommands (`churn`,
//! `fork-share`, `scm-send`/`scm-recv`, `concurrent-alloc`, `hold-many`,
//! `recycle`): forking, reaping, waiting for a go-file the scenario creates,
//! reading `/proc/critmem`, and touching words of a raw mapping.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use critmem_abi::map_file::{self, MapFile};
use critmem_abi::MAP_FILE_PATH;

use crate::describe;

/// 2 MiB: the granule of every slice (critmem.ko rounds sizes up to it).
pub(crate) const GRANULE: u64 = 2 << 20;

/// `/proc/critmem`, read by the one parser.
pub(crate) fn map_file() -> Result<MapFile, String> {
    map_file::read(Path::new(MAP_FILE_PATH)).map_err(describe)
}

/// Flushes stdout, so that a child forked next does not inherit (and print
/// again) what is still buffered, and the scenario sees the line now.
pub(crate) fn flush() {
    let _ = io::stdout().flush();
}

/// Forks; the child runs `child` and `_exit`s with its status (0 on `Ok`,
/// 1 after printing the error). Returns the child's pid to the parent.
///
/// cmtool is single-threaded wherever this is called, so the child may
/// allocate and print freely.
pub(crate) fn fork_child(child: impl FnOnce() -> Result<(), String>) -> Result<i32, String> {
    flush();
    // SAFETY: the process has one thread (see above), so the child's copy
    // of every lock is unheld; the child leaves through `_exit` only.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        let status = match child() {
            Ok(()) => 0,
            Err(e) => {
                println!("child_error={e}");
                1
            }
        };
        flush();
        // SAFETY: `_exit` ends the child without running the parent's
        // atexit handlers or destructors twice.
        unsafe { libc::_exit(status) };
    }
    Ok(pid)
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// Reaps `pid`, waiting for it.
pub(crate) fn reap(pid: i32) -> Result<Ended, String> {
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer for the call.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid {
        return Err(format!("waitpid {pid}: {}", io::Error::last_os_error()));
    }
    Ok(if libc::WIFSIGNALED(status) {
        Ended::Signaled(libc::WTERMSIG(status))
    } else {
        Ended::Exited(libc::WEXITSTATUS(status))
    })
}

/// Reaps `pid` if it has ended, without waiting.
pub(crate) fn try_reap(pid: i32) -> Result<Option<Ended>, String> {
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer for the call.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match r {
        0 => Ok(None),
        r if r == pid => Ok(Some(if libc::WIFSIGNALED(status) {
            Ended::Signaled(libc::WTERMSIG(status))
        } else {
            Ended::Exited(libc::WEXITSTATUS(status))
        })),
        _ => Err(format!("waitpid {pid}: {}", io::Error::last_os_error())),
    }
}

/// Sends `sig` to `pid`.
pub(crate) fn kill(pid: i32, sig: i32) -> Result<(), String> {
    // SAFETY: `kill` has no memory preconditions.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(format!("kill {pid}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

/// Waits, with no time limit of its own (the scenario has one), until the
/// scenario creates `path`: the step the scenario checks before saying go.
pub(crate) fn wait_for_file(path: &str) {
    while !Path::new(path).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes the word `value` at byte `off` of the mapping at `base`.
///
/// # Safety
/// `[base + off, base + off + 8)` must lie inside a live writable mapping,
/// 8-byte aligned, referenced by no Rust reference.
pub(crate) unsafe fn poke(base: u64, off: u64, value: u64) {
    // SAFETY: by the caller's promise.
    unsafe { ((base + off) as *mut u64).write_volatile(value) };
}

/// Reads the word at byte `off` of the mapping at `base`.
///
/// # Safety
/// `[base + off, base + off + 8)` must lie inside a live readable mapping,
/// 8-byte aligned.
pub(crate) unsafe fn peek(base: u64, off: u64) -> u64 {
    // SAFETY: by the caller's promise.
    unsafe { ((base + off) as *const u64).read_volatile() }
}

/// The byte offsets `0, step, 2*step, ...` below `len`, and the last word.
pub(crate) fn sample_offsets(len: u64, step: u64) -> impl Iterator<Item = u64> {
    (0..len / step).map(move |i| i * step).chain([len - 8])
}

/// Checks that the mapping of `len` bytes at `base` holds `seed ^ off` at
/// every sampled word (one per 4 KiB page, and the last word).
///
/// # Safety
/// `[base, base + len)` must be a live readable mapping.
pub(crate) unsafe fn check_samples(base: u64, len: u64, seed: u64) -> Result<u64, String> {
    let mut n = 0;
    for off in sample_offsets(len, 4096) {
        // SAFETY: `off + 8 <= len`, inside the mapping by the caller's promise.
        let got = unsafe { peek(base, off) };
        if got != seed ^ off {
            return Err(format!(
                "offset {off:#x} holds {got:#x}, expected {:#x}",
                seed ^ off
            ));
        }
        n += 1;
    }
    Ok(n)
}

/// Writes `seed ^ off` at every sampled word (see [`check_samples`]).
///
/// # Safety
/// `[base, base + len)` must be a live writable mapping that no Rust
/// reference covers.
pub(crate) unsafe fn fill_samples(base: u64, len: u64, seed: u64) {
    for off in sample_offsets(len, 4096) {
        // SAFETY: `off + 8 <= len`, inside the mapping by the caller's promise.
        unsafe { poke(base, off, seed ^ off) };
    }
}

/// Whether this process can read the 8 bytes at `addr`, without a signal:
/// `write` from there into a pipe copies them through the kernel's user
/// access, which fails with `EFAULT` where nothing readable is mapped.
/// (`process_vm_readv` would do too, but the test kernel has no
/// CROSS_MEMORY_ATTACH.)
pub(crate) fn readable(addr: u64) -> Result<bool, String> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: the kernel only reads `[addr, addr + 8)` and checks it.
    let r = unsafe { libc::write(fds[1], addr as *const libc::c_void, 8) };
    let e = io::Error::last_os_error();
    // SAFETY: both descriptors were just made by `pipe` and are ours.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    match r {
        8 => Ok(true),
        -1 if e.raw_os_error() == Some(libc::EFAULT) => Ok(false),
        _ => Err(format!("write from {addr:#x} into a pipe: {r}: {e}")),
    }
}

/// The `/proc/self/maps` lines whose range overlaps `[start, start + len)`.
pub(crate) fn maps_overlapping(start: u64, len: u64) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string("/proc/self/maps").map_err(|e| format!("/proc/self/maps: {e}"))?;
    Ok(text
        .lines()
        .filter(|line| {
            let range = line.split_whitespace().next().unwrap_or("");
            let mut ends = range.split('-').map(|h| u64::from_str_radix(h, 16));
            match (ends.next(), ends.next()) {
                (Some(Ok(s)), Some(Ok(e))) => s < start + len && start < e,
                _ => false,
            }
        })
        .map(str::to_string)
        .collect())
}

/// `size` rounded up to the 2 MiB granule.
pub(crate) fn granules(size: u64) -> u64 {
    size.div_ceil(GRANULE) * GRANULE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_whole_granules() {
        assert_eq!(granules(4096), GRANULE);
        assert_eq!(granules(GRANULE), GRANULE);
        assert_eq!(granules(GRANULE + 4096), 2 * GRANULE);
    }

    #[test]
    fn own_memory_is_readable_and_a_hole_is_not() {
        let word = 7u64;
        assert!(readable(&word as *const u64 as u64).unwrap());
        assert!(!readable(8).unwrap(), "page 0 is never mapped");
    }

    #[test]
    fn samples_cover_every_page_and_the_last_word() {
        let offs: Vec<u64> = sample_offsets(3 * 4096, 4096).collect();
        assert_eq!(offs, vec![0, 4096, 8192, 3 * 4096 - 8]);
    }
}
