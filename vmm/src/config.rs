//! The VM configuration: what the command line asks for, validated.
//!
//! The CLI (`main.rs`) only parses arguments into a [`VmConfig`]; every rule
//! about what makes a valid VM lives here so it is unit-tested and shared.

use std::path::PathBuf;
use std::time::Duration;

use critmem_abi::units;

use crate::arch::x86_64::layout;
use crate::memory::hugetlb::HugePageSize;

/// Default guest kernel command line, used when `--cmdline` is not given.
///
/// `reboot=k` makes the guest reboot through the i8042 reset line, which ends
/// the VM with exit code 0; `panic=-1` turns a guest panic into an immediate
/// reboot instead of a hang; `i8042.noaux` skips probing a mouse that is
/// not there.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 i8042.noaux";

/// Default guest memory size: 512 MiB.
pub const DEFAULT_MEMORY: u64 = 512 << 20;

/// Default time a guest has to shut down after SIGTERM or SIGINT.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Most virtio devices: one per slot of PCI bus 0 besides the host bridge.
pub const MAX_PCI_DEVICES: usize = crate::devices::pci::MAX_DEVICES;

/// Largest vCPU count, set by the APIC ID space of the guest's tables.
pub const MAX_CPUS: u32 = layout::MAX_CPUS;

/// Errors of configuration parsing and validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--memory 0`.
    #[error("--memory must be greater than 0")]
    ZeroMemory,
    /// Less memory than the guest needs to boot.
    #[error("--memory {0} is too small: at least {min} MiB are needed", min = layout::MIN_MEMORY >> 20)]
    MemoryTooSmall(String),
    /// Memory that is not a whole number of 4 KiB pages.
    #[error("--memory {0} is not a multiple of 4 KiB")]
    MemoryNotPageAligned(String),
    /// More guest memory than the host has RAM.
    #[error("--memory {requested} is bigger than the host's RAM ({host})")]
    MemoryExceedsHost {
        /// The requested size, human-readable.
        requested: String,
        /// The host's total RAM, human-readable.
        host: String,
    },
    /// More memory than the guest-physical layout supports.
    #[error("--memory {0} exceeds the supported maximum of {max} GiB", max = layout::MAX_MEMORY >> 30)]
    MemoryTooLarge(String),
    /// `--cpus 0`.
    #[error("--cpus must be at least 1")]
    ZeroCpus,
    /// More devices than PCI bus 0 has slots.
    #[error("{0} devices asked for: PCI bus 0 has room for {MAX_PCI_DEVICES} (32 slots, the host bridge takes one); give fewer --disk and --net options")]
    TooManyDevices(usize),
    /// One tap given to two interfaces.
    #[error("--net tap={0} is given twice; a tap carries one interface: create another (`ip tuntap add NAME mode tap`) for the second")]
    SameTap(String),
    /// One MAC given to two interfaces.
    #[error("--net mac={0} is given twice; two NICs with one address break the network: give each its own, or leave mac= out for a random one")]
    SameMac(String),
    /// More vCPUs than the guest's MP and ACPI tables can describe.
    #[error("--cpus {requested} exceeds the maximum of {max}: the guest's ACPI and MP tables give each vCPU an 8-bit APIC ID (0xff is broadcast, the I/O APIC takes one); use --cpus {max} or fewer")]
    TooManyCpus {
        /// The requested vCPU count.
        requested: u32,
        /// The maximum allowed.
        max: u32,
    },
}

/// What backs guest RAM. One choice, so that no invalid combination (such as
/// a prefaulted critmem slice) can be expressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemorySpec {
    /// A normal VM on 4 KiB anonymous pages; `prefault` populates them all
    /// before the guest starts (`MADV_POPULATE_WRITE`) instead of on first
    /// touch.
    Anonymous {
        /// Populate at start.
        prefault: bool,
    },
    /// A normal VM on hugetlbfs pages of `page` size.
    Hugetlb {
        /// The huge page size.
        page: HugePageSize,
        /// Populate at start.
        prefault: bool,
    },
    /// A critical VM on a critmem slice allocated from `device`. A slice is
    /// mapped with huge pages by the module and zeroed before it is handed
    /// out, so there is nothing to prefault.
    Critmem {
        /// The critmem device.
        device: PathBuf,
    },
}

impl Default for MemorySpec {
    fn default() -> Self {
        MemorySpec::Anonymous { prefault: false }
    }
}

/// A disk: `--disk path=IMAGE[,readonly=on|off][,serial=ID]`, in Cloud
/// Hypervisor's convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// The raw image file (or block device).
    pub path: PathBuf,
    /// The guest may not write (`readonly=on`).
    pub readonly: bool,
    /// The ID the guest reads with VIRTIO_BLK_T_GET_ID (`serial=`), at most
    /// 20 bytes; empty when not given.
    pub serial: String,
}

/// The longest `serial=` of a disk: virtio-blk's ID is 20 bytes.
pub const DISK_SERIAL_MAX: usize = 20;

/// Errors of a `--disk` or `--net` value, each naming the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceSpecError {
    /// A field without `=`.
    #[error("{option} {spec:?}: '{field}' is not KEY=VALUE; write it as {syntax}")]
    NotKeyValue {
        /// The option.
        option: &'static str,
        /// The whole value.
        spec: String,
        /// The bad field.
        field: String,
        /// The option's syntax.
        syntax: &'static str,
    },
    /// A key the option does not know.
    #[error("{option} {spec:?}: unknown key '{key}'; the keys are {keys}")]
    UnknownKey {
        /// The option.
        option: &'static str,
        /// The whole value.
        spec: String,
        /// The key.
        key: String,
        /// The keys it knows.
        keys: &'static str,
    },
    /// A key given twice.
    #[error("{option} {spec:?}: '{key}' is given twice")]
    DuplicateKey {
        /// The option.
        option: &'static str,
        /// The whole value.
        spec: String,
        /// The key.
        key: String,
    },
    /// A required key is missing.
    #[error("{option} {spec:?}: '{key}=' is missing; write it as {syntax}")]
    MissingKey {
        /// The option.
        option: &'static str,
        /// The whole value.
        spec: String,
        /// The key.
        key: &'static str,
        /// The option's syntax.
        syntax: &'static str,
    },
    /// A value that is not what the key takes.
    #[error("{option} {spec:?}: {key}={value:?}: {expected}")]
    BadValue {
        /// The option.
        option: &'static str,
        /// The whole value.
        spec: String,
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What the key takes.
        expected: &'static str,
    },
}

/// The syntax of `--disk`, as errors and `--help` show it.
pub const DISK_SYNTAX: &str = "path=IMAGE[,readonly=on|off][,serial=ID]";

/// Splits `KEY=VALUE,KEY=VALUE` into pairs, each key at most once and
/// among `keys`.
fn key_values<'a>(
    option: &'static str,
    spec: &'a str,
    keys: &[&str],
    syntax: &'static str,
    keys_text: &'static str,
) -> Result<Vec<(&'a str, &'a str)>, DeviceSpecError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for field in spec.split(',') {
        let Some((key, value)) = field.split_once('=') else {
            return Err(DeviceSpecError::NotKeyValue {
                option,
                spec: spec.to_string(),
                field: field.to_string(),
                syntax,
            });
        };
        if !keys.contains(&key) {
            return Err(DeviceSpecError::UnknownKey {
                option,
                spec: spec.to_string(),
                key: key.to_string(),
                keys: keys_text,
            });
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(DeviceSpecError::DuplicateKey {
                option,
                spec: spec.to_string(),
                key: key.to_string(),
            });
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn on_off(
    option: &'static str,
    spec: &str,
    key: &'static str,
    value: &str,
) -> Result<bool, DeviceSpecError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(DeviceSpecError::BadValue {
            option,
            spec: spec.to_string(),
            key,
            value: value.to_string(),
            expected: "write on or off",
        }),
    }
}

impl std::str::FromStr for DiskConfig {
    type Err = DeviceSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        const OPTION: &str = "--disk";
        let pairs = key_values(
            OPTION,
            spec,
            &["path", "readonly", "serial"],
            DISK_SYNTAX,
            "path, readonly and serial",
        )?;
        let mut disk = DiskConfig {
            path: PathBuf::new(),
            readonly: false,
            serial: String::new(),
        };
        let mut has_path = false;
        for (key, value) in pairs {
            match key {
                "path" => {
                    if value.is_empty() {
                        return Err(DeviceSpecError::BadValue {
                            option: OPTION,
                            spec: spec.to_string(),
                            key: "path",
                            value: value.to_string(),
                            expected: "give the image's path",
                        });
                    }
                    disk.path = PathBuf::from(value);
                    has_path = true;
                }
                "readonly" => disk.readonly = on_off(OPTION, spec, "readonly", value)?,
                _ => {
                    if value.len() > DISK_SERIAL_MAX || !value.bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(DeviceSpecError::BadValue {
                            option: OPTION,
                            spec: spec.to_string(),
                            key: "serial",
                            value: value.to_string(),
                            expected: "at most 20 printable ASCII characters, no spaces",
                        });
                    }
                    disk.serial = value.to_string();
                }
            }
        }
        if !has_path {
            return Err(DeviceSpecError::MissingKey {
                option: OPTION,
                spec: spec.to_string(),
                key: "path",
                syntax: DISK_SYNTAX,
            });
        }
        Ok(disk)
    }
}

/// An Ethernet address, as `--net mac=` takes it and the guest's NIC
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Whether this is a group (multicast or broadcast) address, which no
    /// NIC may have as its own.
    pub fn is_group(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// A random unicast address with the locally administered bit set, so
    /// that it collides with no vendor's: the default of each `--net`
    /// without `mac=`, as Cloud Hypervisor and QEMU users expect.
    pub fn random_local(random: [u8; 6]) -> Self {
        let mut bytes = random;
        bytes[0] = (bytes[0] & !1) | 2;
        MacAddress(bytes)
    }
}

impl std::fmt::Display for MacAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Parses `xx:xx:xx:xx:xx:xx`.
fn parse_mac(value: &str) -> Option<MacAddress> {
    let mut bytes = [0u8; 6];
    let mut parts = value.split(':');
    for b in &mut bytes {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddress(bytes))
}

/// A network interface: `--net tap=NAME[,mac=MAC]`, in Cloud Hypervisor's
/// convention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The host's tap interface, which must exist (`ip tuntap add`).
    pub tap: String,
    /// The guest NIC's address; random and locally administered when not
    /// given.
    pub mac: Option<MacAddress>,
}

/// The syntax of `--net`, as errors and `--help` show it.
pub const NET_SYNTAX: &str = "tap=NAME[,mac=MAC]";

/// The longest interface name Linux takes (IFNAMSIZ, less its NUL).
pub const IFNAME_MAX: usize = 15;

impl std::str::FromStr for NetConfig {
    type Err = DeviceSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        const OPTION: &str = "--net";
        let pairs = key_values(OPTION, spec, &["tap", "mac"], NET_SYNTAX, "tap and mac")?;
        let bad = |key, value: &str, expected| DeviceSpecError::BadValue {
            option: OPTION,
            spec: spec.to_string(),
            key,
            value: value.to_string(),
            expected,
        };
        let mut net = NetConfig {
            tap: String::new(),
            mac: None,
        };
        for (key, value) in pairs {
            if key == "tap" {
                let valid = !value.is_empty()
                    && value.len() <= IFNAME_MAX
                    && value != "."
                    && value != ".."
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
                if !valid {
                    return Err(bad(
                        "tap",
                        value,
                        "an interface name of 1 to 15 characters, without '/', ':' or spaces",
                    ));
                }
                net.tap = value.to_string();
            } else {
                let mac = parse_mac(value).ok_or_else(|| {
                    bad("mac", value, "write six hex bytes, as 52:54:00:12:34:56")
                })?;
                if mac.is_group() {
                    return Err(bad(
                        "mac",
                        value,
                        "a multicast address (the first byte is odd) cannot be a NIC's own; clear its lowest bit",
                    ));
                }
                if mac.0 == [0; 6] {
                    return Err(bad(
                        "mac",
                        value,
                        "the all-zero address cannot be a NIC's own",
                    ));
                }
                net.mac = Some(mac);
            }
        }
        if net.tap.is_empty() {
            return Err(DeviceSpecError::MissingKey {
                option: OPTION,
                spec: spec.to_string(),
                key: "tap",
                syntax: NET_SYNTAX,
            });
        }
        Ok(net)
    }
}

/// A validated VM configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Guest kernel: bzImage or ELF vmlinux.
    pub kernel: PathBuf,
    /// Optional initramfs loaded next to the kernel.
    pub initramfs: Option<PathBuf>,
    /// Guest kernel command line.
    pub cmdline: String,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Number of vCPUs.
    pub cpus: u32,
    /// What backs guest RAM.
    pub memory_spec: MemorySpec,
    /// VM name, used in log lines.
    pub name: String,
    /// Print KVM statistics periodically and in full at exit.
    pub stats: bool,
    /// How long the guest has to shut down after SIGTERM or SIGINT.
    pub shutdown_grace: Duration,
    /// The virtio-blk disks, in PCI slot order.
    pub disks: Vec<DiskConfig>,
    /// The virtio-net interfaces, in PCI slot order after the disks.
    pub nets: Vec<NetConfig>,
}

impl VmConfig {
    /// A configuration with defaults for everything but the kernel.
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        VmConfig {
            kernel: kernel.into(),
            initramfs: None,
            cmdline: DEFAULT_CMDLINE.to_string(),
            memory: DEFAULT_MEMORY,
            cpus: 1,
            memory_spec: MemorySpec::default(),
            name: "vm".to_string(),
            stats: false,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            disks: Vec::new(),
            nets: Vec::new(),
        }
    }

    /// Checks the rules that need no host information.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mem = units::format(self.memory);
        if self.memory == 0 {
            return Err(ConfigError::ZeroMemory);
        }
        if self.memory < layout::MIN_MEMORY {
            return Err(ConfigError::MemoryTooSmall(mem));
        }
        if self.memory & 0xfff != 0 {
            return Err(ConfigError::MemoryNotPageAligned(mem));
        }
        if self.memory > layout::MAX_MEMORY {
            return Err(ConfigError::MemoryTooLarge(mem));
        }
        if self.cpus == 0 {
            return Err(ConfigError::ZeroCpus);
        }
        if self.cpus > MAX_CPUS {
            return Err(ConfigError::TooManyCpus {
                requested: self.cpus,
                max: MAX_CPUS,
            });
        }
        let devices = self.disks.len() + self.nets.len();
        if devices > MAX_PCI_DEVICES {
            return Err(ConfigError::TooManyDevices(devices));
        }
        for (i, net) in self.nets.iter().enumerate() {
            let earlier = &self.nets[..i];
            if earlier.iter().any(|n| n.tap == net.tap) {
                return Err(ConfigError::SameTap(net.tap.clone()));
            }
            if let Some(mac) = net
                .mac
                .filter(|m| earlier.iter().any(|n| n.mac == Some(*m)))
            {
                return Err(ConfigError::SameMac(mac.to_string()));
            }
        }
        Ok(())
    }

    /// Checks the memory size against the host's total RAM in bytes.
    pub fn validate_host_memory(&self, host_total: u64) -> Result<(), ConfigError> {
        if self.memory > host_total {
            return Err(ConfigError::MemoryExceedsHost {
                requested: units::format(self.memory),
                host: format!("{} MiB", host_total >> 20),
            });
        }
        Ok(())
    }
}

/// Total host RAM in bytes, from `MemTotal` in `/proc/meminfo`.
pub fn host_memory_total() -> std::io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    parse_meminfo_total(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no MemTotal line in /proc/meminfo",
        )
    })
}

fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rules() {
        let mut c = VmConfig::new("/k");
        assert_eq!(c.validate(), Ok(()));
        c.memory = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroMemory));
        c.memory = 1 << 20;
        assert!(matches!(c.validate(), Err(ConfigError::MemoryTooSmall(_))));
        c.memory = (512 << 20) + 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::MemoryNotPageAligned(_))
        ));
        c.memory = 512 << 20;
        c.cpus = 0;
        assert_eq!(c.validate(), Err(ConfigError::ZeroCpus));
        c.cpus = 255;
        assert!(matches!(c.validate(), Err(ConfigError::TooManyCpus { .. })));
        c.cpus = 32;
        assert_eq!(c.validate(), Ok(()));
        c.memory_spec = MemorySpec::Hugetlb {
            page: HugePageSize::Size1G,
            prefault: true,
        };
        assert_eq!(c.validate(), Ok(()));
        c.memory_spec = MemorySpec::Critmem {
            device: PathBuf::from("/dev/critmem"),
        };
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.validate_host_memory(1 << 30), Ok(()));
        c.memory = 2 << 30;
        assert_eq!(
            c.validate_host_memory(1 << 30).unwrap_err().to_string(),
            "--memory 2G is bigger than the host's RAM (1024 MiB)"
        );
    }

    #[test]
    fn disk_specs_parse() {
        let d: DiskConfig = "path=/img".parse().unwrap();
        assert_eq!(
            d,
            DiskConfig {
                path: "/img".into(),
                readonly: false,
                serial: String::new()
            }
        );
        let d: DiskConfig = "readonly=on,serial=disk-1,path=/a/b.raw".parse().unwrap();
        assert!(d.readonly);
        assert_eq!(d.serial, "disk-1");
        assert_eq!(d.path, PathBuf::from("/a/b.raw"));
        assert!(
            !"path=/x,readonly=off"
                .parse::<DiskConfig>()
                .unwrap()
                .readonly
        );
        // A path may hold '=' after the first one.
        assert_eq!(
            "path=/x=y".parse::<DiskConfig>().unwrap().path,
            PathBuf::from("/x=y")
        );
    }

    #[test]
    fn bad_disk_specs_name_the_fix() {
        let err = |s: &str| s.parse::<DiskConfig>().unwrap_err().to_string();
        assert_eq!(
            err("/img"),
            "--disk \"/img\": '/img' is not KEY=VALUE; write it as path=IMAGE[,readonly=on|off][,serial=ID]"
        );
        assert_eq!(
            err("path=/img,ro=on"),
            "--disk \"path=/img,ro=on\": unknown key 'ro'; the keys are path, readonly and serial"
        );
        assert_eq!(
            err("path=/a,path=/b"),
            "--disk \"path=/a,path=/b\": 'path' is given twice"
        );
        assert_eq!(
            err("readonly=on"),
            "--disk \"readonly=on\": 'path=' is missing; write it as path=IMAGE[,readonly=on|off][,serial=ID]"
        );
        assert_eq!(
            err("path=/a,readonly=yes"),
            "--disk \"path=/a,readonly=yes\": readonly=\"yes\": write on or off"
        );
        assert!(err("path=/a,serial=012345678901234567890").contains("at most 20 printable"));
        assert!(err("path=").contains("give the image's path"));
        assert!(err("").contains("is not KEY=VALUE"));
    }

    #[test]
    fn the_bus_limits_the_devices() {
        let mut c = VmConfig::new("/k");
        c.disks = vec!["path=/x".parse().unwrap(); MAX_PCI_DEVICES];
        assert_eq!(c.validate(), Ok(()));
        c.disks.push("path=/y".parse().unwrap());
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "32 devices asked for: PCI bus 0 has room for 31 (32 slots, the host bridge takes one); give fewer --disk and --net options"
        );
    }

    #[test]
    fn disks_and_nets_share_the_bus() {
        let mut c = VmConfig::new("/k");
        c.disks = vec!["path=/x".parse().unwrap(); MAX_PCI_DEVICES - 1];
        c.nets = vec!["tap=tap0".parse().unwrap()];
        assert_eq!(c.validate(), Ok(()));
        c.nets.push("tap=tap1".parse().unwrap());
        assert_eq!(c.validate(), Err(ConfigError::TooManyDevices(32)));
    }

    #[test]
    fn net_specs_parse() {
        let n: NetConfig = "tap=tap0".parse().unwrap();
        assert_eq!(
            n,
            NetConfig {
                tap: "tap0".into(),
                mac: None
            }
        );
        let n: NetConfig = "mac=52:54:00:AB:cd:0f,tap=vm-net.1".parse().unwrap();
        assert_eq!(n.mac, Some(MacAddress([0x52, 0x54, 0, 0xab, 0xcd, 0x0f])));
        assert_eq!(n.mac.unwrap().to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(n.tap, "vm-net.1");
    }

    #[test]
    fn bad_net_specs_name_the_fix() {
        let err = |s: &str| s.parse::<NetConfig>().unwrap_err().to_string();
        assert_eq!(
            err("tap0"),
            "--net \"tap0\": 'tap0' is not KEY=VALUE; write it as tap=NAME[,mac=MAC]"
        );
        assert_eq!(
            err("tap=tap0,ip=10.0.0.1"),
            "--net \"tap=tap0,ip=10.0.0.1\": unknown key 'ip'; the keys are tap and mac"
        );
        assert_eq!(
            err("mac=52:54:00:00:00:01"),
            "--net \"mac=52:54:00:00:00:01\": 'tap=' is missing; write it as tap=NAME[,mac=MAC]"
        );
        assert!(err("tap=a-name-of-16-chr").contains("1 to 15 characters"));
        assert!(err("tap=../x").contains("without '/'"));
        assert!(err("tap=").contains("1 to 15 characters"));
        for mac in [
            "52:54:00:00:00",
            "52:54:00:00:00:01:02",
            "5254.0000.0001",
            "52:54:00:00:00:0g",
            "52:54:0:00:00:01",
        ] {
            assert!(
                err(&format!("tap=t,mac={mac}")).contains("write six hex bytes"),
                "{mac}"
            );
        }
        assert!(err("tap=t,mac=01:00:5e:00:00:01").contains("multicast"));
        assert!(err("tap=t,mac=ff:ff:ff:ff:ff:ff").contains("multicast"));
        assert!(err("tap=t,mac=00:00:00:00:00:00").contains("all-zero"));
    }

    #[test]
    fn a_tap_or_a_mac_given_twice_is_refused() {
        let mut c = VmConfig::new("/k");
        c.nets = vec![
            "tap=tap0,mac=52:54:00:00:00:01".parse().unwrap(),
            "tap=tap1".parse().unwrap(),
            "tap=tap2".parse().unwrap(),
        ];
        assert_eq!(c.validate(), Ok(()), "two random MACs are not the same MAC");
        c.nets.push("tap=tap0".parse().unwrap());
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--net tap=tap0 is given twice; a tap carries one interface: create another (`ip tuntap add NAME mode tap`) for the second"
        );
        c.nets[3] = "tap=tap3,mac=52:54:00:00:00:01".parse().unwrap();
        assert_eq!(
            c.validate(),
            Err(ConfigError::SameMac("52:54:00:00:00:01".into()))
        );
    }

    #[test]
    fn a_random_mac_is_local_unicast() {
        for random in [[0xff; 6], [0; 6], [0x53, 1, 2, 3, 4, 5]] {
            let mac = MacAddress::random_local(random);
            assert!(!mac.is_group());
            assert_eq!(mac.0[0] & 2, 2, "locally administered");
            assert_eq!(mac.0[1..], random[1..]);
        }
    }

    #[test]
    fn meminfo_total_is_parsed() {
        let text = "MemTotal:        2030000 kB\nMemFree:  10 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(2030000 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB"), None);
    }
}
