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
    fn meminfo_total_is_parsed() {
        let text = "MemTotal:        2030000 kB\nMemFree:  10 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(2030000 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB"), None);
    }
}
