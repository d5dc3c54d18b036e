//! COM1: vm-superio's 16550A UART, its interrupt delivered to GSI 4 through
//! an irqfd, its output on stdout, its input from stdin.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// First port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Last port of COM1.
pub const COM1_LAST: u16 = 0x3ff;
/// COM1's ISA interrupt line.
pub const COM1_IRQ: u32 = 4;

/// Interrupt trigger writing to an eventfd registered as a KVM irqfd.
#[derive(Debug)]
pub struct EventFdTrigger(pub EventFd);

impl Trigger for EventFdTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Unbuffered console output on the process's stdout.
#[derive(Debug, Default)]
pub struct ConsoleOut;

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

/// The serial device type.
pub type SerialDevice = Serial<EventFdTrigger, NoEvents, ConsoleOut>;

/// A COM1 whose interrupts go to `irq_evt`.
pub fn new_serial(irq_evt: EventFd) -> SerialDevice {
    Serial::new(EventFdTrigger(irq_evt), ConsoleOut)
}

/// Starts the thread that feeds stdin into the serial port's receive FIFO.
///
/// It ends at end of file (stdin is `/dev/null` or a closed pipe) or on a
/// read error (stdin closed), leaving the guest without input.
pub fn spawn_stdin_reader(serial: Arc<Mutex<SerialDevice>>) -> io::Result<()> {
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = [0u8; 64];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::debug!("stdin: {e}; the guest gets no more input");
                        return;
                    }
                };
                let mut pending = &buf[..n];
                while !pending.is_empty() {
                    let taken = {
                        let mut s = serial.lock().expect("serial lock poisoned");
                        if s.fifo_capacity() == 0 {
                            0
                        } else {
                            s.enqueue_raw_bytes(pending).unwrap_or(0)
                        }
                    };
                    pending = &pending[taken..];
                    if taken == 0 {
                        // FIFO full: let the guest drain it.
                        thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    #[test]
    fn received_bytes_raise_the_interrupt() {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut s = new_serial(evt.try_clone().unwrap());
        // Enable the "received data available" interrupt (IER bit 0).
        s.write(1, 0x01).unwrap();
        assert_eq!(s.enqueue_raw_bytes(b"hi").unwrap(), 2);
        assert!(evt.read().unwrap() >= 1);
        assert_eq!(s.read(0), b'h');
        assert_eq!(s.read(0), b'i');
    }
}
