//! `mktap NAME --owner UID [--tun]`: what `ip tuntap add NAME mode tap
//! user USER` does, for an emulated host whose busybox has no `ip tuntap`:
//! a persistent tap (or, with `--tun`, a tun) that only UID (and root) may
//! attach to. Delete it with `tunctl -d NAME`.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// `_IOW('T', 202..204, int)`: TUNSETIFF, TUNSETPERSIST, TUNSETOWNER.
const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
const TUNSETPERSIST: libc::Ioctl = 0x4004_54cb;
const TUNSETOWNER: libc::Ioctl = 0x4004_54cc;
const IFF_TUN: i16 = 0x0001;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;

#[derive(Debug, clap::Args)]
pub struct MktapArgs {
    /// The interface's name.
    name: String,
    /// The user who may attach to it.
    #[arg(long)]
    owner: u32,
    /// A tun (IP packets) instead of a tap (Ethernet frames).
    #[arg(long)]
    tun: bool,
}

/// `struct ifreq`: the name, then the flags in a 24-byte union.
#[repr(C)]
struct InterfaceRequest {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

pub fn run(args: &MktapArgs) -> Result<(), String> {
    if args.name.is_empty() || args.name.len() > 15 {
        return Err(format!("{}: a name is 1 to 15 bytes", args.name));
    }
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("/dev/net/tun: {e}"))?;
    let mut request = InterfaceRequest {
        name: [0; 16],
        flags: if args.tun { IFF_TUN } else { IFF_TAP } | IFF_NO_PI,
        _pad: [0; 22],
    };
    request.name[..args.name.len()].copy_from_slice(args.name.as_bytes());
    let fd = tun.as_raw_fd();
    let check = |what: &str, rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "{}: {what}: {}",
                args.name,
                std::io::Error::last_os_error()
            ))
        }
    };
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which
    // `request` lays out and which outlives the call; `fd` is the tun
    // device this function owns.
    check("TUNSETIFF", unsafe {
        libc::ioctl(fd, TUNSETIFF, &mut request)
    })?;
    // SAFETY: TUNSETOWNER takes the uid by value, on the attached fd.
    check("TUNSETOWNER", unsafe {
        libc::ioctl(fd, TUNSETOWNER, libc::c_ulong::from(args.owner))
    })?;
    // SAFETY: TUNSETPERSIST takes a flag by value, on the attached fd.
    check("TUNSETPERSIST", unsafe {
        libc::ioctl(fd, TUNSETPERSIST, 1 as libc::c_ulong)
    })?;
    println!(
        "mktap: name={} owner={} tun={}",
        args.name, args.owner, args.tun
    );
    Ok(())
}
