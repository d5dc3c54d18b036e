//! Subcommands driving `/dev/critmem` (see `tests/scenarios/kmod/`). Every
//! result is printed as `key=value` lines; with `--expect ERRNO` a failing
//! step passes if it fails with exactly that errno (printed as `error=NAME`).
//!
//! - `info`: the INFO ioctl on a fresh open file.
//! - `alloc --size N [--align A] [--again N] [--map] [--verify-zero]
//!   [--pattern P] [--hold]`: ALLOC, then optionally a second ALLOC, a
//!   shared mapping of the slice, a check that it reads zero, a fill.
//!   Prints the ALLOC's wall time as `alloc_us`.
//! - `mmap --size N [--offset O] [--private] [--readonly] [--alloc N]
//!   [--verify-zero] [--pattern P] [--hold]`: mmap with or without ALLOC.
//! - `touch --size N [--align A] [--no-alloc] [--va-align A] [--va-offset O]
//!   [--natural] [--write]`: maps the slice at a chosen virtual alignment
//!   (or, with `--natural`, where the kernel places it), touches every
//!   4 KiB page and prints the minor faults the kernel counted (getrusage).
//! - `ioctl --cmd NUM`: an arbitrary ioctl number.
//!
//! `--hold` prints `ready=1` and sleeps until killed, keeping the file and
//! mapping alive.

use crate::args::num;
use crate::pattern::Pattern;
use critmem_abi::{AllocRequest, PoolInfo, CRITMEM_IOC_ALLOC, CRITMEM_IOC_INFO, DEVICE_PATH};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;

const PAGE: u64 = 4096;

pub(crate) fn errno_name(e: &io::Error) -> String {
    let n = e.raw_os_error().unwrap_or(0);
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::EAGAIN => "EAGAIN",
        libc::EOVERFLOW => "EOVERFLOW",
        _ => return format!("E{n}"),
    };
    name.to_string()
}

/// What to do with a mapping once it exists.
#[derive(Debug, clap::Args)]
pub struct UseArgs {
    /// Check that every byte reads zero.
    #[arg(long)]
    verify_zero: bool,
    /// Fill with this pattern (`0xAB` or `seq:SEED`) and check it.
    #[arg(long)]
    pattern: Option<String>,
    /// Print `ready=1` and sleep until killed, keeping file and mapping.
    #[arg(long)]
    hold: bool,
}

/// `alloc`.
#[derive(Debug, clap::Args)]
pub struct AllocArgs {
    /// Slice size.
    #[arg(long, value_parser = num)]
    size: u64,
    /// Physical alignment (0: 4 KiB).
    #[arg(long, value_parser = num, default_value = "0")]
    align: u64,
    /// A second ALLOC of this size on the same file, which must fail.
    #[arg(long, value_parser = num)]
    again: Option<u64>,
    /// Map the slice.
    #[arg(long)]
    map: bool,
    #[command(flatten)]
    usage: UseArgs,
    /// Pass when ALLOC fails with exactly this errno (e.g. EINVAL).
    #[arg(long)]
    expect: Option<String>,
}

/// `mmap`.
#[derive(Debug, clap::Args)]
pub struct MmapArgs {
    /// Mapping length.
    #[arg(long, value_parser = num)]
    size: u64,
    /// File offset.
    #[arg(long, value_parser = num, default_value = "0")]
    offset: u64,
    /// MAP_PRIVATE instead of MAP_SHARED.
    #[arg(long)]
    private: bool,
    /// Open and map read-only.
    #[arg(long)]
    readonly: bool,
    /// ALLOC a slice of this size first.
    #[arg(long, value_parser = num)]
    alloc: Option<u64>,
    /// Physical alignment of that ALLOC.
    #[arg(long, value_parser = num, default_value = "0")]
    align: u64,
    #[command(flatten)]
    usage: UseArgs,
    /// Pass when mmap fails with exactly this errno.
    #[arg(long)]
    expect: Option<String>,
}

/// `touch`.
#[derive(Debug, clap::Args)]
pub struct TouchArgs {
    /// Slice and mapping size.
    #[arg(long, value_parser = num)]
    size: u64,
    /// Physical alignment of the ALLOC.
    #[arg(long, value_parser = num, default_value = "0")]
    align: u64,
    /// No ALLOC: the first mmap allocates the slice.
    #[arg(long)]
    no_alloc: bool,
    /// Virtual alignment of the mapping.
    #[arg(long, value_parser = num, default_value = "1G")]
    va_align: u64,
    /// Offset past that alignment.
    #[arg(long, value_parser = num, default_value = "0")]
    va_offset: u64,
    /// Let the kernel choose the address.
    #[arg(long)]
    natural: bool,
    /// Write each page instead of reading it.
    #[arg(long)]
    write: bool,
}

/// `ioctl`.
#[derive(Debug, clap::Args)]
pub struct IoctlArgs {
    /// The ioctl number.
    #[arg(long, value_parser = num)]
    cmd: u64,
    /// Pass when the ioctl fails with exactly this errno.
    #[arg(long)]
    expect: Option<String>,
}

/// Reports a failed step: fine if `expect` names its errno.
fn failed(expect: Option<&str>, what: &str, e: io::Error) -> Result<(), String> {
    let name = errno_name(&e);
    println!("error={name}");
    match expect {
        Some(want) if want == name => {
            println!("expected=1");
            Ok(())
        }
        Some(want) => Err(format!("{what}: got {name}, expected {want}")),
        None => Err(format!("{what}: {e}")),
    }
}

pub(crate) fn open_dev(readonly: bool) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(!readonly)
        .open(DEVICE_PATH)
        .map_err(|e| format!("open {DEVICE_PATH}: {e}"))
}

pub(crate) fn ioctl_alloc(f: &File, size: u64, align: u64) -> io::Result<AllocRequest> {
    let mut req = AllocRequest {
        size,
        align,
        ..Default::default()
    };
    // SAFETY: `req` is a valid AllocRequest the kernel reads and writes.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), CRITMEM_IOC_ALLOC as _, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

fn ioctl_info(f: &File) -> io::Result<PoolInfo> {
    let mut info = PoolInfo::default();
    // SAFETY: `info` is a valid PoolInfo the kernel writes.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), CRITMEM_IOC_INFO as _, &mut info) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// A live mapping, unmapped on drop.
pub(crate) struct Mapping {
    pub(crate) ptr: *mut u64,
    len: u64,
}

impl Mapping {
    /// Maps `len` bytes of `f` at `off`; `at` asks for a fixed address.
    fn new(
        f: &File,
        len: u64,
        off: u64,
        private: bool,
        readonly: bool,
        at: Option<u64>,
    ) -> io::Result<Self> {
        let prot = if readonly {
            libc::PROT_READ
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        let mut flags = if private {
            libc::MAP_PRIVATE
        } else {
            libc::MAP_SHARED
        };
        if at.is_some() {
            flags |= libc::MAP_FIXED;
        }
        // SAFETY: A new mapping of our own file; with MAP_FIXED the address
        // lies in a PROT_NONE reservation we own (see `touch`).
        let p = unsafe {
            libc::mmap(
                at.unwrap_or(0) as *mut libc::c_void,
                len as usize,
                prot,
                flags,
                f.as_raw_fd(),
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { ptr: p.cast(), len })
    }

    fn words(&mut self) -> &mut [u64] {
        // SAFETY: The mapping is live, `len` bytes long and page aligned, and
        // nothing else in this process aliases it as a Rust reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, (self.len / 8) as usize) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: Unmaps exactly the mapping we made.
        unsafe { libc::munmap(self.ptr.cast(), self.len as usize) };
    }
}

/// `--verify-zero` and `--pattern` on a mapping.
fn use_mapping(args: &UseArgs, map: &mut Mapping) -> Result<(), String> {
    if args.verify_zero {
        if let Some(bad) = Pattern::Byte(0).first_mismatch(map.words(), 0) {
            println!("zero=0 first_nonzero_offset={bad:#x}");
            return Err("slice does not read zero".into());
        }
        println!("zero=1 checked={}", map.len);
    }
    if let Some(p) = &args.pattern {
        let p = Pattern::parse(p)?;
        p.fill(map.words(), 0);
        if p.first_mismatch(map.words(), 0).is_some() {
            return Err("pattern did not stick".into());
        }
        println!("pattern_written=1");
    }
    Ok(())
}

fn hold(args: &UseArgs) {
    if args.hold {
        println!("ready=1");
        let _ = io::stdout().flush();
        loop {
            // SAFETY: `pause` has no preconditions.
            unsafe { libc::pause() };
        }
    }
}

fn print_info(info: &PoolInfo) {
    println!("abi_version={}", info.abi_version);
    println!("source={}", info.source);
    println!("pool_start={:#x}", info.pool_start);
    println!("pool_size={}", info.pool_size);
    println!("pool_align={}", info.pool_align);
    println!("free_bytes={}", info.free_bytes);
    println!("free_zeroed_bytes={}", info.free_zeroed_bytes);
    println!("largest_free={}", info.largest_free);
    println!("slice_count={}", info.slice_count);
    println!("slice_id={}", info.slice_id);
    println!("slice_start={:#x}", info.slice_start);
    println!("slice_size={}", info.slice_size);
}

fn print_alloc(req: &AllocRequest) {
    println!("phys_start={:#x}", req.phys_start);
    println!("phys_size={}", req.phys_size);
    println!("slice_id={}", req.slice_id);
}

/// `info`.
pub fn info() -> Result<(), String> {
    let f = open_dev(true)?;
    print_info(&ioctl_info(&f).map_err(|e| format!("INFO: {e}"))?);
    Ok(())
}

/// `alloc`.
pub fn alloc(args: &AllocArgs) -> Result<(), String> {
    let f = open_dev(false)?;
    let t0 = std::time::Instant::now();
    let req = match ioctl_alloc(&f, args.size, args.align) {
        Ok(r) => r,
        Err(e) => return failed(args.expect.as_deref(), "ALLOC", e),
    };
    println!("alloc_us={}", t0.elapsed().as_micros());
    print_alloc(&req);
    if let Some(again) = args.again {
        match ioctl_alloc(&f, again, 0) {
            Ok(_) => return Err("second ALLOC on the same file succeeded".into()),
            Err(e) => println!("again_error={}", errno_name(&e)),
        }
    }
    let _map = if args.map || args.usage.verify_zero || args.usage.pattern.is_some() {
        let mut map = Mapping::new(&f, req.phys_size, 0, false, false, None)
            .map_err(|e| format!("mmap: {e}"))?;
        use_mapping(&args.usage, &mut map)?;
        Some(map)
    } else {
        None
    };
    let _ = io::stdout().flush();
    hold(&args.usage);
    Ok(())
}

/// `mmap`.
pub fn mmap(args: &MmapArgs) -> Result<(), String> {
    let f = open_dev(args.readonly)?;
    if let Some(n) = args.alloc {
        let req = ioctl_alloc(&f, n, args.align).map_err(|e| format!("ALLOC: {e}"))?;
        print_alloc(&req);
    }
    let mut map = match Mapping::new(
        &f,
        args.size,
        args.offset,
        args.private,
        args.readonly,
        None,
    ) {
        Ok(m) => m,
        Err(e) => return failed(args.expect.as_deref(), "mmap", e),
    };
    println!("mapped=1");
    let info = ioctl_info(&f).map_err(|e| format!("INFO: {e}"))?;
    println!("slice_id={}", info.slice_id);
    println!("slice_start={:#x}", info.slice_start);
    println!("slice_size={}", info.slice_size);
    if !args.readonly {
        use_mapping(&args.usage, &mut map)?;
    }
    let _ = io::stdout().flush();
    hold(&args.usage);
    Ok(())
}

/// The minor page faults this process has taken so far.
pub(crate) fn minflt() -> i64 {
    // SAFETY: getrusage writes the zero-initialised struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_minflt as i64
    }
}

/// `touch`.
pub fn touch(args: &TouchArgs) -> Result<(), String> {
    let size = args.size;
    let f = open_dev(false)?;
    if !args.no_alloc {
        let req = ioctl_alloc(&f, size, args.align).map_err(|e| format!("ALLOC: {e}"))?;
        print_alloc(&req);
    }
    let map = if args.natural {
        // Let the kernel (critmem's get_unmapped_area) pick the address.
        Mapping::new(&f, size, 0, false, false, None).map_err(|e| format!("mmap: {e}"))?
    } else {
        reserve_and_map(&f, size, args.va_align, args.va_offset)?
    };
    let va = map.ptr as u64;
    touch_pages(&f, &map, size, args.write)
        .inspect(|_| println!("va_1g_aligned={}", u8::from(va.is_multiple_of(1 << 30))))
}

/// Reserves `span` bytes of address space (PROT_NONE, never freed: the
/// process is short-lived) and returns its start.
pub(crate) fn reserve_va(span: u64) -> Result<u64, String> {
    // SAFETY: A fresh PROT_NONE anonymous reservation.
    let res = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if res == libc::MAP_FAILED {
        return Err(format!("reserve VA: {}", io::Error::last_os_error()));
    }
    Ok(res as u64)
}

/// Reserves room, then maps `f` at `va_off` past a `va_align` boundary in it.
pub(crate) fn reserve_and_map(
    f: &File,
    size: u64,
    va_align: u64,
    va_off: u64,
) -> Result<Mapping, String> {
    let res = reserve_va(size + 2 * va_align + va_off)?;
    let va = res.div_ceil(va_align) * va_align + va_off;
    Mapping::new(f, size, 0, false, false, Some(va)).map_err(|e| format!("mmap: {e}"))
}

/// Touches every 4 KiB page of `map` and prints the minor faults taken.
fn touch_pages(f: &File, map: &Mapping, size: u64, write: bool) -> Result<(), String> {
    let info = ioctl_info(f).map_err(|e| format!("INFO: {e}"))?;
    println!("va={:#x}", map.ptr as u64);
    println!("pa={:#x}", info.slice_start);
    let before = minflt();
    let mut sum = 0u64;
    for i in 0..size / PAGE {
        // SAFETY: Inside the live mapping.
        unsafe {
            let p = map.ptr.add((i * PAGE / 8) as usize);
            if write {
                p.write_volatile(i);
            } else {
                sum = sum.wrapping_add(p.read_volatile());
            }
        }
    }
    let after = minflt();
    println!("pages={}", size / PAGE);
    println!("minflt={}", after - before);
    println!("checksum={sum}");
    Ok(())
}

/// `ioctl`.
pub fn ioctl(args: &IoctlArgs) -> Result<(), String> {
    let cmd = args.cmd;
    let f = open_dev(false)?;
    let mut buf = [0u64; 32];
    // SAFETY: `buf` is larger than any critmem argument.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), cmd as _, buf.as_mut_ptr()) };
    if r < 0 {
        return failed(args.expect.as_deref(), "ioctl", io::Error::last_os_error());
    }
    println!("result={r}");
    Ok(())
}
