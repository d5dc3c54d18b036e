//! `cmtool exit-port VALUE`: writes VALUE to QEMU's isa-debug-exit device
//! (port 0xf4, which scripts/ehost adds), so QEMU exits with status
//! `(VALUE << 1) | 1`; that is how the emulated host's init ends a run.
//!
//! The init writes the port through /dev/port where the kernel has one (the
//! test kernels). Debian's kernel is built without `DEVPORT`, so there it
//! runs this instead, which takes the one port with ioperm(2) (root's
//! CAP_SYS_RAWIO; that kernel has no lockdown) and writes it itself.

/// The isa-debug-exit port of scripts/ehost's QEMU (`iobase=0xf4`).
const EXIT_PORT: u16 = 0xf4;

pub fn run(value: u8) -> Result<(), String> {
    // SAFETY: ioperm only changes this process's I/O permission bitmap; it
    // reads and writes no memory of ours.
    if unsafe { libc::ioperm(EXIT_PORT.into(), 1, 1) } != 0 {
        return Err(format!(
            "ioperm(port {EXIT_PORT:#x}): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: ioperm above granted this port; OUT touches no memory of this
    // process, and QEMU's isa-debug-exit device ends the VM on it.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") EXIT_PORT, in("al") value,
            options(nomem, nostack, preserves_flags));
    }
    Err(format!(
        "wrote {value} to port {EXIT_PORT:#x}, but QEMU did not exit: it has no isa-debug-exit device there"
    ))
}
