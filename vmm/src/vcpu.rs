//! vCPUs: creation, boot-time configuration, and the run loop that each
//! vCPU thread executes.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread;

use kvm_bindings::{
    CpuId, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use crate::arch::x86_64::{cpuid, layout::PML4_START, regs};
use crate::devices::{DeviceEvent, PioBus};
use crate::vm::VmExit;

/// Errors creating or configuring a vCPU.
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
    /// The boot MSR list could not be built.
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// The vCPU thread could not be started.
    #[error("cannot start the thread of vCPU {0}")]
    Spawn(u32, #[source] std::io::Error),
}

/// `KVM_SET_TSC_KHZ` argument meaning "the host's TSC rate now".
const HOST_TSC_RATE: u32 = 0;

/// One vCPU.
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
    /// Linux entry.
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

        // KVM gives a new vCPU the TSC rate the host had when kvm.ko was
        // loaded. A host without an invariant TSC (nested hosts, some
        // emulated CPUs) may refine its TSC calibration after that; if the
        // two differ by more than KVM's tolerance and the CPU cannot scale
        // the TSC, KVM leaves the vCPU without a TSC multiplier, and the
        // guest's TSC-deadline timer then never fires: the guest hangs at
        // boot. Rate 0 asks for the host's current rate, which needs no
        // scaling on any host.
        self.fd
            .set_tsc_khz(HOST_TSC_RATE)
            .map_err(setup("TSC rate"))?;

        let mut cpuid = supported.clone();
        cpuid::filter_cpuid(cpuid.as_mut_slice(), index, cpus);
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
    /// VM, reports that on `exits`, and returns.
    pub fn spawn(self, bus: Arc<PioBus>, exits: Sender<VmExit>) -> Result<(), VcpuError> {
        let index = self.index;
        thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                let exit = self.run_loop(&bus);
                let _ = exits.send(exit);
            })
            .map(|_| ())
            .map_err(|e| VcpuError::Spawn(index, e))
    }

    /// Runs the guest until it resets, shuts down, or fails.
    fn run_loop(mut self, bus: &PioBus) -> VmExit {
        let index = self.index;
        loop {
            match self.fd.run() {
                Ok(VcpuExit::IoIn(port, data)) => bus.read(port, data),
                Ok(VcpuExit::IoOut(port, data)) => {
                    if let Some(DeviceEvent::Reset) = bus.write(port, data) {
                        log::info!("vcpu{index}: guest reset through the i8042");
                        return VmExit::Reset;
                    }
                }
                Ok(VcpuExit::MmioRead(_, data)) => data.fill(0xff),
                Ok(VcpuExit::MmioWrite(..)) => {}
                Ok(VcpuExit::Hlt) => {
                    // With the in-kernel LAPIC, HLT is handled by KVM; an exit
                    // here means the vCPU halted with interrupts off.
                    log::info!("vcpu{index}: halted");
                    return VmExit::Halt;
                }
                Ok(VcpuExit::Shutdown) => {
                    log::info!("vcpu{index}: shutdown (triple fault or guest reset)");
                    return VmExit::Shutdown;
                }
                Ok(VcpuExit::SystemEvent(kind, _)) => {
                    return match kind {
                        KVM_SYSTEM_EVENT_SHUTDOWN => VmExit::PowerOff,
                        KVM_SYSTEM_EVENT_RESET => VmExit::Reset,
                        KVM_SYSTEM_EVENT_CRASH => VmExit::Error(format!("vCPU {index}: the guest reported a crash")),
                        other => VmExit::Error(format!("vCPU {index}: unknown KVM system event {other}")),
                    }
                }
                Ok(VcpuExit::FailEntry(reason, cpu)) => {
                    return VmExit::Error(format!(
                        "vCPU {index}: KVM could not enter the guest (hardware reason 0x{reason:x}, cpu {cpu})"
                    ))
                }
                Ok(VcpuExit::InternalError) => {
                    let rip = self.fd.get_regs().map(|r| r.rip).unwrap_or(0);
                    return VmExit::Error(format!(
                        "vCPU {index}: KVM internal error (emulation failure?) at rip 0x{rip:x}"
                    ));
                }
                Ok(other) => {
                    return VmExit::Error(format!("vCPU {index}: unexpected KVM exit {other:?}"))
                }
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
                Err(e) => return VmExit::Error(format!("vCPU {index}: KVM_RUN failed: {e}")),
            }
        }
    }
}
