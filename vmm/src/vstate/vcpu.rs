//! vCPUs: creation, boot-time configuration, the run loop that each vCPU
//! thread executes, and stopping them all.
//!
//! A vCPU thread runs the guest until the guest ends the VM or fails, and
//! then reports a [`VmExit`]. Other threads stop it with [`VcpuHandle::stop`]:
//! the shared stop flag, then a kick signal whose handler sets the thread's
//! `kvm_run.immediate_exit`, so that `KVM_RUN` returns at once whether the
//! signal lands inside the guest, just before `KVM_RUN`, or anywhere in
//! between. Only once every vCPU thread has been joined may the VM and its
//! memory be dropped.

use std::cell::Cell;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use kvm_bindings::{
    kvm_msr_entry, kvm_run, CpuId, Msrs, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET,
    KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use super::exit::{FaultKind, VcpuFault, VmExit};
use super::vcpu_state::{TscTimer, VcpuState};
use crate::arch::x86_64::regs::msr_index;
use crate::arch::x86_64::{cpuid, layout::PML4_START, regs};
use crate::devices::{DeviceEvent, PioBus};

/// Errors creating, configuring or starting a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("cannot create vCPU {0}")]
    Create(u32, #[source] kvm_ioctls::Error),
    /// A KVM vCPU ioctl failed during setup.
    #[error("cannot set the {what} of vCPU {index}")]
    Setup {
        /// vCPU index.
        index: u32,
        /// What was being set.
        what: &'static str,
        /// The KVM error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM accepted only part of the MSRs.
    #[error("vCPU {index}: KVM accepted {set} of {wanted} boot MSRs")]
    PartialMsrs {
        /// vCPU index.
        index: u32,
        /// MSRs set.
        set: usize,
        /// MSRs requested.
        wanted: usize,
    },
    /// The CPUID list outgrew what KVM accepts.
    #[error("vCPU {index}: {entries} CPUID entries are more than KVM accepts")]
    CpuidTooLarge {
        /// vCPU index.
        index: u32,
        /// Entries in the list.
        entries: usize,
    },
    /// The boot MSR list could not be built.
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// The kick signal's handler could not be installed.
    #[error("cannot install the vCPU kick signal handler")]
    KickHandler(#[source] vmm_sys_util::errno::Error),
    /// The vCPU thread could not be started.
    #[error("cannot start the thread of vCPU {0}")]
    Spawn(u32, #[source] std::io::Error),
}

thread_local! {
    /// This thread's `kvm_run`, while its vCPU runs; null otherwise. Read by
    /// the kick handler, so it is a plain `const`-initialised cell: reading
    /// it allocates nothing and takes no lock.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal: the first real-time signal, which the C library leaves
/// to applications.
fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: `run` is this thread's mapped `kvm_run`, set by
        // `run_loop` before it first enters KVM_RUN and cleared before the
        // vCPU fd (and with it the mapping) is dropped. A byte store is
        // async-signal-safe; KVM reads the field on its next entry.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
    fence(Ordering::SeqCst);
}

/// Installs the kick handler once per process.
fn install_kick_handler() -> Result<(), VcpuError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick).map_err(VcpuError::KickHandler)
    });
    result
}

/// One vCPU, before its thread starts.
#[derive(Debug)]
pub struct Vcpu {
    index: u32,
    fd: VcpuFd,
}

impl Vcpu {
    /// Creates vCPU `index` (also its APIC ID).
    pub fn new(vm: &VmFd, index: u32) -> Result<Self, VcpuError> {
        let fd = vm
            .create_vcpu(u64::from(index))
            .map_err(|e| VcpuError::Create(index, e))?;
        Ok(Vcpu { index, fd })
    }

    /// The vCPU index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Sets CPUID (from KVM's `supported` set), MSRs and LAPIC LINT pins; for
    /// the boot vCPU (`boot_entry` given) also the registers for the 64-bit
    /// Linux entry. The TSC rate was set for the whole VM before any vCPU
    /// existed (see `vstate::vm`).
    pub fn configure(
        &self,
        supported: &CpuId,
        cpus: u32,
        boot_entry: Option<u64>,
    ) -> Result<(), VcpuError> {
        let index = self.index;
        let setup = |what| {
            move |source| VcpuError::Setup {
                index,
                what,
                source,
            }
        };

        let mut entries = supported.as_slice().to_vec();
        cpuid::filter_cpuid(&mut entries, index, cpus);
        let cpuid = CpuId::from_entries(&entries).map_err(|_| VcpuError::CpuidTooLarge {
            index,
            entries: entries.len(),
        })?;
        self.fd.set_cpuid2(&cpuid).map_err(setup("CPUID"))?;

        let msrs = regs::boot_msrs()?;
        let set = self.fd.set_msrs(&msrs).map_err(setup("MSRs"))?;
        if set != msrs.as_slice().len() {
            return Err(VcpuError::PartialMsrs {
                index,
                set,
                wanted: msrs.as_slice().len(),
            });
        }

        let mut lapic = self.fd.get_lapic().map_err(setup("LAPIC"))?;
        regs::configure_lint(&mut lapic);
        self.fd.set_lapic(&lapic).map_err(setup("LAPIC"))?;

        if let Some(entry) = boot_entry {
            self.fd.set_fpu(&regs::boot_fpu()).map_err(setup("FPU"))?;
            let mut sregs = self.fd.get_sregs().map_err(setup("special registers"))?;
            regs::configure_long_mode(&mut sregs, PML4_START);
            self.fd
                .set_sregs(&sregs)
                .map_err(setup("special registers"))?;
            self.fd
                .set_regs(&regs::boot_regs(entry))
                .map_err(setup("registers"))?;
        }
        Ok(())
    }

    /// Starts the vCPU's thread. It runs the guest until something ends the
    /// VM, passes that to `report`, and returns; or, once `stop` is set and
    /// the thread kicked, returns the vCPU's state at that moment instead
    /// (see [`VcpuHandle::stop`]).
    pub fn spawn<F>(
        self,
        bus: Arc<PioBus>,
        stop: Arc<AtomicBool>,
        report: F,
    ) -> Result<VcpuHandle, VcpuError>
    where
        F: FnOnce(VmExit) + Send + 'static,
    {
        install_kick_handler()?;
        let index = self.index;
        let thread_stop = Arc::clone(&stop);
        let mut vcpu = self;
        let thread = thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || match vcpu.run_loop(&bus, &thread_stop) {
                Some(exit) => {
                    report(exit);
                    None
                }
                None => Some(vcpu.state()),
            })
            .map_err(|e| VcpuError::Spawn(index, e))?;
        Ok(VcpuHandle {
            index,
            thread,
            stop,
        })
    }

    /// The vCPU's state for a fault report.
    fn state(&self) -> Result<VcpuState, String> {
        let read = |what: &str, e: kvm_ioctls::Error| format!("cannot read the {what}: {e}");
        let regs = self.fd.get_regs().map_err(|e| read("registers", e))?;
        let sregs = self
            .fd
            .get_sregs()
            .map_err(|e| read("special registers", e))?;
        let events = self
            .fd
            .get_vcpu_events()
            .map_err(|e| read("vCPU events", e))?;
        let mp_state = self.fd.get_mp_state().map_err(|e| read("MP state", e))?;
        let lapic = self.fd.get_lapic().map_err(|e| read("LAPIC", e))?;
        Ok(VcpuState::new(
            self.index,
            &regs,
            &sregs,
            &events,
            mp_state.mp_state,
            &lapic,
            self.tsc_timer(),
        ))
    }

    /// The TSC and the TSC-deadline MSR in one KVM_GET_MSRS, or None if KVM
    /// returns fewer than both (the report then says so).
    fn tsc_timer(&self) -> Option<TscTimer> {
        let entry = |index| kvm_msr_entry {
            index,
            ..Default::default()
        };
        let mut msrs = Msrs::from_entries(&[
            entry(msr_index::IA32_TSC),
            entry(msr_index::IA32_TSC_DEADLINE),
        ])
        .ok()?;
        match self.fd.get_msrs(&mut msrs) {
            Ok(2) => {
                let e = msrs.as_slice();
                Some(TscTimer {
                    tsc: e[0].data,
                    deadline: e[1].data,
                })
            }
            _ => None,
        }
    }

    /// The fault report for `kind`, with the vCPU's state.
    fn fault(&self, kind: FaultKind) -> VmExit {
        VmExit::Fault(VcpuFault {
            vcpu: self.index,
            kind,
            state: self.state(),
        })
    }

    /// `kvm_run.internal` after `KVM_EXIT_INTERNAL_ERROR`.
    fn internal_error(&mut self) -> FaultKind {
        let run = self.fd.get_kvm_run();
        // SAFETY: After KVM_EXIT_INTERNAL_ERROR, `internal` is the valid
        // member of the exit union.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        FaultKind::InternalError {
            suberror: internal.suberror,
            data: internal.data[..n].to_vec(),
        }
    }

    /// Runs the guest until it resets, powers off or fails (`Some`), or
    /// until `stop` is set (`None`).
    fn run_loop(&mut self, bus: &PioBus, stop: &AtomicBool) -> Option<VmExit> {
        let index = self.index;
        KVM_RUN.with(|r| r.set(self.fd.get_kvm_run()));
        let exit = loop {
            if stop.load(Ordering::Acquire) {
                break None;
            }
            match self.fd.run() {
                Ok(VcpuExit::IoIn(port, data)) => bus.read(port, data),
                Ok(VcpuExit::IoOut(port, data)) => match bus.write(port, data) {
                    Some(DeviceEvent::Reset) => {
                        log::info!("vcpu{index}: guest reset (port 0x{port:x})");
                        break Some(VmExit::Reset);
                    }
                    Some(DeviceEvent::PowerOff) => {
                        log::info!("vcpu{index}: guest entered ACPI S5");
                        break Some(VmExit::PowerOff);
                    }
                    None => {}
                },
                Ok(VcpuExit::MmioRead(address, data)) => bus.mmio_read(address, data),
                Ok(VcpuExit::MmioWrite(address, data)) => bus.mmio_write(address, data),
                Ok(VcpuExit::Shutdown) => break Some(self.fault(FaultKind::TripleFault)),
                Ok(VcpuExit::SystemEvent(kind, _)) => {
                    break Some(match kind {
                        KVM_SYSTEM_EVENT_SHUTDOWN => VmExit::PowerOff,
                        KVM_SYSTEM_EVENT_RESET => VmExit::Reset,
                        KVM_SYSTEM_EVENT_CRASH => self.fault(FaultKind::GuestCrash),
                        other => {
                            VmExit::Error(format!("vCPU {index}: unknown KVM system event {other}"))
                        }
                    })
                }
                Ok(VcpuExit::FailEntry(reason, cpu)) => {
                    break Some(self.fault(FaultKind::FailEntry { reason, cpu }))
                }
                Ok(VcpuExit::InternalError) => {
                    let kind = self.internal_error();
                    break Some(self.fault(kind));
                }
                Ok(other) => {
                    break Some(VmExit::Error(format!(
                        "vCPU {index}: unexpected KVM exit {other:?}"
                    )))
                }
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    // A kick (or another signal): clear the request, then
                    // look at the stop flag again.
                    self.fd.set_kvm_immediate_exit(0);
                }
                Err(e) => break Some(VmExit::Error(format!("vCPU {index}: KVM_RUN failed: {e}"))),
            }
        };
        KVM_RUN.with(|r| r.set(std::ptr::null_mut()));
        exit
    }
}

/// A running vCPU thread.
#[derive(Debug)]
pub struct VcpuHandle {
    index: u32,
    /// Ends with the vCPU's state when the stop flag ended it, or `None`
    /// when it reported a [`VmExit`] itself.
    thread: JoinHandle<Option<Result<VcpuState, String>>>,
    stop: Arc<AtomicBool>,
}

/// How often a vCPU thread that has not stopped yet is kicked again.
const KICK_INTERVAL: Duration = Duration::from_millis(10);

impl VcpuHandle {
    /// The vCPU index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Stops the vCPU thread and waits for it to end. The stop flag is
    /// shared by all vCPUs of the VM, so stopping one asks them all.
    ///
    /// Returns where the guest was when it stopped (registers, events,
    /// LAPIC), or why that could not be read; `None` when the vCPU had
    /// already ended the VM itself, whose report carries its state.
    pub fn stop(self) -> Option<Result<VcpuState, String>> {
        self.stop.store(true, Ordering::Release);
        while !self.thread.is_finished() {
            // An error means the thread is already gone.
            let _ = self.thread.kill(kick_signal());
            thread::sleep(KICK_INTERVAL);
        }
        match self.thread.join() {
            Ok(state) => state,
            Err(_) => Some(Err("the vCPU thread panicked".into())),
        }
    }
}
