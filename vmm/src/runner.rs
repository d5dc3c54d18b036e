//! The whole life of a VM, from the checked configuration to its end.
//!
//! [`run`]:
//! 1. validates the configuration against the host (memory, vCPUs) and
//!    checks the kernel and initramfs files, before anything is allocated;
//! 2. takes SIGTERM and SIGINT from their default action, onto a thread of
//!    their own, before any other thread exists;
//! 3. creates the KVM VM ([`crate::vstate::vm`]) and guest RAM
//!    ([`crate::memory`]), and loads the boot payload;
//! 4. creates the devices (serial port, i8042, ACPI PM registers) and the
//!    vCPUs, and starts one thread per vCPU ([`crate::vstate::vcpu`]);
//! 5. waits for the first [`VmExit`]; on SIGTERM or SIGINT it presses the
//!    ACPI power button (or, if the guest never armed it, types
//!    Ctrl-Alt-Del) and waits up to the grace period for the guest to shut
//!    down;
//! 6. stops and joins every vCPU thread, reads KVM's statistics while the VM
//!    still exists, and only then drops the VM and, after it, guest memory.
//!
//! The library prints nothing: progress reaches the caller as
//! [`RunEvent`]s, the result as a [`RunReport`].

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::arch::x86_64::layout;
use crate::config::{self, ConfigError, VmConfig};
use crate::devices::pci::{BarAllocator, PciError, PciFunction, PciRoot};
use crate::devices::serial::{self, ConsoleWriter};
use crate::devices::virtio::block::{self, Block, DiskError, DiskImage};
use crate::devices::virtio::net::tap::{Tap, TapError};
use crate::devices::virtio::net::{self, Net};
use crate::devices::virtio::pci::{self as virtio_pci, VirtioPciError, VirtioPciFunction};
use crate::devices::virtio::VirtioDevice;
use crate::devices::{
    acpi_pm::{self, AcpiPm},
    i8042::{self, I8042},
    PioBus,
};
use crate::loader::{self, LoaderError};
use crate::memory::{GuestRam, MemoryError};
use crate::stats::{KvmStats, Stage2Counts};
use crate::terminal::{self, TerminalError};
use crate::vstate::exit::{StopReason, VmExit};
use crate::vstate::msi::{GsiRouter, KvmMsiSink, KvmNotifyRegistrar, MsiError};
use crate::vstate::vcpu::{Vcpu, VcpuError, VcpuHandle};
use crate::vstate::vcpu_state::VcpuState;
use crate::vstate::vm::{Vm, VmError};

/// How long console output may take to drain once the VM has ended.
const CONSOLE_DRAIN: Duration = Duration::from_secs(2);
/// How often KVM's stage-2 counts are reported with `--stats`.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Errors setting up a VM.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The host's memory size could not be read.
    #[error("cannot read the host's memory size")]
    HostMemory(#[source] std::io::Error),
    /// /dev/kvm cannot be opened.
    #[error("cannot open /dev/kvm (is KVM enabled, and may this user use it?)")]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// The KVM VM could not be created.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// A KVM VM ioctl failed while setting up devices.
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
    /// A vCPU could not be created, configured or started.
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// The terminal could not be set up.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// A helper thread (`what`) could not be started.
    #[error("cannot start the {0} thread")]
    Thread(&'static str, #[source] std::io::Error),
    /// SIGTERM and SIGINT could not be taken over.
    #[error("cannot block SIGTERM and SIGINT")]
    Signals(#[source] std::io::Error),
    /// A disk image could not be opened.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// A tap could not be attached.
    #[error(transparent)]
    Tap(#[from] TapError),
    /// No random bytes for a default MAC.
    #[error("cannot read random bytes for the MAC of --net tap={0}; give it one with mac=")]
    RandomMac(String, #[source] std::io::Error),
    /// Two read-write disks are one image.
    #[error("--disk path={first} and --disk path={second} are the same image, and a guest writing it through two disks would corrupt it; give one of them readonly=on (both, to share it read-only), or use a copy")]
    SameImage {
        /// The first disk's path.
        first: String,
        /// The second disk's path.
        second: String,
    },
    /// The PCI bus or its memory window is full.
    #[error(transparent)]
    Pci(#[from] PciError),
    /// A virtio-pci function could not be built.
    #[error(transparent)]
    VirtioPci(#[from] VirtioPciError),
    /// MSI delivery could not be set up.
    #[error(transparent)]
    Msi(#[from] MsiError),
}

/// Opens every disk image, and refuses one image given twice unless every
/// use of it is read-only.
fn open_disks(config: &VmConfig) -> Result<Vec<DiskImage>, RunError> {
    let mut disks: Vec<DiskImage> = Vec::with_capacity(config.disks.len());
    for d in &config.disks {
        // Two opens of one image in this process conflict on its lock too,
        // but the lock cannot say it was this process: compare identities
        // first, for an error that names both options.
        if let Ok(m) = std::fs::metadata(&d.path) {
            use std::os::unix::fs::MetadataExt;
            let id = (m.dev(), m.ino());
            if let Some(other) = disks
                .iter()
                .find(|o| o.identity().ok() == Some(id) && !(o.readonly() && d.readonly))
            {
                return Err(RunError::SameImage {
                    first: other.path().display().to_string(),
                    second: d.path.display().to_string(),
                });
            }
        }
        disks.push(DiskImage::open(d)?);
    }
    Ok(disks)
}

/// A host network interface for each `--net`: its attached tap and the
/// MAC of the guest's NIC.
struct NetBackend {
    tap: Tap,
    mac: config::MacAddress,
}

/// Attaches every tap, and picks the MACs not given.
fn open_nets(config: &VmConfig) -> Result<Vec<NetBackend>, RunError> {
    config
        .nets
        .iter()
        .map(|n| {
            let mac = match n.mac {
                Some(mac) => mac,
                None => config::MacAddress::random_local(
                    random_bytes().map_err(|e| RunError::RandomMac(n.tap.clone(), e))?,
                ),
            };
            Ok(NetBackend {
                tap: Tap::open(&n.tap)?,
                mac,
            })
        })
        .collect()
}

fn random_bytes() -> std::io::Result<[u8; 6]> {
    let mut bytes = [0u8; 6];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the
    // buffer, which is valid and writable for the call.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(bytes)
}

/// Puts each disk, then each network interface, on the PCI bus as a
/// virtio function, its BAR from the 32-bit window and its vectors routed
/// through KVM.
fn virtio_functions(
    vm: &Vm,
    ram: &GuestRam,
    disks: Vec<DiskImage>,
    nets: Vec<NetBackend>,
) -> Result<Vec<Arc<VirtioPciFunction>>, RunError> {
    let router = Arc::new(GsiRouter::new(vm.shared_fd()));
    let mut bars = BarAllocator::new(layout::PCI_MMIO32_START, layout::PCI_MMIO32_LAST);
    let mut functions = Vec::with_capacity(disks.len() + nets.len());
    let mut add = |device: Box<dyn VirtioDevice>, class: u32| -> Result<(), RunError> {
        let vectors = virtio_pci::vectors_for(device.queue_max_sizes().len());
        let function = VirtioPciFunction::new(
            device,
            class,
            bars.allocate(virtio_pci::BAR_SIZE)?,
            ram.memory().clone(),
            Box::new(KvmMsiSink::new(Arc::clone(&router), vectors)?),
            Box::new(KvmNotifyRegistrar::new(vm.shared_fd())),
        )?;
        functions.push(Arc::new(function));
        Ok(())
    };
    for (i, disk) in disks.into_iter().enumerate() {
        let name = format!("blk{i}");
        log::info!(
            "{name}: {} ({} sectors{})",
            disk.path().display(),
            disk.sectors(),
            if disk.readonly() { ", read-only" } else { "" }
        );
        add(Box::new(Block::new(name, disk)), block::PCI_CLASS)?;
    }
    for (i, backend) in nets.into_iter().enumerate() {
        let name = format!("net{i}");
        log::info!("{name}: tap {}, mac {}", backend.tap.name(), backend.mac);
        add(
            Box::new(Net::new(name, backend.tap, backend.mac)),
            net::PCI_CLASS,
        )?;
    }
    Ok(functions)
}

/// Progress the caller may show while the VM runs.
#[derive(Debug)]
pub enum RunEvent {
    /// What backs guest RAM (printed as `vmm: guest memory: ...`).
    GuestMemory(String),
    /// KVM's stage-2 counts, every second with `--stats`.
    Stage2(Stage2Counts),
    /// A signal came: the guest was asked to shut down, and has `grace` to
    /// do so.
    ShutdownRequested {
        /// The signal.
        signal: i32,
        /// How the guest was asked.
        how: ShutdownRequest,
        /// How long the guest is given.
        grace: Duration,
    },
}

/// How `vmm` asks a guest to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownRequest {
    /// The ACPI power button was pressed: the guest had armed it.
    PowerButton,
    /// Ctrl-Alt-Del was typed on the i8042: the guest had not armed the
    /// power button (no ACPI, or no button driver).
    CtrlAltDel,
}

impl std::fmt::Display for ShutdownRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShutdownRequest::PowerButton => "ACPI power button",
            ShutdownRequest::CtrlAltDel => {
                "Ctrl-Alt-Del, as the guest never armed the ACPI power button"
            }
        })
    }
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunReport {
    /// How the VM ended.
    pub exit: VmExit,
    /// KVM's stage-2 counts read after the guest stopped, or why not.
    pub stage2: Result<Stage2Counts, String>,
    /// All KVM VM statistics, with `--stats`.
    pub kvm_stats: Vec<(String, u64)>,
    /// Console bytes dropped because stdout did not keep up.
    pub console_dropped: u64,
    /// When the VM was stopped without the guest ending it (a signal, or a
    /// `vmm` error): each vCPU's index and its state at the stop, so that a
    /// hung guest shows where it hung.
    pub stopped_vcpus: Vec<(u32, Result<VcpuState, String>)>,
}

/// What reaches the main thread while the VM runs.
enum Message {
    /// A vCPU ended the VM.
    Exit(VmExit),
    /// SIGTERM or SIGINT.
    Signal(i32),
}

/// The signals that ask for a clean shutdown.
const SHUTDOWN_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

fn shutdown_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset adds valid signals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SHUTDOWN_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks SIGTERM and SIGINT in this thread, so that every thread started
/// after it inherits the mask, and starts the thread that takes them with
/// `sigwait` and reports them on `tx`.
fn take_shutdown_signals(tx: Sender<Message>) -> Result<(), RunError> {
    let set = shutdown_sigset();
    // SAFETY: `set` is a valid signal set; a null old set is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(RunError::Signals(std::io::Error::from_raw_os_error(r)));
    }
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is valid and `sig` is writable; the signals are
            // blocked in every thread, so only this call receives them.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0
                && tx.send(Message::Signal(sig)).is_err()
            {
                return;
            }
        })
        .map(|_| ())
        .map_err(|e| RunError::Thread("signals", e))
}

/// Runs the VM described by `config` until it ends; see the module docs.
/// Setup failures are errors; how the guest ended is in the report.
pub fn run(config: &VmConfig, on_event: &mut dyn FnMut(RunEvent)) -> Result<RunReport, RunError> {
    let started = Instant::now();
    config.validate()?;
    config.validate_host_memory(config::host_memory_total().map_err(RunError::HostMemory)?)?;
    loader::check_kernel(&config.kernel)?;
    loader::check_initrd(config.initramfs.as_deref())?;
    let disks = open_disks(config)?;
    let nets = open_nets(config)?;

    let (tx, rx) = mpsc::channel();
    take_shutdown_signals(tx.clone())?;

    let kvm = Kvm::new().map_err(RunError::OpenKvm)?;
    let vm = Vm::new(&kvm, config.cpus)?;
    let ram = GuestRam::new(config)?;
    on_event(RunEvent::GuestMemory(ram.backing().to_string()));
    log::info!(
        "{}: guest memory: {} ({} MiB at host 0x{:x}, {} memslot(s))",
        config.name,
        ram.backing(),
        ram.size() >> 20,
        ram.host_base(),
        ram.ranges().len()
    );
    ram.register(vm.fd())?;

    let result = boot_and_run(
        config, &kvm, &vm, &ram, disks, nets, started, tx, rx, on_event,
    );
    // Every vCPU thread has been joined by now; the VM must go before the
    // memory it maps.
    drop(vm);
    drop(ram);
    result
}

#[allow(clippy::too_many_arguments)]
fn boot_and_run(
    config: &VmConfig,
    kvm: &Kvm,
    vm: &Vm,
    ram: &GuestRam,
    disks: Vec<DiskImage>,
    nets: Vec<NetBackend>,
    started: Instant,
    tx: Sender<Message>,
    rx: mpsc::Receiver<Message>,
    on_event: &mut dyn FnMut(RunEvent),
) -> Result<RunReport, RunError> {
    let entry = loader::load_boot_payload(ram.memory(), config, ram.size())?;

    let (console, console_out) =
        ConsoleWriter::spawn_stdout().map_err(|e| RunError::Thread("console", e))?;
    let serial_evt = EventFd::new(EFD_NONBLOCK).map_err(RunError::EventFd)?;
    vm.fd()
        .register_irqfd(&serial_evt, serial::COM1_IRQ)
        .map_err(|e| RunError::Kvm("register the serial irqfd", e))?;
    let serial = Arc::new(Mutex::new(serial::new_serial(serial_evt, console_out)));
    let i8042_evt = EventFd::new(EFD_NONBLOCK).map_err(RunError::EventFd)?;
    vm.fd()
        .register_irqfd(&i8042_evt, i8042::IRQ)
        .map_err(|e| RunError::Kvm("register the i8042 irqfd", e))?;
    let acpi = AcpiPm::new(Box::new(vm.irq_line(acpi_pm::SCI_IRQ)?));
    let virtio = virtio_functions(vm, ram, disks, nets)?;
    let pci = PciRoot::with_functions(
        virtio
            .iter()
            .map(|f| Arc::clone(f) as Arc<dyn PciFunction>)
            .collect(),
    )?;
    let bus = Arc::new(PioBus::new(
        serial.clone(),
        I8042::new(Some(i8042_evt)),
        acpi,
        pci,
    ));

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| RunError::Kvm("get the supported CPUID", e))?;
    let mut vcpus = Vec::with_capacity(config.cpus as usize);
    for i in 0..config.cpus {
        let vcpu = Vcpu::new(vm.fd(), i)?;
        vcpu.configure(&supported, config.cpus, (i == 0).then_some(entry))?;
        vcpus.push(vcpu);
    }

    let stats = KvmStats::for_vm(vm.fd());
    if let Err(e) = &stats {
        log::warn!("KVM statistics unavailable: {e}");
    }

    let _raw = terminal::RawMode::enable()?;
    serial::spawn_stdin_reader(serial).map_err(|e| RunError::Thread("stdin", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles: Vec<VcpuHandle> = Vec::with_capacity(vcpus.len());
    for vcpu in vcpus {
        let tx = tx.clone();
        match vcpu.spawn(bus.clone(), Arc::clone(&stop), move |exit| {
            let _ = tx.send(Message::Exit(exit));
        }) {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop_vcpus(handles);
                return Err(e.into());
            }
        }
    }
    drop(tx);
    log::info!(
        "{}: {} vCPU(s) started {} ms after vmm start",
        config.name,
        config.cpus,
        started.elapsed().as_millis()
    );

    let exit = wait_for_exit(config, &rx, &bus, stats.as_ref().ok(), on_event);
    let stopped = stop_vcpus(handles);
    // The devices finish the request they serve and flush their disks.
    for f in &virtio {
        f.shut_down();
    }
    let stopped_vcpus = match exit {
        VmExit::Stopped { .. } | VmExit::Error(_) => stopped,
        VmExit::Reset | VmExit::PowerOff | VmExit::Fault(_) => Vec::new(),
    };
    log::info!(
        "{}: {exit} after {} ms",
        config.name,
        started.elapsed().as_millis()
    );

    // Stage-2 counts, while the VM exists.
    let (stage2, kvm_stats) = match &stats {
        Ok(s) => (
            s.stage2().map_err(|e| e.to_string()),
            if config.stats { s.all() } else { Vec::new() },
        ),
        Err(e) => (Err(e.to_string()), Vec::new()),
    };
    let (console_dropped, drained) = console.finish(CONSOLE_DRAIN);
    if !drained {
        log::warn!("console output still pending after {CONSOLE_DRAIN:?}: stdout is stalled");
    }
    Ok(RunReport {
        exit,
        stage2,
        kvm_stats,
        console_dropped,
        stopped_vcpus,
    })
}

/// Waits for the VM's end: a vCPU's exit, or a signal's grace period.
fn wait_for_exit(
    config: &VmConfig,
    rx: &mpsc::Receiver<Message>,
    bus: &PioBus,
    stats: Option<&KvmStats>,
    on_event: &mut dyn FnMut(RunEvent),
) -> VmExit {
    // (signal, deadline) once a shutdown was asked for.
    let mut shutdown: Option<(i32, Instant)> = None;
    loop {
        let now = Instant::now();
        let mut wait = if config.stats {
            STATS_INTERVAL
        } else {
            Duration::from_secs(3600)
        };
        if let Some((_, deadline)) = shutdown {
            wait = wait.min(deadline.saturating_duration_since(now));
        }
        match rx.recv_timeout(wait) {
            Ok(Message::Exit(exit)) => return exit,
            Ok(Message::Signal(signal)) => {
                if shutdown.is_some() {
                    return VmExit::Stopped {
                        signal,
                        reason: StopReason::SecondSignal,
                    };
                }
                let how = ask_guest_to_shut_down(bus);
                on_event(RunEvent::ShutdownRequested {
                    signal,
                    how,
                    grace: config.shutdown_grace,
                });
                shutdown = Some((signal, Instant::now() + config.shutdown_grace));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some((signal, deadline)) = shutdown {
                    if Instant::now() >= deadline {
                        return VmExit::Stopped {
                            signal,
                            reason: StopReason::GraceExpired,
                        };
                    }
                }
                if config.stats {
                    if let Some(Ok(c)) = stats.map(KvmStats::stage2) {
                        on_event(RunEvent::Stage2(c));
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return VmExit::Error("every vCPU thread ended without a reason".into())
            }
        }
    }
}

/// Presses the ACPI power button if the guest armed it, or else types
/// Ctrl-Alt-Del, and says which.
fn ask_guest_to_shut_down(bus: &PioBus) -> ShutdownRequest {
    if bus.acpi_pm().press_power_button() {
        return ShutdownRequest::PowerButton;
    }
    if let Err(e) = bus.i8042().ctrl_alt_del() {
        log::warn!("cannot type Ctrl-Alt-Del: {e}");
    }
    ShutdownRequest::CtrlAltDel
}

/// Stops and joins every vCPU thread; returns the state of each vCPU that
/// the stop ended (not the one, if any, that ended the VM itself).
fn stop_vcpus(handles: Vec<VcpuHandle>) -> Vec<(u32, Result<VcpuState, String>)> {
    let mut states = Vec::with_capacity(handles.len());
    for h in handles {
        let index = h.index();
        if let Some(state) = h.stop() {
            states.push((index, state));
        }
        log::debug!("vcpu{index}: stopped");
    }
    states
}
