//! Who may do what with `/dev/critmem` (`tests/scenarios/kmod/access.sh`,
//! `kmod/per-uid-limit.sh`):
//!
//! - `run-as --uid U --gid G -- SUBCOMMAND ARGS`: drops every group, sets
//!   the group and user ids (so the process has no capability left), then
//!   runs `cmtool SUBCOMMAND ARGS` by executing itself.
//! - `alloc-efault --size N`: an ALLOC whose request lies in a read-only
//!   page, so the kernel can read it but not write the reply; then INFO and
//!   a second ALLOC on the same file, to show what the file kept.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use critmem_abi::{AllocRequest, CRITMEM_IOC_ALLOC};

use crate::args::num;
use crate::critmem_dev::{client_errno, errno_name, open_device};
use crate::describe;

/// `run-as`.
#[derive(Debug, clap::Args)]
pub struct RunAsArgs {
    /// The user id to become.
    #[arg(long)]
    uid: u32,
    /// The group id to become (the only group kept).
    #[arg(long)]
    gid: u32,
    /// The cmtool subcommand and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// `run-as`: never returns on success (the process becomes the command).
pub fn run_as(args: &RunAsArgs) -> Result<(), String> {
    let os = |what: &str| {
        format!(
            "{what}: {} (run-as must start as root)",
            io::Error::last_os_error()
        )
    };
    // SAFETY: setgroups with a count of 0 reads no list; setgid and setuid
    // take plain integers. Groups and gid go first: after setuid the process
    // may no longer change them.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os("setgroups([])"));
        }
        if libc::setgid(args.gid) != 0 {
            return Err(os(&format!("setgid({})", args.gid)));
        }
        if libc::setuid(args.uid) != 0 {
            return Err(os(&format!("setuid({})", args.uid)));
        }
    }
    let argv: Vec<CString> = std::iter::once("cmtool".to_string())
        .chain(args.command.iter().cloned())
        .map(|a| CString::new(a).map_err(|_| "an argument holds a NUL byte".to_string()))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: the path and every argument are NUL-terminated strings that
    // outlive the call, and the pointer array ends with a null pointer.
    unsafe { libc::execv(c"/proc/self/exe".as_ptr(), ptrs.as_ptr()) };
    Err(format!(
        "exec of /proc/self/exe: {}",
        io::Error::last_os_error()
    ))
}

/// `alloc-efault`.
#[derive(Debug, clap::Args)]
pub struct AllocEfaultArgs {
    /// Slice size of both ALLOCs.
    #[arg(long, value_parser = num)]
    size: u64,
}

/// A memfd page holding `req`, mapped shared and read-only. Returns the
/// mapping's address (never unmapped: the process is short-lived).
fn read_only_request(req: &AllocRequest) -> Result<*mut AllocRequest, String> {
    let os = |what: &str| format!("{what}: {}", io::Error::last_os_error());
    // SAFETY: memfd_create takes a NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(c"cmtool-request".as_ptr(), 0) };
    if fd < 0 {
        return Err(os("memfd_create"));
    }
    // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<AllocRequest>();
    // SAFETY: `req` is `len` readable bytes; `fd` is open.
    let written =
        unsafe { libc::pwrite(fd.as_raw_fd(), (req as *const AllocRequest).cast(), len, 0) };
    if written != len as isize {
        return Err(os("writing the request into the memfd"));
    }
    // SAFETY: a fresh shared read-only mapping of our own memfd at an
    // address of the kernel's choice aliases nothing of ours.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os("mmap of the memfd"));
    }
    Ok(p.cast())
}

/// `alloc-efault`.
pub fn alloc_efault(args: &AllocEfaultArgs) -> Result<(), String> {
    let device = open_device(false)?;
    let before = device.info().map_err(describe)?;
    println!("free_before={}", before.free_bytes);
    let req = AllocRequest {
        size: args.size,
        align: 0,
        ..Default::default()
    };
    let p = read_only_request(&req)?;
    // The client library takes `&mut AllocRequest`, which a read-only page
    // cannot be, so this one ioctl is raw.
    // SAFETY: CRITMEM_IOC_ALLOC touches one `AllocRequest` at `p`, a live
    // page-aligned mapping of 4096 bytes; the kernel's write into it fails
    // with EFAULT instead of changing it, and no Rust reference to it exists.
    let r = unsafe { libc::ioctl(device.as_fd().as_raw_fd(), CRITMEM_IOC_ALLOC as _, p) };
    let first = if r < 0 {
        errno_name(&io::Error::last_os_error())
    } else {
        "ok".to_string()
    };
    println!("first_alloc={first}");
    let after = device.info().map_err(describe)?;
    println!("info_slice_id={}", after.slice_id);
    println!("info_slice_size={}", after.slice_size);
    println!("free_after={}", after.free_bytes);
    match device.alloc(args.size, 0) {
        Ok(r) => {
            println!("second_alloc=ok");
            println!("second_phys_size={}", r.phys_size);
        }
        Err(e) => println!(
            "second_alloc={}",
            client_errno(&e)
                .as_ref()
                .map(errno_name)
                .unwrap_or_else(|| e.to_string())
        ),
    }
    Ok(())
}
