//! `vmm`: the command line. It turns arguments into a [`vmm::VmConfig`],
//! runs the VM, and prints what the library reports; everything else lives
//! in the library.
//!
//! Exit status: 0 when the guest powers off or reboots, 2 for bad
//! arguments, and otherwise one `vmm: error: ...` line on stderr and the
//! status of [`vmm::vstate::exit`] (1 for a `vmm` failure, 3 to 7 for a
//! guest that faulted or was stopped), after which the state of the
//! faulting vCPU, or of every vCPU that was stopped, follows on stderr.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use critmem_abi::units;
use vmm::config::{self, DiskConfig, MemorySpec, NetConfig, VmConfig};
use vmm::memory::hugetlb::HugePageSize;
use vmm::vstate::exit::{signal_name, VmExit, STATUS_VMM_ERROR};
use vmm::vstate::vcpu_state::VcpuState;
use vmm::RunEvent;

/// Boot a Linux guest on KVM, on anonymous memory or, with --critical-mem, on
/// a contiguous slice of the critmem pool.
#[derive(Debug, Parser)]
#[command(name = "vmm", version, about, long_about = None)]
struct Cli {
    /// Guest kernel: a bzImage or an ELF vmlinux.
    #[arg(long, value_name = "FILE")]
    kernel: PathBuf,
    /// Initramfs to load for the guest.
    #[arg(long, value_name = "FILE")]
    initramfs: Option<PathBuf>,
    /// Guest kernel command line (replaces the default).
    #[arg(long, value_name = "STR", default_value = config::DEFAULT_CMDLINE)]
    cmdline: String,
    /// Guest RAM, with an optional K, M, G or T suffix.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    memory: u64,
    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    cpus: u32,
    /// Back guest RAM with a contiguous slice of the critmem pool instead of
    /// anonymous memory.
    #[arg(long)]
    critical_mem: bool,
    /// The critmem device to allocate from (with --critical-mem).
    #[arg(long, value_name = "PATH", default_value = critmem_abi::DEVICE_PATH, requires = "critical_mem")]
    critmem_device: PathBuf,
    /// Back guest RAM with hugetlbfs pages of this size (2M or 1G) instead of
    /// 4 KiB anonymous pages: a normal VM with huge pages. The pool must
    /// hold enough free pages (vm.nr_hugepages; 1G pages only at boot:
    /// hugepagesz=1G hugepages=N).
    #[arg(long, value_name = "SIZE", conflicts_with = "critical_mem")]
    hugepages: Option<HugePageSize>,
    /// Populate all guest RAM before the guest starts
    /// (madvise MADV_POPULATE_WRITE) instead of on first touch.
    #[arg(long, conflicts_with = "critical_mem")]
    prefault: bool,
    /// VM name, used in log lines.
    #[arg(long, default_value = "vm")]
    name: String,
    /// Print KVM's stage-2 counts every second, and all KVM VM statistics at
    /// exit. (The `kvm-stage2:` line is always printed at exit.)
    #[arg(long)]
    stats: bool,
    /// Seconds the guest has to shut down after SIGTERM or SIGINT, which
    /// type Ctrl-Alt-Del on its keyboard; then vmm stops it (status 7).
    #[arg(long, value_name = "SECONDS", default_value_t = config::DEFAULT_SHUTDOWN_GRACE.as_secs())]
    shutdown_timeout: u64,
    /// A virtio-blk disk on a raw image file (or block device); repeat for
    /// more: path=IMAGE[,readonly=on|off][,serial=ID]. readonly=on
    /// refuses the guest's writes; serial= is the ID the guest reads
    /// (/sys/block/vdX/serial), at most 20 characters. Flushes reach the
    /// image with fdatasync, and vmm flushes it again when the VM ends.
    #[arg(long, value_name = "path=IMAGE,...")]
    disk: Vec<DiskConfig>,
    /// A virtio-net interface on an existing tap; repeat for more:
    /// tap=NAME[,mac=MAC]. Create the tap first (`ip tuntap add NAME mode
    /// tap user USER`). mac= is the guest NIC's address, random and
    /// locally administered when not given. Checksum and TCP segmentation
    /// offloads both ways.
    #[arg(long, value_name = "tap=NAME,...")]
    net: Vec<NetConfig>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    units::parse(s, "size").map_err(|e| e.to_string())
}

impl Cli {
    fn into_config(self) -> VmConfig {
        VmConfig {
            kernel: self.kernel,
            initramfs: self.initramfs,
            cmdline: self.cmdline,
            memory: self.memory,
            cpus: self.cpus,
            memory_spec: match (self.critical_mem, self.hugepages) {
                (true, _) => MemorySpec::Critmem {
                    device: self.critmem_device,
                },
                (false, Some(page)) => MemorySpec::Hugetlb {
                    page,
                    prefault: self.prefault,
                },
                (false, None) => MemorySpec::Anonymous {
                    prefault: self.prefault,
                },
            },
            name: self.name,
            stats: self.stats,
            shutdown_grace: Duration::from_secs(self.shutdown_timeout),
            disks: self.disk,
            nets: self.net,
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Prints what the library reports while the VM runs.
fn show(event: RunEvent) {
    match event {
        RunEvent::GuestMemory(backing) => eprintln!("vmm: guest memory: {backing}"),
        RunEvent::Stage2(counts) => eprintln!("vmm: {counts}"),
        RunEvent::ShutdownRequested { signal, how, grace } => eprintln!(
            "vmm: {}: asking the guest to shut down ({how}); {} s until it is stopped",
            signal_name(signal),
            grace.as_secs()
        ),
    }
}

/// A vCPU's state dump, one `vmm: vcpuN ...` line per part, on stderr.
fn print_state(vcpu: u32, state: &Result<VcpuState, String>) {
    match state {
        Ok(state) => {
            for line in &state.lines {
                eprintln!("vmm: {line}");
            }
        }
        Err(e) => eprintln!("vmm: vcpu{vcpu}: state unavailable: {e}"),
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let config = Cli::parse().into_config();
    let code = match vmm::run(&config, &mut show) {
        Ok(report) => {
            for (name, value) in &report.kvm_stats {
                eprintln!("vmm: kvm-stat {name}={value}");
            }
            match &report.stage2 {
                Ok(c) => eprintln!("{c}"),
                Err(e) => eprintln!("kvm-stage2: unavailable ({e})"),
            }
            match vmm::faults::ProcessFaults::current() {
                Ok(f) => eprintln!("{f}"),
                Err(e) => eprintln!("vmm-faults: unavailable ({e})"),
            }
            if report.console_dropped > 0 {
                eprintln!(
                    "vmm: console: {} bytes of guest output dropped (stdout did not keep up)",
                    report.console_dropped
                );
            }
            vmm::terminal::restore();
            let code = report.exit.exit_code();
            if code == 0 {
                // How a normal end came, for a supervisor's log.
                eprintln!("vmm: {}", report.exit);
            } else {
                eprintln!("vmm: error: {}", report.exit);
            }
            if let VmExit::Fault(fault) = &report.exit {
                print_state(fault.vcpu, &fault.state);
            }
            for (vcpu, state) in &report.stopped_vcpus {
                print_state(*vcpu, state);
            }
            code
        }
        Err(e) => {
            vmm::terminal::restore();
            eprintln!("vmm: error: {}", one_line(&e));
            STATUS_VMM_ERROR
        }
    };
    // Every vCPU thread has been joined; the stdin and signal threads may
    // still be blocked in a read or sigwait, so end the process here.
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<VmConfig, clap::Error> {
        Cli::try_parse_from(std::iter::once("vmm").chain(args.iter().copied()))
            .map(Cli::into_config)
    }

    #[test]
    fn defaults() {
        let c = parse(&["--kernel", "/k"]).unwrap();
        assert_eq!(c, VmConfig::new("/k"));
    }

    #[test]
    fn all_options() {
        let c = parse(&[
            "--kernel",
            "/boot/bzImage",
            "--initramfs",
            "/i.cpio.gz",
            "--cmdline",
            "console=ttyS0 quiet",
            "--memory",
            "2G",
            "--cpus",
            "4",
            "--critical-mem",
            "--critmem-device",
            "/dev/cm1",
            "--name",
            "db",
            "--stats",
        ])
        .unwrap();
        assert_eq!(c.kernel, PathBuf::from("/boot/bzImage"));
        assert_eq!(c.initramfs, Some(PathBuf::from("/i.cpio.gz")));
        assert_eq!(c.cmdline, "console=ttyS0 quiet");
        assert_eq!(c.memory, 2 << 30);
        assert_eq!(c.cpus, 4);
        assert!(c.stats);
        assert_eq!(
            c.memory_spec,
            MemorySpec::Critmem {
                device: PathBuf::from("/dev/cm1")
            }
        );
        assert_eq!(c.name, "db");
    }

    #[test]
    fn bad_arguments() {
        assert!(parse(&[]).is_err(), "--kernel is required");
        assert!(parse(&["--kernel", "/k", "--memory", "lots"]).is_err());
        assert!(parse(&["--kernel", "/k", "--cpus", "-1"]).is_err());
        // Accepted by the parser, refused by validation.
        let c = parse(&["--kernel", "/k", "--cpus", "0"]).unwrap();
        assert!(c.validate().is_err());
        let c = parse(&["--kernel", "/k", "--memory", "0"]).unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn hugepages_and_prefault() {
        let c = parse(&["--kernel", "/k", "--hugepages", "2M"]).unwrap();
        assert_eq!(
            c.memory_spec,
            MemorySpec::Hugetlb {
                page: HugePageSize::Size2M,
                prefault: false
            }
        );
        let c = parse(&["--kernel", "/k", "--hugepages", "1G", "--prefault"]).unwrap();
        assert_eq!(
            c.memory_spec,
            MemorySpec::Hugetlb {
                page: HugePageSize::Size1G,
                prefault: true
            }
        );
        let c = parse(&["--kernel", "/k", "--prefault"]).unwrap();
        assert_eq!(c.memory_spec, MemorySpec::Anonymous { prefault: true });
        let c = parse(&["--kernel", "/k", "--critical-mem"]).unwrap();
        assert_eq!(
            c.memory_spec,
            MemorySpec::Critmem {
                device: PathBuf::from(critmem_abi::DEVICE_PATH)
            }
        );
        assert!(
            parse(&["--kernel", "/k", "--critmem-device", "/dev/x"]).is_err(),
            "--critmem-device alone would be ignored"
        );
        assert!(parse(&["--kernel", "/k", "--hugepages", "4K"]).is_err());
        assert!(parse(&["--kernel", "/k", "--hugepages"]).is_err());
        assert!(parse(&["--kernel", "/k", "--hugepages", "2M", "--critical-mem"]).is_err());
        assert!(parse(&["--kernel", "/k", "--prefault", "--critical-mem"]).is_err());
    }

    #[test]
    fn error_chain_is_one_line() {
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(one_line(&e), "gone");
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
