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
use crate::describe;
use crate::pattern::Pattern;
use critmem_abi::client::{ClientError, Device, MapOptions, Mapping, Placement};
use critmem_abi::{AllocRequest, PoolInfo, DEVICE_PATH};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

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
        libc::EBADF => "EBADF",
        libc::EDQUOT => "EDQUOT",
        _ => return format!("E{n}"),
    };
    name.to_string()
}

/// What to do about an errno of critmem's rules (kmod/README.md) whose
/// client error does not say it already.
pub(crate) fn errno_hint(e: &io::Error) -> Option<&'static str> {
    Some(match e.raw_os_error()? {
        libc::EAGAIN => {
            "only unzeroed memory fits a first mmap: wait until free_zeroed in \
             /proc/critmem covers the size, or ALLOC before mmap"
        }
        _ => return None,
    })
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
    /// Open the device read-only (ALLOC must then fail with EBADF).
    #[arg(long)]
    readonly: bool,
    /// After ALLOC, print INFO of the same file (keys prefixed `info_`).
    #[arg(long)]
    info: bool,
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
fn failed(expect: Option<&str>, what: &str, e: &io::Error) -> Result<(), String> {
    let name = errno_name(e);
    println!("error={name}");
    println!("message={what}");
    let hint = errno_hint(e);
    if let Some(hint) = hint {
        println!("hint={hint}");
    }
    let hint = hint.map(|h| format!(": {h}")).unwrap_or_default();
    match expect {
        Some(want) if want == name => {
            println!("expected=1");
            Ok(())
        }
        Some(want) => Err(format!("{what}: got {name}, expected {want}{hint}")),
        None => Err(format!("{what}: {e}{hint}")),
    }
}

/// The errno behind a failed client call: the OS error it carries, or the
/// one that the variants naming their own fix stand for.
pub(crate) fn client_errno(e: &ClientError) -> Option<io::Error> {
    match e {
        ClientError::OverUserLimit { .. } => Some(io::Error::from_raw_os_error(libc::EDQUOT)),
        ClientError::ReadOnly { .. } => Some(io::Error::from_raw_os_error(libc::EBADF)),
        _ => e
            .os_error()
            .and_then(io::Error::raw_os_error)
            .map(io::Error::from_raw_os_error),
    }
}

/// Reports a failed client call: fine if `expect` names its errno.
fn client_failed(expect: Option<&str>, e: &ClientError) -> Result<(), String> {
    match client_errno(e) {
        Some(os) => failed(expect, &e.to_string(), &os),
        None => Err(e.to_string()),
    }
}

/// Opens `/dev/critmem`.
pub(crate) fn open_device(read_only: bool) -> Result<Device, String> {
    let path = Path::new(DEVICE_PATH);
    if read_only {
        Device::open_read_only(path)
    } else {
        Device::open(path)
    }
    .map_err(describe)
}

/// Maps the whole slice of `size` bytes `va_offset` past a `va_align`
/// boundary.
pub(crate) fn map_at(
    device: &Device,
    size: u64,
    va_align: u64,
    va_offset: u64,
) -> Result<Mapping, String> {
    let options = MapOptions {
        placement: Placement::Aligned {
            align: va_align,
            offset: va_offset,
        },
        ..MapOptions::slice(size)
    };
    device.map(&options).map_err(describe)
}

/// The mapping as 64-bit words.
fn words(map: &mut Mapping) -> &mut [u64] {
    // SAFETY: the mapping is live, readable and writable (the callers map
    // it so), `size` bytes long and page aligned, and nothing else in this
    // process aliases it as a Rust reference while the `&mut` borrow lasts.
    unsafe { std::slice::from_raw_parts_mut(map.as_ptr().cast(), (map.size() / 8) as usize) }
}

/// `--verify-zero` and `--pattern` on a mapping.
fn use_mapping(args: &UseArgs, map: &mut Mapping) -> Result<(), String> {
    if args.verify_zero {
        if let Some(bad) = Pattern::Byte(0).first_mismatch(words(map), 0) {
            println!("zero=0 first_nonzero_offset={bad:#x}");
            return Err("slice does not read zero".into());
        }
        println!("zero=1 checked={}", map.size());
    }
    if let Some(p) = &args.pattern {
        let p = Pattern::parse(p)?;
        p.fill(words(map), 0);
        if p.first_mismatch(words(map), 0).is_some() {
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

/// Prints INFO's fields, each key prefixed with `prefix`.
fn print_info(info: &PoolInfo, prefix: &str) {
    println!("{prefix}abi_version={}", info.abi_version);
    println!("{prefix}source={}", info.source);
    println!("{prefix}pool_start={:#x}", info.pool_start);
    println!("{prefix}pool_size={}", info.pool_size);
    println!("{prefix}pool_align={}", info.pool_align);
    println!("{prefix}free_bytes={}", info.free_bytes);
    println!("{prefix}free_zeroed_bytes={}", info.free_zeroed_bytes);
    println!("{prefix}largest_free={}", info.largest_free);
    println!("{prefix}slice_count={}", info.slice_count);
    println!("{prefix}slice_id={}", info.slice_id);
    println!("{prefix}slice_start={:#x}", info.slice_start);
    println!("{prefix}slice_size={}", info.slice_size);
}

fn print_alloc(req: &AllocRequest) {
    println!("phys_start={:#x}", req.phys_start);
    println!("phys_size={}", req.phys_size);
    println!("slice_id={}", req.slice_id);
}

/// `info`.
pub fn info() -> Result<(), String> {
    let device = open_device(true)?;
    print_info(&device.info().map_err(describe)?, "");
    Ok(())
}

/// `alloc`.
pub fn alloc(args: &AllocArgs) -> Result<(), String> {
    let device = open_device(args.readonly)?;
    let t0 = std::time::Instant::now();
    let req = match device.alloc(args.size, args.align) {
        Ok(r) => r,
        Err(e) => return client_failed(args.expect.as_deref(), &e),
    };
    println!("alloc_us={}", t0.elapsed().as_micros());
    print_alloc(&req);
    if args.info {
        print_info(&device.info().map_err(describe)?, "info_");
    }
    if let Some(again) = args.again {
        match device.alloc(again, 0) {
            Ok(_) => return Err("second ALLOC on the same file succeeded".into()),
            Err(e) => println!(
                "again_error={}",
                client_errno(&e)
                    .as_ref()
                    .map(errno_name)
                    .unwrap_or_default()
            ),
        }
    }
    let _map = if args.map || args.usage.verify_zero || args.usage.pattern.is_some() {
        let mut map = device
            .map(&MapOptions::slice(req.phys_size))
            .map_err(describe)?;
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
    let device = open_device(args.readonly)?;
    if let Some(n) = args.alloc {
        print_alloc(&device.alloc(n, args.align).map_err(describe)?);
    }
    let options = MapOptions {
        file_offset: args.offset,
        private: args.private,
        read_only: args.readonly,
        ..MapOptions::slice(args.size)
    };
    let mut map = match device.map(&options) {
        Ok(m) => m,
        Err(e) => return client_failed(args.expect.as_deref(), &e),
    };
    println!("mapped=1");
    let info = device.info().map_err(describe)?;
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
    let device = open_device(false)?;
    if !args.no_alloc {
        print_alloc(&device.alloc(size, args.align).map_err(describe)?);
    }
    let map = if args.natural {
        // Let the kernel (critmem's get_unmapped_area) pick the address.
        device.map(&MapOptions::slice(size)).map_err(describe)?
    } else {
        map_at(&device, size, args.va_align, args.va_offset)?
    };
    touch_pages(&device, &map, args.write).inspect(|_| {
        println!(
            "va_1g_aligned={}",
            u8::from(map.addr().is_multiple_of(1 << 30))
        )
    })
}

/// Touches every 4 KiB page of `map` and prints the minor faults taken.
fn touch_pages(device: &Device, map: &Mapping, write: bool) -> Result<(), String> {
    let info = device.info().map_err(describe)?;
    println!("va={:#x}", map.addr());
    println!("pa={:#x}", info.slice_start);
    let pages = map.size() / PAGE;
    let first_word = map.as_ptr().cast::<u64>();
    let before = minflt();
    let mut sum = 0u64;
    for i in 0..pages {
        // SAFETY: the first word of page `i` lies inside the live mapping,
        // which the callers map readable and writable.
        unsafe {
            let p = first_word.add((i * PAGE / 8) as usize);
            if write {
                p.write_volatile(i);
            } else {
                sum = sum.wrapping_add(p.read_volatile());
            }
        }
    }
    let after = minflt();
    println!("pages={pages}");
    println!("minflt={}", after - before);
    println!("checksum={sum}");
    Ok(())
}

/// `ioctl`.
pub fn ioctl(args: &IoctlArgs) -> Result<(), String> {
    let device = open_device(false)?;
    let mut buf = [0u64; 32];
    // SAFETY: `buf` is larger than any critmem argument, so whatever the
    // command reads or writes stays inside it.
    let r = unsafe { libc::ioctl(device.as_fd().as_raw_fd(), args.cmd as _, buf.as_mut_ptr()) };
    if r < 0 {
        return failed(args.expect.as_deref(), "ioctl", &io::Error::last_os_error());
    }
    println!("result={r}");
    Ok(())
}
