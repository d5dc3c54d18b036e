//! `cmtool zero-race`: does a dirty ALLOC, while it zeroes, block the other
//! threads of its process? (`tests/scenarios/kmod/zero-unlocked.sh`.)
//!
//! Thread A ALLOCs `--size` bytes, which on a dirty pool zeroes most of
//! them before the call returns. Thread B waits until `/proc/critmem` lists
//! a slice of this process in state `zeroing` (so A is inside the ioctl),
//! then runs the `--op` steps in order:
//!
//! - `same-file`: on A's file, INFO (must show no slice), mmap and a second
//!   ALLOC (each must fail with `EBUSY`): the file is busy, not locked;
//! - `anon`: mmap 16 MiB of anonymous memory and fault every page in;
//! - `maps`: read `/proc/self/maps` whole (takes `mmap_lock` for reading);
//! - `other-file`: mmap a second open file of `/dev/critmem`, ALLOCed (and
//!   so zeroed) before A started, and write to it.
//!
//! Each thread takes a ticket from one counter when it is done, so the
//! output says which finished first (`first=B`), an ordering and not a
//! time. B also reads `/proc/critmem` once more when it is done and prints
//! `b_done_while_zeroing=1` if A's slice was still being zeroed then.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;

use critmem_abi::client::{Device, MapOptions};
use critmem_abi::map_keys::SLICE_STATE_ZEROING;
use critmem_abi::{map_file, MAP_FILE_PATH};

use crate::args::num;
use crate::critmem_dev::{client_errno, errno_name, open_device};
use crate::describe;

const ANON_BYTES: usize = 16 << 20;
const PAGE: usize = 4096;
const OTHER_FILE_BYTES: u64 = 2 << 20;

/// One step of thread B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// INFO, mmap and ALLOC on A's file.
    SameFile,
    /// Map and fault anonymous memory.
    Anon,
    /// Read /proc/self/maps.
    Maps,
    /// Map a second, already ALLOCed file.
    OtherFile,
}

/// `zero-race`.
#[derive(Debug, clap::Args)]
pub struct ZeroRaceArgs {
    /// Thread A's ALLOC size (make it most of a dirty pool).
    #[arg(long, value_parser = num)]
    size: u64,
    /// Thread A's ALLOC alignment.
    #[arg(long, value_parser = num, default_value = "2M")]
    align: u64,
    /// Thread B's steps, in order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    op: Vec<Op>,
}

/// Whether `/proc/critmem` lists a slice of this process in state
/// `zeroing`.
fn zeroing_now(pid: u64) -> Result<bool, String> {
    let map = map_file::read(Path::new(MAP_FILE_PATH)).map_err(describe)?;
    Ok(map
        .slices
        .iter()
        .any(|s| s.pid == pid && s.state == SLICE_STATE_ZEROING))
}

/// Thread B's steps; returns the lines to print.
fn run_ops(ops: &[Op], a_file: &Device, other: Option<&Device>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::SameFile => {
                let info = a_file.info().map_err(describe)?;
                out.push(format!("b_same_file_info_slice_id={}", info.slice_id));
                out.push(format!("b_same_file_info_slice_size={}", info.slice_size));
                let mmap = a_file.map(&MapOptions::slice(2 << 20));
                out.push(format!(
                    "b_same_file_mmap={}",
                    match &mmap {
                        Ok(_) => "ok".to_string(),
                        Err(e) => client_errno(e)
                            .as_ref()
                            .map(errno_name)
                            .unwrap_or(e.to_string()),
                    }
                ));
                drop(mmap);
                let alloc = a_file.alloc(2 << 20, 0);
                out.push(format!(
                    "b_same_file_alloc={}",
                    match &alloc {
                        Ok(_) => "ok".to_string(),
                        Err(e) => client_errno(e)
                            .as_ref()
                            .map(errno_name)
                            .unwrap_or(e.to_string()),
                    }
                ));
            }
            Op::Anon => {
                // SAFETY: a fresh private anonymous mapping at an address of
                // the kernel's choice aliases nothing; it is unmapped below
                // and no reference into it escapes this block.
                unsafe {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        ANON_BYTES,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    if p == libc::MAP_FAILED {
                        return Err(format!(
                            "anonymous mmap: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
                    for i in (0..ANON_BYTES).step_by(PAGE) {
                        p.cast::<u8>().add(i).write_volatile(1);
                    }
                    libc::munmap(p, ANON_BYTES);
                }
                out.push(format!("b_anon_faulted={}", ANON_BYTES / PAGE));
            }
            Op::Maps => {
                let maps = fs::read_to_string("/proc/self/maps")
                    .map_err(|e| format!("reading /proc/self/maps: {e}"))?;
                out.push(format!("b_maps_lines={}", maps.lines().count()));
            }
            Op::OtherFile => {
                let other = other.ok_or("other-file needs the second file")?;
                let map = other
                    .map(&MapOptions::slice(OTHER_FILE_BYTES))
                    .map_err(describe)?;
                // SAFETY: the first byte of the live, writable mapping.
                unsafe { map.as_ptr().write_volatile(0x5a) };
                out.push("b_other_file_mapped=1".to_string());
            }
        }
    }
    Ok(out)
}

/// `zero-race`.
pub fn run(args: &ZeroRaceArgs) -> Result<(), String> {
    let pid = u64::from(std::process::id());
    let a_file = Arc::new(open_device(false)?);
    // ALLOCed before A starts, so that mapping it needs nothing A holds.
    let other = if args.op.contains(&Op::OtherFile) {
        let d = open_device(false)?;
        let r = d.alloc(OTHER_FILE_BYTES, 0).map_err(describe)?;
        println!("other_file_phys_size={}", r.phys_size);
        Some(d)
    } else {
        None
    };
    let tickets = Arc::new(AtomicU32::new(0));
    let a_done = Arc::new(AtomicBool::new(false));
    let a = {
        let (file, tickets, done) = (a_file.clone(), tickets.clone(), a_done.clone());
        let (size, align) = (args.size, args.align);
        thread::spawn(move || {
            let result = file.alloc(size, align);
            let ticket = tickets.fetch_add(1, Ordering::SeqCst);
            done.store(true, Ordering::SeqCst);
            (ticket, result)
        })
    };
    // Thread B is this thread: wait for A inside the ioctl.
    let mut seen = false;
    while !a_done.load(Ordering::SeqCst) {
        if zeroing_now(pid)? {
            seen = true;
            break;
        }
        thread::sleep(std::time::Duration::from_millis(1));
    }
    let b = if seen {
        let lines = run_ops(&args.op, &a_file, other.as_ref());
        let ticket = tickets.fetch_add(1, Ordering::SeqCst);
        let still = zeroing_now(pid)?;
        Some((ticket, lines, still))
    } else {
        None
    };
    let (a_ticket, a_result) = a.join().map_err(|_| "thread A panicked")?;
    let req = a_result.map_err(describe)?;
    println!("a_phys_size={}", req.phys_size);
    let Some((b_ticket, lines, still)) = b else {
        let _ = std::io::stdout().flush();
        return Err(format!(
            "thread A's ALLOC returned before /proc/critmem showed it zeroing: the pool \
             was not dirty enough; ALLOC more of it right after insmod (--size {})",
            args.size
        ));
    };
    for line in lines? {
        println!("{line}");
    }
    println!("zeroing_seen=1");
    println!("b_done_while_zeroing={}", u8::from(still));
    println!("first={}", if b_ticket < a_ticket { "B" } else { "A" });
    Ok(())
}
