//! How a VM ends, and the process exit status each ending maps to.
//!
//! The guest asking for a reboot or a power-off is a normal end (status 0).
//! Everything else that stops a guest is a failure with its own status, so a
//! supervisor or a test can tell a guest bug (triple fault), a KVM or host
//! problem (internal error, failed entry) and a signal apart:
//!
//! | status | ending |
//! |---|---|
//! | 0 | the guest rebooted (i8042 reset, KVM reset event) or powered off, also when asked to by SIGTERM/SIGINT |
//! | 1 | `vmm` failed: a setup error, or a KVM or device call failed while the guest ran |
//! | 2 | bad command line |
//! | 3 | a vCPU triple-faulted (`KVM_EXIT_SHUTDOWN`) |
//! | 4 | KVM reported an internal error on a vCPU (`KVM_EXIT_INTERNAL_ERROR`, emulation failure among them) |
//! | 5 | KVM could not enter the guest (`KVM_EXIT_FAIL_ENTRY`) |
//! | 6 | the guest reported a crash (`KVM_SYSTEM_EVENT_CRASH`) |
//! | 7 | stopped by SIGTERM/SIGINT: the guest did not shut down within the grace period, or a second signal came |

use std::fmt;

use super::vcpu_state::VcpuState;

/// Exit status: the guest ended itself normally.
pub const STATUS_OK: i32 = 0;
/// Exit status: `vmm` itself failed.
pub const STATUS_VMM_ERROR: i32 = 1;
/// Exit status: bad command line (clap's own status).
pub const STATUS_USAGE: i32 = 2;
/// Exit status: a vCPU triple-faulted.
pub const STATUS_TRIPLE_FAULT: i32 = 3;
/// Exit status: KVM internal error, including emulation failures.
pub const STATUS_INTERNAL_ERROR: i32 = 4;
/// Exit status: KVM could not enter the guest.
pub const STATUS_FAIL_ENTRY: i32 = 5;
/// Exit status: the guest reported a crash.
pub const STATUS_GUEST_CRASH: i32 = 6;
/// Exit status: stopped by a signal before the guest shut down.
pub const STATUS_STOPPED: i32 = 7;

/// What went wrong on a vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `KVM_EXIT_SHUTDOWN`: a triple fault.
    TripleFault,
    /// `KVM_EXIT_INTERNAL_ERROR` with its suberror (1 is an emulation
    /// failure) and the data words KVM gave.
    InternalError {
        /// `kvm_run.internal.suberror`.
        suberror: u32,
        /// `kvm_run.internal.data[..ndata]`.
        data: Vec<u64>,
    },
    /// `KVM_EXIT_FAIL_ENTRY`: the hardware refused to enter the guest.
    FailEntry {
        /// The hardware's entry-failure reason.
        reason: u64,
        /// The host CPU it happened on.
        cpu: u32,
    },
    /// `KVM_SYSTEM_EVENT_CRASH`: the guest said it crashed.
    GuestCrash,
}

/// `KVM_INTERNAL_ERROR_EMULATION`: KVM could not emulate an instruction.
const SUBERROR_EMULATION: u32 = 1;

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::TripleFault => write!(f, "triple fault (KVM_EXIT_SHUTDOWN)"),
            FaultKind::InternalError { suberror, data } => {
                let what = if *suberror == SUBERROR_EMULATION {
                    "emulation failure"
                } else {
                    "internal error"
                };
                write!(f, "KVM {what} (KVM_EXIT_INTERNAL_ERROR, suberror {suberror}")?;
                if !data.is_empty() {
                    write!(f, ", data")?;
                    for d in data {
                        write!(f, " {d:#x}")?;
                    }
                }
                write!(f, ")")
            }
            FaultKind::FailEntry { reason, cpu } => write!(
                f,
                "KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x}, host cpu {cpu})"
            ),
            FaultKind::GuestCrash => write!(f, "the guest reported a crash (KVM_SYSTEM_EVENT_CRASH)"),
        }
    }
}

/// A vCPU that stopped the VM, with its state when it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuFault {
    /// The vCPU index.
    pub vcpu: u32,
    /// What happened.
    pub kind: FaultKind,
    /// The vCPU's registers, events and LAPIC, or why they could not be read.
    pub state: Result<VcpuState, String>,
}

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset the machine (i8042 reset, or a KVM reset event).
    Reset,
    /// The guest powered off (KVM system event).
    PowerOff,
    /// A vCPU stopped the VM with a fault.
    Fault(VcpuFault),
    /// A signal stopped the VM before the guest shut down.
    Stopped {
        /// The last signal received.
        signal: i32,
        /// Why the guest was not waited for.
        reason: StopReason,
    },
    /// `vmm` failed while the guest ran.
    Error(String),
}

/// Why a signalled VM was stopped without the guest shutting down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The grace period ran out.
    GraceExpired,
    /// A second signal came during the grace period.
    SecondSignal,
}

impl VmExit {
    /// The process exit status (see the module table).
    pub fn exit_code(&self) -> i32 {
        match self {
            VmExit::Reset | VmExit::PowerOff => STATUS_OK,
            VmExit::Fault(f) => match f.kind {
                FaultKind::TripleFault => STATUS_TRIPLE_FAULT,
                FaultKind::InternalError { .. } => STATUS_INTERNAL_ERROR,
                FaultKind::FailEntry { .. } => STATUS_FAIL_ENTRY,
                FaultKind::GuestCrash => STATUS_GUEST_CRASH,
            },
            VmExit::Stopped { .. } => STATUS_STOPPED,
            VmExit::Error(_) => STATUS_VMM_ERROR,
        }
    }
}

impl fmt::Display for VmExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmExit::Reset => write!(f, "guest reset"),
            VmExit::PowerOff => write!(f, "guest powered off"),
            VmExit::Fault(fault) => write!(f, "vCPU {}: {}", fault.vcpu, fault.kind),
            VmExit::Stopped { signal, reason } => {
                let name = signal_name(*signal);
                match reason {
                    StopReason::GraceExpired => write!(
                        f,
                        "stopped by {name}: the guest did not shut down within the grace period"
                    ),
                    StopReason::SecondSignal => {
                        write!(f, "stopped by a second {name} before the guest shut down")
                    }
                }
            }
            VmExit::Error(e) => write!(f, "{e}"),
        }
    }
}

/// `SIGTERM`, `SIGINT` or the number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind) -> VmExit {
        VmExit::Fault(VcpuFault {
            vcpu: 3,
            kind,
            state: Err("not read".into()),
        })
    }

    #[test]
    fn every_ending_has_its_own_status() {
        let endings = [
            VmExit::Reset,
            fault(FaultKind::TripleFault),
            fault(FaultKind::InternalError {
                suberror: 1,
                data: vec![],
            }),
            fault(FaultKind::FailEntry { reason: 0, cpu: 0 }),
            fault(FaultKind::GuestCrash),
            VmExit::Stopped {
                signal: libc::SIGTERM,
                reason: StopReason::GraceExpired,
            },
            VmExit::Error("x".into()),
        ];
        let codes: Vec<i32> = endings.iter().map(VmExit::exit_code).collect();
        assert_eq!(codes, [0, 3, 4, 5, 6, 7, 1]);
        assert_eq!(VmExit::PowerOff.exit_code(), STATUS_OK);
        assert_ne!(STATUS_USAGE, STATUS_OK);
    }

    #[test]
    fn messages_name_the_vcpu_and_the_exit_reason() {
        assert_eq!(
            fault(FaultKind::TripleFault).to_string(),
            "vCPU 3: triple fault (KVM_EXIT_SHUTDOWN)"
        );
        assert_eq!(
            fault(FaultKind::InternalError {
                suberror: 1,
                data: vec![0x10, 0x2]
            })
            .to_string(),
            "vCPU 3: KVM emulation failure (KVM_EXIT_INTERNAL_ERROR, suberror 1, data 0x10 0x2)"
        );
        assert_eq!(
            fault(FaultKind::FailEntry {
                reason: 0x21,
                cpu: 1
            })
            .to_string(),
            "vCPU 3: KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason 0x21, host cpu 1)"
        );
        assert_eq!(
            VmExit::Stopped {
                signal: libc::SIGINT,
                reason: StopReason::SecondSignal
            }
            .to_string(),
            "stopped by a second SIGINT before the guest shut down"
        );
    }
}
