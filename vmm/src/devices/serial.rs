//! COM1: vm-superio's 16550A UART, its interrupt delivered to GSI 4 through
//! an irqfd, its output on stdout, its input from stdin.
//!
//! Output goes through a bounded buffer to a writer thread
//! ([`ConsoleWriter`]), never straight to stdout from the vCPU that wrote
//! the UART register: a stalled stdout (a full pipe, a stopped terminal)
//! must not stall the vCPU, which holds the serial lock that every other
//! vCPU's console output needs too. When the buffer is full, output is
//! dropped and counted.
//!
//! A guest writes its console one byte per trapped port write. The writer
//! thread is woken only when output arrives in an empty buffer, and then
//! lets [`CONSOLE_COALESCE`] pass before it writes, so a chatty guest costs
//! a few hundred wake-ups and `write(2)` calls a second rather than one per
//! byte (each a cross-CPU wake-up of the writer thread).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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

/// Console bytes that may wait for the writer thread before more are
/// dropped.
pub const CONSOLE_BUFFER: usize = 1 << 20;

/// How long output gathers after its first byte before the writer thread
/// writes it: short enough to be invisible on a console, long enough to
/// carry a line or more of a booting guest's output in one write.
pub const CONSOLE_COALESCE: Duration = Duration::from_millis(2);

#[derive(Debug, Default)]
struct QueueState {
    bytes: VecDeque<u8>,
    closed: bool,
    dropped: u64,
}

/// The buffer between the UART and the writer thread.
#[derive(Debug, Default)]
struct ConsoleQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

/// The UART's output side: appends to the console buffer, never blocks on
/// stdout.
#[derive(Debug, Clone)]
pub struct ConsoleOut {
    queue: Arc<ConsoleQueue>,
    capacity: usize,
}

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.queue.state.lock().expect("console lock poisoned");
        let room = self.capacity.saturating_sub(s.bytes.len());
        let taken = buf.len().min(room);
        // The writer only ever waits for an empty buffer to fill.
        let wake = s.bytes.is_empty() && taken > 0;
        s.bytes.extend(&buf[..taken]);
        s.dropped += (buf.len() - taken) as u64;
        if wake {
            self.queue.ready.notify_one();
        }
        // Dropped bytes count as written: the UART must not retry them.
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The thread that copies the console buffer to an output (stdout).
#[derive(Debug)]
pub struct ConsoleWriter {
    queue: Arc<ConsoleQueue>,
    thread: JoinHandle<()>,
}

impl ConsoleWriter {
    /// Starts the writer thread on stdout; returns it and the UART side.
    pub fn spawn_stdout() -> io::Result<(ConsoleWriter, ConsoleOut)> {
        Self::spawn(io::stdout(), CONSOLE_BUFFER)
    }

    /// Starts the writer thread on `out`, buffering up to `capacity` bytes.
    pub fn spawn<W: Write + Send + 'static>(
        mut out: W,
        capacity: usize,
    ) -> io::Result<(ConsoleWriter, ConsoleOut)> {
        let queue = Arc::new(ConsoleQueue::default());
        let q = Arc::clone(&queue);
        let thread = thread::Builder::new()
            .name("console".into())
            .spawn(move || loop {
                {
                    let mut s = q.state.lock().expect("console lock poisoned");
                    while s.bytes.is_empty() && !s.closed {
                        s = q.ready.wait(s).expect("console lock poisoned");
                    }
                    if s.bytes.is_empty() {
                        return;
                    }
                }
                thread::sleep(CONSOLE_COALESCE);
                let chunk: Vec<u8> = {
                    let mut s = q.state.lock().expect("console lock poisoned");
                    s.bytes.drain(..).collect()
                };
                if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
                    // stdout is gone: nothing more can be shown.
                    return;
                }
            })?;
        Ok((
            ConsoleWriter {
                queue: Arc::clone(&queue),
                thread,
            },
            ConsoleOut { queue, capacity },
        ))
    }

    /// Lets the thread write what is buffered, waiting at most `timeout`
    /// for it (a stalled stdout must not keep `vmm` from exiting). Returns
    /// the number of bytes dropped because the buffer was full, and whether
    /// everything buffered was written.
    pub fn finish(self, timeout: Duration) -> (u64, bool) {
        let dropped = {
            let mut s = self.queue.state.lock().expect("console lock poisoned");
            s.closed = true;
            self.queue.ready.notify_one();
            s.dropped
        };
        let deadline = Instant::now() + timeout;
        while !self.thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let done = self.thread.is_finished();
        if done {
            let _ = self.thread.join();
        }
        (dropped, done)
    }
}

/// The serial device type.
pub type SerialDevice = Serial<EventFdTrigger, NoEvents, ConsoleOut>;

/// A COM1 whose interrupts go to `irq_evt` and whose output goes to `out`.
pub fn new_serial(irq_evt: EventFd, out: ConsoleOut) -> SerialDevice {
    Serial::new(EventFdTrigger(irq_evt), out)
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

    /// An output that records what it got and in how many writes, and can
    /// be made to block.
    #[derive(Clone, Default)]
    struct Recorder {
        got: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.got.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_reaches_the_writer_in_order() {
        let rec = Recorder::default();
        let (writer, out) = ConsoleWriter::spawn(rec.clone(), 64).unwrap();
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut s = new_serial(evt, out);
        for b in b"hello\n" {
            s.write(0, *b).unwrap();
        }
        assert_eq!(writer.finish(Duration::from_secs(5)), (0, true));
        assert_eq!(&rec.got.lock().unwrap()[..], b"hello\n");
    }

    #[test]
    fn bytes_written_one_at_a_time_leave_in_few_writes() {
        let rec = Recorder::default();
        let (writer, mut out) = ConsoleWriter::spawn(rec.clone(), 4096).unwrap();
        // A byte every 200 us or more, as a guest's console writes come: an
        // idle writer would take each alone; gathered, about ten go in one
        // write (a bound of 250 leaves room for oversleeping).
        for _ in 0..1000 {
            out.write_all(b"x").unwrap();
            thread::sleep(Duration::from_micros(200));
        }
        assert_eq!(writer.finish(Duration::from_secs(5)), (0, true));
        let writes = *rec.writes.lock().unwrap();
        assert_eq!(rec.got.lock().unwrap().len(), 1000);
        assert!(
            writes <= 250,
            "{writes} writes for 1000 bytes: output was not gathered"
        );
    }

    #[test]
    fn a_stalled_output_never_blocks_the_uart() {
        let rec = Recorder::default();
        let stall = rec.gate.lock().unwrap();
        let (writer, mut out) = ConsoleWriter::spawn(rec.clone(), 16).unwrap();
        // The writer takes what is buffered and blocks inside `write`; the
        // UART side keeps returning at once and drops what does not fit.
        for _ in 0..100 {
            out.write_all(b"0123456789").unwrap();
        }
        let (dropped, done) = writer.finish(Duration::from_millis(50));
        assert!(!done, "the writer is still stuck in the stalled output");
        assert!(dropped >= 1000 - 2 * 16, "dropped {dropped} of 1000 bytes");
        drop(stall);
    }

    #[test]
    fn received_bytes_raise_the_interrupt() {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let (_writer, out) = ConsoleWriter::spawn(io::sink(), 64).unwrap();
        let mut s = new_serial(evt.try_clone().unwrap(), out);
        // Enable the "received data available" interrupt (IER bit 0).
        s.write(1, 0x01).unwrap();
        assert_eq!(s.enqueue_raw_bytes(b"hi").unwrap(), 2);
        assert!(evt.read().unwrap() >= 1);
        assert_eq!(s.read(0), b'h');
        assert_eq!(s.read(0), b'i');
    }
}
