//! The KVM VM: its fd, with the in-kernel irqchip and PIT, the TSS, and the
//! TSC rate every vCPU will run at; and [`IrqLine`], a level-triggered
//! interrupt line of its irqchip that a device can own.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use kvm_bindings::{kvm_irq_level, kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vmm_sys_util::{
    ioctl::{ioctl_with_ref, ioctl_with_val},
    ioctl_io_nr, ioctl_iow_nr,
};

use crate::devices::LevelIrq;

use crate::arch::x86_64::layout::KVM_TSS_ADDRESS;

/// Errors creating the KVM VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
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
    /// The VM fd could not be duplicated for a device's interrupt line.
    #[error("cannot duplicate the KVM VM fd for IRQ {0}")]
    DupFd(u32, #[source] std::io::Error),
}

// `KVM_SET_TSC_KHZ`, `_IO(KVMIO, 0xa2)`: on a VM fd (KVM_CAP_VM_TSC_CONTROL)
// it sets the rate of the vCPUs created afterwards.
ioctl_io_nr!(KVM_SET_TSC_KHZ, KVMIO, 0xa2);

// `KVM_IRQ_LINE`, `_IOW(KVMIO, 0x61, struct kvm_irq_level)`: sets the level
// of one input of the in-kernel PIC and I/O APIC.
ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);

/// The KVM ioctl type (`KVMIO` in `linux/kvm.h`).
const KVMIO: u32 = 0xae;

/// `KVM_SET_TSC_KHZ` argument meaning "the host's TSC rate now".
const HOST_TSC_RATE: u64 = 0;

/// Capabilities the VM cannot do without.
const REQUIRED_CAPS: [(Cap, &str); 9] = [
    (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
    (Cap::Irqfd, "KVM_CAP_IRQFD"),
    (Cap::Pit2, "KVM_CAP_PIT2"),
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
    (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    // PCI devices: MSI routes, and queue notifications of any width.
    (Cap::IrqRouting, "KVM_CAP_IRQ_ROUTING"),
    (Cap::Ioeventfd, "KVM_CAP_IOEVENTFD"),
    (Cap::IoeventfdNoLength, "KVM_CAP_IOEVENTFD_NO_LENGTH"),
];

/// A KVM VM, ready for memory and vCPUs.
#[derive(Debug)]
pub struct Vm {
    fd: Arc<VmFd>,
}

impl Vm {
    /// Creates a VM for `cpus` vCPUs: checks KVM's capabilities and limits,
    /// then sets up the TSS, the in-kernel irqchip and PIT, and the TSC rate.
    pub fn new(kvm: &Kvm, cpus: u32) -> Result<Self, VmError> {
        for (cap, name) in REQUIRED_CAPS {
            if !kvm.check_extension(cap) {
                return Err(VmError::MissingCap(name));
            }
        }
        let max = kvm.get_max_vcpus();
        if cpus as usize > max {
            return Err(VmError::TooManyVcpus {
                requested: cpus,
                max,
            });
        }
        let fd = kvm
            .create_vm()
            .map_err(|e| VmError::Kvm("create the VM", e))?;
        fd.set_tss_address(KVM_TSS_ADDRESS as usize)
            .map_err(|e| VmError::Kvm("set the TSS address", e))?;
        fd.create_irq_chip()
            .map_err(|e| VmError::Kvm("create the in-kernel irqchip", e))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit)
            .map_err(|e| VmError::Kvm("create the in-kernel PIT", e))?;

        // KVM gives new vCPUs the TSC rate the host had when kvm.ko loaded.
        // A host without an invariant TSC (nested hosts, some emulated CPUs)
        // may refine its calibration after that; if the two differ by more
        // than KVM's tolerance and the CPU cannot scale the TSC, the vCPUs
        // get no TSC multiplier and the guest's timers never fire. Setting
        // the host's current rate for the whole VM, before any vCPU exists,
        // also keeps every vCPU's first TSC write in one synchronisation
        // generation, which per-vCPU rate changes after creation would not.
        // (The VM-wide ioctl exists since Linux 6.0. KVM_CAP_VM_TSC_CONTROL
        // says whether the CPU can *scale* the TSC, which rate 0 never
        // needs, so it is not checked.)
        // SAFETY: KVM_SET_TSC_KHZ takes its argument by value and touches no
        // user memory; `fd` is a VM fd.
        let r = unsafe { ioctl_with_val(&fd, KVM_SET_TSC_KHZ(), HOST_TSC_RATE) };
        if r < 0 {
            return Err(VmError::Kvm(
                "set the VM's TSC rate (KVM_SET_TSC_KHZ on the VM needs Linux 6.0 or later)",
                kvm_ioctls::Error::last(),
            ));
        }
        Ok(Vm { fd: Arc::new(fd) })
    }

    /// The VM fd.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// The VM fd, for the devices that program KVM while the VM runs
    /// (MSI routes, ioeventfds). They must be dropped before guest memory
    /// is, as the VM lives as long as its fd.
    pub fn shared_fd(&self) -> Arc<VmFd> {
        Arc::clone(&self.fd)
    }

    /// The irqchip input `irq`, for a device to drive at its own pace. It
    /// holds its own duplicate of the VM fd, so it must be dropped before
    /// guest memory is (the VM lives as long as any of its fds).
    pub fn irq_line(&self, irq: u32) -> Result<IrqLine, VmError> {
        // SAFETY: the VM fd is open while `self` lives, and the borrow ends
        // within this statement, once the fd is duplicated.
        let vm = unsafe { BorrowedFd::borrow_raw(self.fd.as_raw_fd()) }
            .try_clone_to_owned()
            .map_err(|e| VmError::DupFd(irq, e))?;
        Ok(IrqLine { vm, irq })
    }
}

/// One input of the VM's in-kernel PIC and I/O APIC, set with
/// `KVM_IRQ_LINE`.
///
/// # Invariants
///
/// `vm` is a KVM VM fd whose VM has an in-kernel irqchip.
#[derive(Debug)]
pub struct IrqLine {
    vm: OwnedFd,
    irq: u32,
}

impl LevelIrq for IrqLine {
    fn set(&self, asserted: bool) -> std::io::Result<()> {
        let mut level = kvm_irq_level::default();
        level.__bindgen_anon_1.irq = self.irq;
        level.level = u32::from(asserted);
        // SAFETY: `vm` is a VM fd with an irqchip (the invariant);
        // KVM_IRQ_LINE only reads a `kvm_irq_level`, which `level` is, and
        // the result is checked.
        let r = unsafe { ioctl_with_ref(&self.vm, KVM_IRQ_LINE(), &level) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
