//! A slice shared through its open file, by fork and by `SCM_RIGHTS` (see
//! `tests/scenarios/kmod/fork-scm.sh`). The data is `seq:SEED` words, one
//! per 4 KiB page plus the last word ([`procs::fill_samples`]).
//!
//! - `fork-share --size N --seed S --go FILE`: ALLOCs and maps N bytes and
//!   writes the data. A first child (the probe) reads the parent's mapping
//!   address: with `VM_DONTCOPY` it has no mapping there and must die of
//!   SIGSEGV (`probe_sigsegv=1`). A second child (the heir, `heir_pid=`)
//!   checks that its `/proc/self/maps` has nothing at that address, maps the
//!   inherited file and reads the parent's data (`heir_data_ok=1`), then the
//!   parent exits. The heir waits for FILE (the scenario creates it once it
//!   has reaped the parent and seen the slice still listed), reads the data
//!   again (`heir_data_after_parent=1`), prints `heir_holding=1` and waits to
//!   be killed.
//! - `scm-recv --socket PATH --go FILE`: listens on PATH (`listening=1`),
//!   takes one file descriptor and the slice size from a sender
//!   (`received=1`), waits for FILE, then maps the received file and checks
//!   the data (`recv_data_ok=1`).
//! - `scm-send --socket PATH --size N --seed S`: ALLOCs, maps and writes N
//!   bytes, sends the file over PATH, unmaps, closes the file and exits
//!   (`sent=1`).

use std::io::{self, Read, Write};
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use critmem_abi::client::MapOptions;

use crate::args::num;
use crate::critmem_dev::open_device;
use crate::describe;
use crate::procs::{self, Ended};

/// `fork-share`.
#[derive(Debug, clap::Args)]
pub struct ForkShareArgs {
    /// Slice size.
    #[arg(long, value_parser = num)]
    size: u64,
    /// Seed of the data.
    #[arg(long, value_parser = num)]
    seed: u64,
    /// The file whose creation lets the heir go on after the parent exited.
    #[arg(long)]
    go: String,
}

/// `scm-send`.
#[derive(Debug, clap::Args)]
pub struct ScmSendArgs {
    /// The receiver's unix socket.
    #[arg(long)]
    socket: String,
    /// Slice size.
    #[arg(long, value_parser = num)]
    size: u64,
    /// Seed of the data.
    #[arg(long, value_parser = num)]
    seed: u64,
}

/// `scm-recv`.
#[derive(Debug, clap::Args)]
pub struct ScmRecvArgs {
    /// The unix socket to listen on.
    #[arg(long)]
    socket: String,
    /// Seed of the data.
    #[arg(long, value_parser = num)]
    seed: u64,
    /// The file whose creation lets the receiver map the slice.
    #[arg(long)]
    go: String,
}

/// `fork-share`.
pub fn fork_share(args: &ForkShareArgs) -> Result<(), String> {
    let size = args.size;
    let device = open_device(false)?;
    let req = device.alloc(size, 0).map_err(describe)?;
    let map = device.map(&MapOptions::slice(size)).map_err(describe)?;
    let va = map.addr();
    // SAFETY: `map` is a live writable mapping of `size` bytes.
    unsafe { procs::fill_samples(va, size, args.seed) };
    println!("slice_id={}", req.slice_id);
    println!("parent_va={va:#x}");

    let probe = procs::fork_child(|| {
        // SAFETY: none in the normal sense: with VM_DONTCOPY nothing is
        // mapped at `va` in this child, so this read is meant to fault and
        // end the child with SIGSEGV; should it succeed, the child exits 0
        // and the parent reports the inherited mapping.
        let _ = unsafe { procs::peek(va, 0) };
        Ok(())
    })?;
    match procs::reap(probe)? {
        Ended::Signaled(libc::SIGSEGV) => println!("probe_sigsegv=1"),
        other => {
            return Err(format!(
                "a forked child read the parent's mapping at {va:#x} ({other:?}): VM_DONTCOPY \
                 did not keep the mapping out of the child"
            ))
        }
    }

    let (mut ready_rx, ready_tx) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let heir = procs::fork_child(|| {
        let inherited: Vec<String> = procs::maps_overlapping(va, size)?
            .into_iter()
            .filter(|l| l.contains("critmem"))
            .collect();
        if !inherited.is_empty() {
            return Err(format!(
                "the child's /proc/self/maps has the parent's range: {inherited:?}"
            ));
        }
        println!("heir_maps_clean=1");
        let own = device.map(&MapOptions::slice(size)).map_err(describe)?;
        // SAFETY: `own` is a live readable mapping of `size` bytes.
        let n = unsafe { procs::check_samples(own.addr(), size, args.seed) }?;
        println!("heir_data_ok=1 words={n}");
        procs::flush();
        (&ready_tx)
            .write_all(&[1])
            .map_err(|e| format!("telling the parent: {e}"))?;
        procs::wait_for_file(&args.go);
        // SAFETY: as above; the heir's mapping is still live.
        let n = unsafe { procs::check_samples(own.addr(), size, args.seed) }?;
        println!("heir_data_after_parent=1 words={n}");
        println!("heir_holding=1");
        procs::flush();
        loop {
            // SAFETY: `pause` has no preconditions.
            unsafe { libc::pause() };
        }
    })?;
    println!("heir_pid={heir}");
    drop(ready_tx);
    let mut byte = [0u8];
    ready_rx
        .read_exact(&mut byte)
        .map_err(|e| format!("the heir {heir} failed before mapping: {e}"))?;
    println!("parent_exit=1");
    Ok(())
}

/// `scm-send`.
pub fn scm_send(args: &ScmSendArgs) -> Result<(), String> {
    let size = args.size;
    let device = open_device(false)?;
    let req = device.alloc(size, 0).map_err(describe)?;
    let map = device.map(&MapOptions::slice(size)).map_err(describe)?;
    // SAFETY: `map` is a live writable mapping of `size` bytes.
    unsafe { procs::fill_samples(map.addr(), size, args.seed) };
    let stream =
        UnixStream::connect(&args.socket).map_err(|e| format!("connect {}: {e}", args.socket))?;
    send_fd(&stream, device.as_fd().as_raw_fd(), size)?;
    drop(map);
    drop(device);
    println!("slice_id={}", req.slice_id);
    println!("sent=1");
    Ok(())
}

/// `scm-recv`.
pub fn scm_recv(args: &ScmRecvArgs) -> Result<(), String> {
    let _ = std::fs::remove_file(&args.socket);
    let listener =
        UnixListener::bind(&args.socket).map_err(|e| format!("bind {}: {e}", args.socket))?;
    println!("listening=1");
    procs::flush();
    let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let (fd, size) = recv_fd(&stream)?;
    println!("received=1 size={size}");
    procs::flush();
    procs::wait_for_file(&args.go);
    // SAFETY: a fresh shared mapping at an address of the kernel's choice
    // aliases nothing; the fd is the received critmem file.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(format!(
            "mmap of the received file: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: `addr` is a live readable mapping of `size` bytes.
    let n = unsafe { procs::check_samples(addr as u64, size, args.seed) }?;
    println!("recv_data_ok=1 words={n}");
    // SAFETY: this function made the mapping and holds no reference into it.
    unsafe { libc::munmap(addr, size as usize) };
    Ok(())
}

/// Room for one `SCM_RIGHTS` control message carrying one fd.
#[repr(C)]
union Control {
    buf: [u8; 64],
    _align: libc::cmsghdr,
}

/// Sends `fd` with the 8-byte slice size as the payload.
fn send_fd(stream: &UnixStream, fd: i32, size: u64) -> Result<(), String> {
    let mut payload = size.to_ne_bytes();
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let mut control = Control { buf: [0; 64] };
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(size_of::<i32>() as u32) } as usize;
    assert!(space <= size_of::<Control>());
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` describes `control`, which has room for one header and
    // one fd (asserted above), so the first header lies inside it and its
    // data area holds the 4 bytes written.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<i32>() as u32) as _;
        libc::CMSG_DATA(cmsg).cast::<i32>().write_unaligned(fd);
    }
    // SAFETY: every pointer in `msg` points at live locals.
    let r = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, 0) };
    if r != payload.len() as isize {
        return Err(format!("sendmsg: {}", io::Error::last_os_error()));
    }
    Ok(())
}

/// Receives one fd and the slice size that [`send_fd`] sent.
fn recv_fd(stream: &UnixStream) -> Result<(OwnedFd, u64), String> {
    let mut payload = [0u8; 8];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    let mut control = Control { buf: [0; 64] };
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control).cast();
    msg.msg_controllen = size_of::<Control>() as _;
    // SAFETY: every pointer in `msg` points at live locals of the sizes
    // given.
    let r = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if r != payload.len() as isize {
        return Err(format!(
            "recvmsg: got {r} bytes: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel filled `control` and set `msg_controllen`; the
    // header, if any, lies inside it, and an SCM_RIGHTS header of
    // CMSG_LEN(4) bytes carries one fd in its data area.
    let fd = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            || (*cmsg).cmsg_len as usize != libc::CMSG_LEN(size_of::<i32>() as u32) as usize
        {
            return Err("the message carried no file descriptor".into());
        }
        libc::CMSG_DATA(cmsg).cast::<i32>().read_unaligned()
    };
    // SAFETY: SCM_RIGHTS installed `fd` in this process for us alone.
    Ok((
        unsafe { OwnedFd::from_raw_fd(fd) },
        u64::from_ne_bytes(payload),
    ))
}
