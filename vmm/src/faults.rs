//! The page faults the `vmm` process itself took, from
//! `getrusage(RUSAGE_SELF)`: every thread's, vCPU threads included, since
//! the kernel counts faults taken on behalf of KVM (its `get_user_pages` of
//! guest RAM) against the faulting thread.
//!
//! Printed at exit as `vmm-faults: minor=N major=N`, next to the
//! `kvm-stage2:` line.

use std::fmt;
use std::io;

/// Minor and major page faults of this process so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessFaults {
    /// Faults served without I/O (`ru_minflt`).
    pub minor: u64,
    /// Faults that needed I/O, swap-ins included (`ru_majflt`).
    pub major: u64,
}

impl ProcessFaults {
    /// Reads this process's counts (all threads).
    pub fn current() -> io::Result<Self> {
        // SAFETY: `rusage` is plain old data; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes exactly one `rusage` into the live,
        // properly aligned `ru` and keeps no pointer to it.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ProcessFaults {
            minor: ru.ru_minflt as u64,
            major: ru.ru_majflt as u64,
        })
    }
}

impl fmt::Display for ProcessFaults {
    /// The parseable line: `vmm-faults: minor=N major=N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vmm-faults: minor={} major={}", self.minor, self.major)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_grow_when_memory_is_touched() {
        let before = ProcessFaults::current().unwrap();
        let v = vec![1u8; 8 << 20];
        assert_eq!(v.iter().step_by(4096).map(|&b| b as u64).sum::<u64>(), 2048);
        let after = ProcessFaults::current().unwrap();
        assert!(after.minor > before.minor, "{before:?} {after:?}");
        assert_eq!(
            ProcessFaults { minor: 3, major: 1 }.to_string(),
            "vmm-faults: minor=3 major=1"
        );
    }
}
