//! The VM: creating it in KVM, giving it memory, devices and vCPUs, and
//! running it to its end.
//!
//! [`run`] is the whole life of a VM:
//! 1. validate the configuration against the host (memory, vCPUs) and check
//!    the kernel and initramfs files, before anything is allocated;
//! 2. create the KVM VM, the in-kernel irqchip and PIT;
//! 3. allocate guest RAM ([`crate::memory`]) and register its memslots;
//! 4. load the kernel, initramfs, command line, zero page and MP table;
//! 5. create and configure the vCPUs, the serial port and the i8042;
//! 6. run one thread per vCPU until one reports a [`VmExit`];
//! 7. read KVM's stage-2 counts while the VM still exists, and return.

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_pit_config, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::arch::x86_64::layout::KVM_TSS_ADDRESS;
use crate::config::{self, ConfigError, VmConfig};
use crate::devices::{serial, PioBus};
use crate::loader::{self, LoaderError};
use crate::memory::{GuestRam, MemoryError};
use crate::stats::{KvmStats, Stage2Counts};
use crate::terminal::{self, TerminalError};
use crate::vcpu::{Vcpu, VcpuError};

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset the machine (i8042 reset, or a KVM reset event):
    /// `reboot`.
    Reset,
    /// KVM_EXIT_SHUTDOWN: a triple fault, which is how many guests reboot.
    Shutdown,
    /// The guest powered off (KVM system event).
    PowerOff,
    /// A vCPU halted with interrupts disabled: the guest stopped for good.
    Halt,
    /// Something failed while the guest ran.
    Error(String),
}

impl VmExit {
    /// The process exit code: 0 when the guest ended itself, 1 on failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            VmExit::Reset | VmExit::Shutdown | VmExit::PowerOff | VmExit::Halt => 0,
            VmExit::Error(_) => 1,
        }
    }
}

impl fmt::Display for VmExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmExit::Reset => write!(f, "guest reset"),
            VmExit::Shutdown => write!(f, "guest shutdown (triple fault)"),
            VmExit::PowerOff => write!(f, "guest powered off"),
            VmExit::Halt => write!(f, "guest halted"),
            VmExit::Error(e) => write!(f, "{e}"),
        }
    }
}

/// Errors setting up or running a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The host's memory size could not be read.
    #[error("cannot read the host's memory size")]
    HostMemory(#[source] std::io::Error),
    /// /dev/kvm cannot be opened.
    #[error("cannot open /dev/kvm (is KVM enabled, and may this user use it?)")]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// KVM lacks a capability the VMM needs.
    #[error("KVM lacks the capability {0}")]
    MissingCap(&'static str),
    /// More vCPUs than KVM allows.
    #[error("--cpus {requested} exceeds KVM's limit of {max} vCPUs")]
    TooManyVcpus {
        /// Requested vCPUs.
        requested: u32,
        /// KVM's limit.
        max: usize,
    },
    /// A KVM VM ioctl failed.
    #[error("KVM: cannot {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// Creating an eventfd failed.
    #[error("cannot create an eventfd")]
    EventFd(#[source] std::io::Error),
    /// Guest memory could not be set up.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The boot payload could not be loaded.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// A vCPU could not be created or configured.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// The terminal could not be set up.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// The stdin thread could not be started.
    #[error("cannot start the stdin thread")]
    StdinThread(#[source] std::io::Error),
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunReport {
    /// How the VM ended.
    pub exit: VmExit,
    /// KVM's stage-2 counts read after the guest stopped, or why not.
    pub stage2: Result<Stage2Counts, String>,
}

fn require(kvm: &Kvm, cap: Cap, name: &'static str) -> Result<(), VmError> {
    if kvm.check_extension(cap) {
        Ok(())
    } else {
        Err(VmError::MissingCap(name))
    }
}

/// Runs the VM described by `config` until the guest ends it. The returned
/// report's exit says how; setup failures are errors.
pub fn run(config: &VmConfig) -> Result<RunReport, VmError> {
    let started = Instant::now();
    // 1. Everything that can be refused without allocating anything.
    config.validate()?;
    config.validate_host_memory(config::host_memory_total().map_err(VmError::HostMemory)?)?;
    loader::check_kernel(&config.kernel)?;
    loader::check_initrd(config.initramfs.as_deref())?;

    // 2. The KVM VM.
    let kvm = Kvm::new().map_err(VmError::OpenKvm)?;
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::Pit2, "KVM_CAP_PIT2"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
        (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    ] {
        require(&kvm, cap, name)?;
    }
    let max_vcpus = kvm.get_max_vcpus();
    if config.cpus as usize > max_vcpus {
        return Err(VmError::TooManyVcpus {
            requested: config.cpus,
            max: max_vcpus,
        });
    }
    let vm = kvm
        .create_vm()
        .map_err(|e| VmError::Kvm("create the VM", e))?;
    vm.set_tss_address(KVM_TSS_ADDRESS as usize)
        .map_err(|e| VmError::Kvm("set the TSS address", e))?;
    vm.create_irq_chip()
        .map_err(|e| VmError::Kvm("create the in-kernel irqchip", e))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(|e| VmError::Kvm("create the in-kernel PIT", e))?;

    // 3. Guest RAM. Declared after `vm`... but see the end of this function:
    // the VM fd is dropped explicitly before `ram`.
    let ram = GuestRam::new(config)?;
    eprintln!("vmm: guest memory: {}", ram.backing());
    log::info!(
        "{}: guest memory: {} ({} MiB at host 0x{:x}, {} memslot(s))",
        config.name,
        ram.backing(),
        ram.size() >> 20,
        ram.host_base(),
        ram.ranges().len()
    );
    ram.register(&vm)?;

    let result = boot_and_run(config, &kvm, &vm, &ram, started);
    // The VM must go before the memory it maps.
    drop(vm);
    drop(ram);
    result
}

fn boot_and_run(
    config: &VmConfig,
    kvm: &Kvm,
    vm: &VmFd,
    ram: &GuestRam,
    started: Instant,
) -> Result<RunReport, VmError> {
    // 4. Boot payload.
    let entry = loader::load_boot_payload(ram.memory(), config, ram.size())?;

    // 5. Devices and vCPUs.
    let serial_evt = EventFd::new(EFD_NONBLOCK).map_err(VmError::EventFd)?;
    vm.register_irqfd(&serial_evt, serial::COM1_IRQ)
        .map_err(|e| VmError::Kvm("register the serial irqfd", e))?;
    let serial = Arc::new(Mutex::new(serial::new_serial(serial_evt)));
    let bus = Arc::new(PioBus::new(serial.clone()));

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| VmError::Kvm("get the supported CPUID", e))?;
    let mut vcpus = Vec::with_capacity(config.cpus as usize);
    for i in 0..config.cpus {
        let vcpu = Vcpu::new(vm, i)?;
        vcpu.configure(&supported, config.cpus, (i == 0).then_some(entry))?;
        vcpus.push(vcpu);
    }

    let stats = KvmStats::for_vm(vm);
    if let Err(e) = &stats {
        log::warn!("KVM statistics unavailable: {e}");
    }

    // 6. Run.
    let _raw = terminal::RawMode::enable()?;
    serial::spawn_stdin_reader(serial).map_err(VmError::StdinThread)?;
    let (tx, rx) = mpsc::channel();
    for vcpu in vcpus {
        vcpu.spawn(bus.clone(), tx.clone())?;
    }
    drop(tx);
    log::info!(
        "{}: {} vCPU(s) started {} ms after vmm start",
        config.name,
        config.cpus,
        started.elapsed().as_millis()
    );

    let exit = loop {
        let tick = if config.stats {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3600)
        };
        match rx.recv_timeout(tick) {
            Ok(exit) => break exit,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(s) = &stats {
                    if let Ok(c) = s.stage2() {
                        eprintln!("vmm: {c}");
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break VmExit::Error("every vCPU thread ended without a reason".into())
            }
        }
    };
    log::info!(
        "{}: {exit} after {} ms",
        config.name,
        started.elapsed().as_millis()
    );

    // 7. Stage-2 counts, while the VM exists.
    let stage2 = match &stats {
        Ok(s) => {
            if config.stats {
                for (name, value) in s.all() {
                    eprintln!("vmm: kvm-stat {name}={value}");
                }
            }
            s.stage2().map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    Ok(RunReport { exit, stage2 })
}
