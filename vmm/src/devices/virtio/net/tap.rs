//! The host side of a virtio-net device: an existing tap interface,
//! attached through `/dev/net/tun`, one Ethernet frame per `read` and
//! `write`, each led by the 12-byte `virtio_net_hdr_v1` (`IFF_VNET_HDR`),
//! through which the tap and the guest hand each other checksums left to
//! do and segments left to cut.
//!
//! `vmm` only attaches to taps that exist: creating one needs
//! `CAP_NET_ADMIN`, and a tap `vmm` made itself would vanish with it,
//! taking its addresses and bridge membership along. The administrator
//! creates it once (`ip tuntap add NAME mode tap user USER`), which also
//! says who may attach.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The tun/tap control device.
pub const TUN_DEVICE: &str = "/dev/net/tun";
/// `TUNSETIFF`, `_IOW('T', 202, int)`: attach the file to an interface.
const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
/// `TUNSETOFFLOAD`, `_IOW('T', 208, unsigned int)`: the offloads the
/// tap may hand over (checksums left to do, segments to cut).
const TUNSETOFFLOAD: libc::Ioctl = 0x4004_54d0;
/// `TUNSETVNETHDRSZ`, `_IOW('T', 216, int)`: the size of the header
/// before each frame.
const TUNSETVNETHDRSZ: libc::Ioctl = 0x4004_54d8;
/// The frames carry a virtio-net header.
const IFF_VNET_HDR: i16 = 0x4000;
/// `TUNSETOFFLOAD` flags: the tap may hand over frames whose checksum is
/// left to do, and TCP segments of up to 64 KiB over IPv4 and IPv6.
pub const TUN_F_CSUM: u32 = 0x01;
/// See [`TUN_F_CSUM`].
pub const TUN_F_TSO4: u32 = 0x02;
/// See [`TUN_F_CSUM`].
pub const TUN_F_TSO6: u32 = 0x04;
/// The interface flags of a tap (Ethernet frames) without the packet
/// information prefix: each read or write is one bare frame.
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
/// The kernel's IFNAMSIZ.
const IFNAMSIZ: usize = 16;

/// Errors attaching to a tap.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// No interface has the name.
    #[error("--net tap={0}: no such interface; create it first (`ip tuntap add {0} mode tap user $(id -un)` and `ip link set {0} up`, as root)")]
    NoSuchInterface(String),
    /// The interface is not a tun/tap device.
    #[error("--net tap={0}: is a network interface but not a tap; give a tap made by `ip tuntap add NAME mode tap`")]
    NotATap(String),
    /// The interface is a tun (IP packets), not a tap (Ethernet frames).
    #[error("--net tap={0}: is a tun (layer 3) device, and a NIC needs Ethernet frames; recreate it with `ip tuntap add {0} mode tap`")]
    TunMode(String),
    /// `/dev/net/tun` is missing.
    #[error("cannot open {TUN_DEVICE}: no such device; load the tun module (`modprobe tun`)")]
    NoTunDevice,
    /// `/dev/net/tun` may not be opened.
    #[error("cannot open {TUN_DEVICE}: permission denied; give this user read-write access to it (it is usually mode 0666)")]
    TunDeviceDenied,
    /// `/dev/net/tun` failed to open otherwise.
    #[error("cannot open {TUN_DEVICE}")]
    OpenTunDevice(#[source] io::Error),
    /// The tap belongs to another user or group.
    #[error("--net tap={0}: permission denied: the tap belongs to another user; recreate it for this one (`ip tuntap add {0} mode tap user $(id -un)`), or run vmm as its owner")]
    NotOwner(String),
    /// Another process is attached.
    #[error("--net tap={0}: another process is attached to the tap; stop it first, or give this VM another tap")]
    InUse(String),
    /// Attaching failed otherwise.
    #[error("--net tap={0}: cannot attach to the tap")]
    Attach(String, #[source] io::Error),
}

/// What sysfs says an interface is.
#[derive(Debug, PartialEq, Eq)]
pub enum InterfaceKind {
    /// No interface has the name.
    Missing,
    /// Not a tun/tap device.
    Other,
    /// A tun device (IP packets).
    Tun,
    /// A tap device (Ethernet frames), up or down.
    Tap {
        /// Whether the interface is administratively up.
        up: bool,
    },
}

/// Classifies an interface from its sysfs `tun_flags` and `flags` files
/// (`None` where the file is absent); `interface_exists` says whether
/// its directory is there.
pub fn classify(
    interface_exists: bool,
    tun_flags: Option<&str>,
    flags: Option<&str>,
) -> InterfaceKind {
    if !interface_exists {
        return InterfaceKind::Missing;
    }
    let hex = |s: &str| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
    match tun_flags.and_then(hex) {
        None => InterfaceKind::Other,
        Some(f) if f & IFF_TAP as u32 == 0 => InterfaceKind::Tun,
        Some(_) => InterfaceKind::Tap {
            up: flags
                .and_then(hex)
                .is_some_and(|f| f & libc::IFF_UP as u32 != 0),
        },
    }
}

/// Looks the interface up in sysfs.
fn interface_kind(name: &str) -> InterfaceKind {
    let dir = Path::new("/sys/class/net").join(name);
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
    classify(
        dir.exists(),
        read("tun_flags").as_deref(),
        read("flags").as_deref(),
    )
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags in the
/// union that pads it to 40 bytes.
#[repr(C)]
struct InterfaceRequest {
    name: [u8; IFNAMSIZ],
    flags: i16,
    _pad: [u8; 22],
}

/// An attached tap: frames the guest sends are written to it, frames for
/// the guest are read from it. Non-blocking.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Attaches to the existing tap `name`.
    pub fn open(name: &str) -> Result<Self, TapError> {
        match interface_kind(name) {
            InterfaceKind::Missing => return Err(TapError::NoSuchInterface(name.to_string())),
            InterfaceKind::Other => return Err(TapError::NotATap(name.to_string())),
            InterfaceKind::Tun => return Err(TapError::TunMode(name.to_string())),
            InterfaceKind::Tap { up: false } => log::warn!(
                "--net tap={name}: the interface is down, and the guest's frames are dropped until it is up (`ip link set {name} up`)"
            ),
            InterfaceKind::Tap { up: true } => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_DEVICE)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => TapError::NoTunDevice,
                io::ErrorKind::PermissionDenied => TapError::TunDeviceDenied,
                _ => TapError::OpenTunDevice(e),
            })?;
        let mut request = InterfaceRequest {
            name: [0; IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
            _pad: [0; 22],
        };
        // The config grammar keeps names to 15 bytes; the NUL stays.
        let n = name.len().min(IFNAMSIZ - 1);
        request.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, whose
        // layout `InterfaceRequest` has (name, then a 24-byte union led by
        // the short flags), and which lives for the call; the fd is the
        // tun device `file` owns.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut request) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => TapError::NotOwner(name.to_string()),
                Some(libc::EBUSY) => TapError::InUse(name.to_string()),
                _ => TapError::Attach(name.to_string(), e),
            });
        }
        let tap = Tap {
            file,
            name: name.to_string(),
        };
        let header_size = super::HEADER_SIZE as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which
        // is valid for the call, on the attached tap fd `tap` owns.
        if unsafe { libc::ioctl(tap.file.as_raw_fd(), TUNSETVNETHDRSZ, &header_size) } != 0 {
            return Err(TapError::Attach(
                name.to_string(),
                io::Error::last_os_error(),
            ));
        }
        // A persistent tap keeps the offloads its last user (QEMU, say)
        // turned on; none until this VM's driver says what it takes.
        tap.set_offloads(0)
            .map_err(|e| TapError::Attach(name.to_string(), e))?;
        Ok(tap)
    }

    /// Sets the offloads (`TUN_F_*`) the tap may hand over to the guest.
    pub fn set_offloads(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its flags by value, on the attached
        // tap fd `self` owns.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame; `WouldBlock` when none is waiting.
    pub fn read_frame(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame.
    pub fn write_frame(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_are_told_apart_by_their_sysfs_flags() {
        assert_eq!(classify(false, None, None), InterfaceKind::Missing);
        assert_eq!(classify(true, None, Some("0x1003\n")), InterfaceKind::Other);
        assert_eq!(
            classify(true, Some("0x1001\n"), Some("0x1003\n")),
            InterfaceKind::Tun
        );
        assert_eq!(
            classify(true, Some("0x1002\n"), Some("0x1003\n")),
            InterfaceKind::Tap { up: true }
        );
        assert_eq!(
            classify(true, Some("0x5002\n"), Some("0x1002\n")),
            InterfaceKind::Tap { up: false }
        );
    }

    #[test]
    fn the_request_is_a_struct_ifreq() {
        assert_eq!(
            std::mem::size_of::<InterfaceRequest>(),
            40,
            "sizeof(struct ifreq) on x86_64"
        );
        assert_eq!(std::mem::offset_of!(InterfaceRequest, flags), IFNAMSIZ);
    }

    #[test]
    fn a_missing_interface_is_named_with_the_fix() {
        let err = Tap::open("critmem-none0").unwrap_err().to_string();
        assert!(err.starts_with("--net tap=critmem-none0: no such interface; create it first (`ip tuntap add critmem-none0 mode tap"), "{err}");
        // The loopback interface exists on every host, and is no tap.
        assert!(matches!(Tap::open("lo"), Err(TapError::NotATap(_))));
    }
}
