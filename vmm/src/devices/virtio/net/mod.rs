//! virtio-net on a host tap ([virtio 1.2, 5.1]): a receive and a transmit
//! queue, the MAC in the device configuration, and no offloads: every
//! frame is whole and its checksums are computed by whoever sent it.
//!
//! [`Net`] is the device the transport drives; [`NetWorker`] the event
//! loop on the device's own thread, which moves frames between the tap
//! ([`tap::Tap`]) and the rings. A frame goes through one buffer of
//! [`FRAME_MAX`] bytes each way, so no descriptor chain makes `vmm`
//! allocate.
//!
//! Each buffer starts with the 12-byte `virtio_net_hdr_v1`. Without
//! offloads the driver's transmit headers say nothing, and the device's
//! receive headers say "one buffer, no offload".

pub mod tap;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use self::tap::Tap;
use super::worker::Worker;
use super::{ActivateError, Activation, ActiveQueue, DeviceInterrupts, VirtioDevice};
use crate::config::MacAddress;

/// The virtio device type of a network device.
pub const DEVICE_TYPE: u16 = 1;
/// PCI class of a network device: network controller, Ethernet.
pub const PCI_CLASS: u32 = 0x02_00_00;
/// The size of each queue.
const QUEUE_SIZE: u16 = 256;
/// `virtio_net_hdr_v1`: flags, GSO type, header length, GSO size, checksum
/// start and offset, and the number of buffers.
pub const HEADER_SIZE: usize = 12;
/// The largest frame moved: what a tap may hold (64 KiB), far above any
/// MTU the guest can use without offloads.
pub const FRAME_MAX: usize = 65536;
/// The queue indices.
/// The most frames delivered before the loop looks at its other events,
/// so that a flood from the host cannot keep a reset waiting.
const RX_BATCH: usize = 256;

/// The header of every received frame: no offload, and (the `num_buffers`
/// field, little-endian at offset 10) one buffer.
pub fn receive_header() -> [u8; HEADER_SIZE] {
    let mut h = [0u8; HEADER_SIZE];
    h[10..12].copy_from_slice(&1u16.to_le_bytes());
    h
}

/// A virtio-net device.
#[derive(Debug)]
pub struct Net {
    name: String,
    tap: Arc<Tap>,
    mac: MacAddress,
}

impl Net {
    /// A device named `name` on `tap`, whose NIC has address `mac`.
    pub fn new(name: String, tap: Tap, mac: MacAddress) -> Self {
        Net {
            name,
            tap: Arc::new(tap),
            mac,
        }
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u16 {
        DEVICE_TYPE
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        super::F_VERSION_1 | super::F_EVENT_IDX | super::F_INDIRECT_DESC | 1 << VIRTIO_NET_F_MAC
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_bytes(&self.mac.0, offset, data);
    }

    fn activate(&mut self, activation: Activation) -> Result<Worker, ActivateError> {
        let Activation {
            memory,
            queues,
            interrupts,
            ..
        } = activation;
        let enabled = queues.len();
        let mut queues = queues.into_iter();
        let (Some(rx), Some(tx)) = (queues.next(), queues.next()) else {
            return Err(ActivateError::MissingQueues { enabled, needed: 2 });
        };
        let worker = NetWorker {
            name: self.name.clone(),
            tap: Arc::clone(&self.tap),
            memory,
            rx,
            tx,
            interrupts,
            rx_frame: vec![0; FRAME_MAX + 1],
            rx_pending: None,
            tx_frame: vec![0; FRAME_MAX],
            counters: Counters::default(),
            broken: false,
            resume_rx: EventFd::new(EFD_NONBLOCK).map_err(ActivateError::Worker)?,
        };
        Worker::spawn(self.name.clone(), worker).map_err(ActivateError::Worker)
    }
}

/// What the worker dropped, logged when it stops.
#[derive(Debug, Default)]
struct Counters {
    rx_frames: u64,
    tx_frames: u64,
    /// Frames bigger than the guest's receive buffer (or than
    /// [`FRAME_MAX`]).
    rx_too_big: u64,
    /// Transmit chains without a whole header or beyond [`FRAME_MAX`].
    tx_malformed: u64,
    /// Frames the tap refused (down, or its queue full).
    tx_refused: u64,
}

/// The frame loop of an active virtio-net device.
struct NetWorker {
    name: String,
    tap: Arc<Tap>,
    memory: GuestMemoryMmap,
    rx: ActiveQueue,
    tx: ActiveQueue,
    interrupts: DeviceInterrupts,
    /// The frame read from the tap; one byte longer than the longest frame
    /// taken, so that a longer one (which the tap cuts to fit) is seen.
    rx_frame: Vec<u8>,
    /// The length of a frame read but not yet delivered, for want of a
    /// receive buffer.
    rx_pending: Option<usize>,
    tx_frame: Vec<u8>,
    counters: Counters,
    /// The driver broke a ring: nothing is moved until a reset.
    broken: bool,
    /// Written when a receive batch ends with frames still in the tap:
    /// the edge-triggered tap would not say so again.
    resume_rx: EventFd,
}

/// Where a transmit chain's frame ends up.
#[derive(Debug, PartialEq, Eq)]
enum TxFrame {
    /// The frame is the first `n` bytes of the buffer.
    Frame(usize),
    /// The chain holds no valid frame.
    Malformed,
}

/// Copies the frame of a transmit chain (its readable part, header first)
/// into `buf`.
fn read_tx_chain(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    buf: &mut [u8],
) -> TxFrame {
    let Ok(mut reader) = chain.reader(mem) else {
        return TxFrame::Malformed;
    };
    let total = reader.available_bytes();
    if total < HEADER_SIZE || total - HEADER_SIZE > buf.len() {
        return TxFrame::Malformed;
    }
    let mut header = [0u8; HEADER_SIZE];
    let len = total - HEADER_SIZE;
    if io::Read::read_exact(&mut reader, &mut header).is_err()
        || io::Read::read_exact(&mut reader, &mut buf[..len]).is_err()
    {
        return TxFrame::Malformed;
    }
    TxFrame::Frame(len)
}

/// Writes the receive header and `frame` into a receive chain; returns the
/// bytes written, or `None` when the chain is too small (or not in guest
/// memory), and the frame must be dropped.
fn write_rx_chain(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    frame: &[u8],
) -> Option<u32> {
    let mut writer = chain.writer(mem).ok()?;
    if writer.available_bytes() < HEADER_SIZE + frame.len() {
        return None;
    }
    io::Write::write_all(&mut writer, &receive_header()).ok()?;
    io::Write::write_all(&mut writer, frame).ok()?;
    u32::try_from(writer.bytes_written()).ok()
}

impl NetWorker {
    /// Delivers frames from the tap until it has none, the guest has no
    /// receive buffer left, or a batch is done. The tap is watched
    /// edge-triggered: it is read until it would block, or until a frame
    /// waits for a buffer, whose arrival (the receive queue's
    /// notification) resumes the loop, or until the batch ends, which
    /// `resume_rx` resumes.
    fn receive(&mut self) -> Result<(), virtio_queue::Error> {
        let memory = self.memory.clone();
        for _ in 0..RX_BATCH {
            let len = match self.rx_pending {
                Some(len) => len,
                None => match self.tap.read_frame(&mut self.rx_frame) {
                    Ok(0) => return Ok(()),
                    Ok(len) if len > FRAME_MAX => {
                        self.counters.rx_too_big += 1;
                        continue;
                    }
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // The interface was deleted: this fd reads nothing
                        // again, and the guest sees a silent link.
                        log::warn!("{}: reading tap {}: {e}", self.name, self.tap.name());
                        return Ok(());
                    }
                },
            };
            self.rx_pending = Some(len);
            let Some(chain) = super::next_chain(&mut self.rx.queue, &memory)? else {
                // No buffer: ask to be told when the driver adds one (and
                // go on at once if it did meanwhile).
                if self.rx.queue.enable_notification(&memory)? {
                    continue;
                }
                return Ok(());
            };
            let head = chain.head_index();
            let used = match write_rx_chain(chain, &memory, &self.rx_frame[..len]) {
                Some(n) => {
                    self.counters.rx_frames += 1;
                    n
                }
                None => {
                    self.counters.rx_too_big += 1;
                    0
                }
            };
            self.rx_pending = None;
            self.rx.queue.add_used(&memory, head, used)?;
            if self.rx.queue.needs_notification(&memory)? {
                self.interrupts.queue(self.rx.vector);
            }
        }
        if let Err(e) = self.resume_rx.write(1) {
            log::error!("{}: cannot resume receiving: {e}", self.name);
        }
        Ok(())
    }

    /// Sends every frame the driver queued.
    fn transmit(&mut self) -> Result<(), virtio_queue::Error> {
        let memory = self.memory.clone();
        loop {
            self.tx.queue.disable_notification(&memory)?;
            while let Some(chain) = super::next_chain(&mut self.tx.queue, &memory)? {
                let head = chain.head_index();
                match read_tx_chain(chain, &memory, &mut self.tx_frame) {
                    TxFrame::Frame(len) => match self.tap.write_frame(&self.tx_frame[..len]) {
                        Ok(_) => self.counters.tx_frames += 1,
                        // Dropped, as a NIC drops what its wire refuses;
                        // TCP resends.
                        Err(_) => self.counters.tx_refused += 1,
                    },
                    TxFrame::Malformed => self.counters.tx_malformed += 1,
                }
                self.tx.queue.add_used(&memory, head, 0)?;
                if self.tx.queue.needs_notification(&memory)? {
                    self.interrupts.queue(self.tx.vector);
                }
            }
            if !self.tx.queue.enable_notification(&memory)? {
                return Ok(());
            }
        }
    }

    fn broken(&mut self, which: &str, e: virtio_queue::Error) {
        // The driver broke a ring: the device stops serving both until a
        // reset, and tells the driver so, once.
        log::warn!(
            "{}: the {which} queue is broken ({e}); the device needs a reset",
            self.name
        );
        self.broken = true;
        self.interrupts.needs_reset();
    }
}

impl MutEventSubscriber for NetWorker {
    fn init(&mut self, ops: &mut EventOps) {
        let watches = [
            Events::new(&self.rx.notify, EventSet::IN),
            Events::new(&self.tx.notify, EventSet::IN),
            Events::new(&*self.tap, EventSet::IN | EventSet::EDGE_TRIGGERED),
            Events::new(&self.resume_rx, EventSet::IN),
        ];
        for events in watches {
            if let Err(e) = ops.add(events) {
                log::error!("{}: cannot watch its queues and tap: {e:?}", self.name);
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let fd = events.fd();
        if self.broken {
            // Drain what woke the loop, so that it sleeps again. Frames
            // for the guest wait in the tap, which drops them once full.
            if fd == self.tx.notify.as_raw_fd() {
                let _ = self.tx.notify.read();
            } else if fd == self.rx.notify.as_raw_fd() {
                let _ = self.rx.notify.read();
            } else if fd == self.resume_rx.as_raw_fd() {
                let _ = self.resume_rx.read();
            }
            return;
        }
        if fd == self.tx.notify.as_raw_fd() {
            let _ = self.tx.notify.read();
            if let Err(e) = self.transmit() {
                self.broken("transmit", e);
            }
            return;
        }
        if fd == self.rx.notify.as_raw_fd() {
            let _ = self.rx.notify.read();
        } else if fd == self.resume_rx.as_raw_fd() {
            let _ = self.resume_rx.read();
        }
        // A frame on the tap, or a buffer for the one waiting, or the rest
        // of a batch.
        if let Err(e) = self.receive() {
            self.broken("receive", e);
        }
    }
}

impl Drop for NetWorker {
    fn drop(&mut self) {
        let c = &self.counters;
        let dropped = c.rx_too_big + c.tx_malformed + c.tx_refused;
        log::log!(
            if dropped > 0 { log::Level::Warn } else { log::Level::Info },
            "{}: {} frames received, {} sent; dropped: {} too big for the guest's buffer, {} malformed, {} refused by tap {}",
            self.name,
            c.rx_frames,
            c.tx_frames,
            c.rx_too_big,
            c.tx_malformed,
            c.tx_refused,
            self.tap.name()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    const WRITE: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_WRITE as u16;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap()
    }

    #[test]
    fn a_transmit_chain_gives_the_frame_after_its_header() {
        let mem = memory();
        // The header in one descriptor, the frame split over two.
        mem.write_slice(&[0xee; HEADER_SIZE], GuestAddress(0x10_0000))
            .unwrap();
        mem.write_slice(b"destination", GuestAddress(0x20_0000))
            .unwrap();
        mem.write_slice(b"+payload", GuestAddress(0x30_0000))
            .unwrap();
        let queue = MockSplitQueue::new(&mem, 16);
        let chain = queue
            .build_desc_chain(&[
                RawDescriptor::from(SplitDescriptor::new(0x10_0000, HEADER_SIZE as u32, 0, 0)),
                RawDescriptor::from(SplitDescriptor::new(0x20_0000, 11, 0, 0)),
                RawDescriptor::from(SplitDescriptor::new(0x30_0000, 8, 0, 0)),
            ])
            .unwrap();
        let mut buf = vec![0; 64];
        assert_eq!(read_tx_chain(chain, &mem, &mut buf), TxFrame::Frame(19));
        assert_eq!(&buf[..19], b"destination+payload");
    }

    #[test]
    fn transmit_chains_without_a_header_or_too_long_are_dropped() {
        let mem = memory();
        let queue = MockSplitQueue::new(&mem, 16);
        let short = queue
            .build_desc_chain(&[RawDescriptor::from(SplitDescriptor::new(
                0x10_0000, 11, 0, 0,
            ))])
            .unwrap();
        assert_eq!(read_tx_chain(short, &mem, &mut [0; 64]), TxFrame::Malformed);
        let queue = MockSplitQueue::new(&mem, 16);
        let long = queue
            .build_desc_chain(&[RawDescriptor::from(SplitDescriptor::new(
                0x10_0000, 77, 0, 0,
            ))])
            .unwrap();
        assert_eq!(read_tx_chain(long, &mem, &mut [0; 64]), TxFrame::Malformed);
        let queue = MockSplitQueue::new(&mem, 16);
        let outside = queue
            .build_desc_chain(&[RawDescriptor::from(SplitDescriptor::new(
                0x3f_fff0, 64, 0, 0,
            ))])
            .unwrap();
        assert_eq!(
            read_tx_chain(outside, &mem, &mut [0; 64]),
            TxFrame::Malformed
        );
    }

    #[test]
    fn a_received_frame_follows_a_one_buffer_header() {
        let mem = memory();
        mem.write_slice(&[0xee; 64], GuestAddress(0x20_0000))
            .unwrap();
        let queue = MockSplitQueue::new(&mem, 16);
        let chain = queue
            .build_desc_chain(&[
                RawDescriptor::from(SplitDescriptor::new(0x20_0000, 8, WRITE, 0)),
                RawDescriptor::from(SplitDescriptor::new(0x20_0010, 48, WRITE, 0)),
            ])
            .unwrap();
        assert_eq!(write_rx_chain(chain, &mem, b"an ethernet frame"), Some(29));
        let mut got = [0u8; 8 + 21];
        mem.read_slice(&mut got[..8], GuestAddress(0x20_0000))
            .unwrap();
        mem.read_slice(&mut got[8..], GuestAddress(0x20_0010))
            .unwrap();
        assert_eq!(got[..HEADER_SIZE], receive_header());
        assert_eq!(&got[HEADER_SIZE..], b"an ethernet frame");
        assert_eq!(u16::from_le_bytes([got[10], got[11]]), 1, "num_buffers");
    }

    #[test]
    fn a_frame_bigger_than_the_buffer_is_dropped_untouched() {
        let mem = memory();
        mem.write_slice(&[0xee; 32], GuestAddress(0x20_0000))
            .unwrap();
        let queue = MockSplitQueue::new(&mem, 16);
        let chain = queue
            .build_desc_chain(&[RawDescriptor::from(SplitDescriptor::new(
                0x20_0000, 20, WRITE, 0,
            ))])
            .unwrap();
        assert_eq!(write_rx_chain(chain, &mem, &[1; 9]), None);
        let mut after = [0u8; 32];
        mem.read_slice(&mut after, GuestAddress(0x20_0000)).unwrap();
        assert_eq!(after, [0xee; 32], "nothing half-written");
        // A readable-only chain has no room at all.
        let queue = MockSplitQueue::new(&mem, 16);
        let chain = queue
            .build_desc_chain(&[RawDescriptor::from(SplitDescriptor::new(
                0x20_0000, 64, 0, 0,
            ))])
            .unwrap();
        assert_eq!(write_rx_chain(chain, &mem, &[1; 9]), None);
    }
}
