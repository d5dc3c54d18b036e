//! virtio-net on a host tap ([virtio 1.2, 5.1]): a receive and a transmit
//! queue, the MAC in the device configuration, and checksum and TCP
//! segmentation offloads both ways.
//!
//! [`Net`] is the device the transport drives; [`NetWorker`] the event
//! loop on the device's own thread, which moves packets between the tap
//! ([`tap::Tap`]) and the rings. A packet goes through one buffer of
//! [`PACKET_MAX`] bytes each way, so no descriptor chain makes `vmm`
//! allocate.
//!
//! A packet is the 12-byte `virtio_net_hdr_v1` and an Ethernet frame, in
//! the guest's buffers and on the tap alike (`IFF_VNET_HDR`), so the
//! header passes through untouched: it says which checksum is left to do
//! and how a TCP segment of up to 64 KiB is to be cut, and the tap or the
//! guest's driver does it. The tap takes from the guest whatever the
//! guest sends; what the tap hands the guest follows the offloads the
//! driver accepted (`TUNSETOFFLOAD`).

pub mod tap;

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE,
};
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
/// The largest packet moved: the header and a frame of a 64 KiB IP
/// packet (the most a TCP segmentation offload carries) with an Ethernet
/// and a VLAN header.
pub const PACKET_MAX: usize = HEADER_SIZE + 65535 + 18;
/// The most frames delivered before the loop looks at its other events,
/// so that a flood from the host cannot keep a reset waiting.
const RX_BATCH: usize = 256;

/// The offloads offered: checksums and TCP segments (IPv4 and IPv6) left
/// to the device on transmit and to the driver on receive.
const OFFLOAD_FEATURES: u64 = 1 << VIRTIO_NET_F_CSUM
    | 1 << VIRTIO_NET_F_HOST_TSO4
    | 1 << VIRTIO_NET_F_HOST_TSO6
    | 1 << VIRTIO_NET_F_GUEST_CSUM
    | 1 << VIRTIO_NET_F_GUEST_TSO4
    | 1 << VIRTIO_NET_F_GUEST_TSO6;

/// The tap offloads (`TUN_F_*`) that the features the driver accepted
/// allow: what the guest takes on receive.
pub fn tap_offloads(features: u64) -> u32 {
    let has = |bit: u32| features & (1 << bit) != 0;
    if !has(VIRTIO_NET_F_GUEST_CSUM) {
        // Segments are checksummed per piece: no TSO without it.
        return 0;
    }
    let mut flags = tap::TUN_F_CSUM;
    if has(VIRTIO_NET_F_GUEST_TSO4) {
        flags |= tap::TUN_F_TSO4;
    }
    if has(VIRTIO_NET_F_GUEST_TSO6) {
        flags |= tap::TUN_F_TSO6;
    }
    flags
}

/// What a packet's header leaves to its receiver, for the counters.
fn offloads_in(header: &[u8]) -> (bool, bool) {
    let checksum = header[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM as u8 != 0;
    let segmented = header[1] != VIRTIO_NET_HDR_GSO_NONE as u8;
    (checksum, segmented)
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
        super::F_VERSION_1
            | super::F_EVENT_IDX
            | super::F_INDIRECT_DESC
            | 1 << VIRTIO_NET_F_MAC
            | OFFLOAD_FEATURES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_bytes(&self.mac.0, offset, data);
    }

    fn activate(&mut self, activation: Activation) -> Result<Worker, ActivateError> {
        let Activation {
            memory,
            features,
            queues,
            interrupts,
        } = activation;
        let enabled = queues.len();
        let mut queues = queues.into_iter();
        let (Some(rx), Some(tx)) = (queues.next(), queues.next()) else {
            return Err(ActivateError::MissingQueues { enabled, needed: 2 });
        };
        self.tap
            .set_offloads(tap_offloads(features))
            .map_err(ActivateError::Worker)?;
        let worker = NetWorker {
            name: self.name.clone(),
            tap: Arc::clone(&self.tap),
            memory,
            rx,
            tx,
            interrupts,
            rx_packet: vec![0; PACKET_MAX + 1],
            rx_pending: None,
            tx_packet: vec![0; PACKET_MAX],
            counters: Counters::default(),
            broken: false,
            resume_rx: EventFd::new(EFD_NONBLOCK).map_err(ActivateError::Worker)?,
        };
        Worker::spawn(self.name.clone(), worker).map_err(ActivateError::Worker)
    }
}

/// What the worker moved and dropped, logged when it stops.
#[derive(Debug, Default)]
struct Counters {
    rx_frames: u64,
    tx_frames: u64,
    /// Packets whose checksum or segmentation was left to the receiver.
    rx_checksum_left: u64,
    rx_segmented: u64,
    tx_checksum_left: u64,
    tx_segmented: u64,
    /// Packets bigger than the guest's receive buffer (or than
    /// [`PACKET_MAX`]), or shorter than a header.
    rx_too_big: u64,
    /// Transmit chains without a whole header or beyond [`PACKET_MAX`].
    tx_malformed: u64,
    /// Packets the tap refused (down, or a header it does not take).
    tx_refused: u64,
}

impl Counters {
    fn count(checksum_left: &mut u64, segmented: &mut u64, header: &[u8]) {
        let (checksum, segment) = offloads_in(header);
        *checksum_left += u64::from(checksum);
        *segmented += u64::from(segment);
    }
}

/// The frame loop of an active virtio-net device.
struct NetWorker {
    name: String,
    tap: Arc<Tap>,
    memory: GuestMemoryMmap,
    rx: ActiveQueue,
    tx: ActiveQueue,
    interrupts: DeviceInterrupts,
    /// The packet read from the tap; one byte longer than the longest
    /// taken, so that a longer one (which the tap cuts to fit) is seen.
    rx_packet: Vec<u8>,
    /// The length of a packet read but not yet delivered, for want of a
    /// receive buffer.
    rx_pending: Option<usize>,
    tx_packet: Vec<u8>,
    counters: Counters,
    /// The driver broke a ring: nothing is moved until a reset.
    broken: bool,
    /// Written when a receive batch ends with frames still in the tap:
    /// the edge-triggered tap would not say so again.
    resume_rx: EventFd,
}

/// Copies the packet of a transmit chain (its readable part: header, then
/// frame) into `buf`; returns its length, or `None` for a chain without a
/// whole header, longer than `buf` or outside guest memory.
fn read_tx_chain(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    buf: &mut [u8],
) -> Option<usize> {
    let mut reader = chain.reader(mem).ok()?;
    let len = reader.available_bytes();
    if len < HEADER_SIZE || len > buf.len() {
        return None;
    }
    io::Read::read_exact(&mut reader, &mut buf[..len]).ok()?;
    Some(len)
}

/// Writes `packet` (header, then frame) into a receive chain; returns the
/// bytes written, or `None` when the chain is too small (or not in guest
/// memory), and the packet must be dropped.
fn write_rx_chain(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    packet: &[u8],
) -> Option<u32> {
    let mut writer = chain.writer(mem).ok()?;
    if writer.available_bytes() < packet.len() {
        return None;
    }
    io::Write::write_all(&mut writer, packet).ok()?;
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
                None => match self.read_packet() {
                    Ok(0) => return Ok(()),
                    Ok(len) if !(HEADER_SIZE..=PACKET_MAX).contains(&len) => {
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
            let used = match write_rx_chain(chain, &memory, &self.rx_packet[..len]) {
                Some(n) => {
                    self.counters.rx_frames += 1;
                    Counters::count(
                        &mut self.counters.rx_checksum_left,
                        &mut self.counters.rx_segmented,
                        &self.rx_packet,
                    );
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

    /// Reads one packet from the tap. The tap writes the header's first 10
    /// bytes and leaves `num_buffers` as it was: one buffer it is, for a
    /// driver without mergeable receive buffers.
    fn read_packet(&mut self) -> io::Result<usize> {
        self.rx_packet[10..12].copy_from_slice(&1u16.to_le_bytes());
        self.tap.read_frame(&mut self.rx_packet)
    }

    /// Sends every frame the driver queued.
    fn transmit(&mut self) -> Result<(), virtio_queue::Error> {
        let memory = self.memory.clone();
        loop {
            self.tx.queue.disable_notification(&memory)?;
            while let Some(chain) = super::next_chain(&mut self.tx.queue, &memory)? {
                let head = chain.head_index();
                match read_tx_chain(chain, &memory, &mut self.tx_packet) {
                    Some(len) => match self.tap.write_frame(&self.tx_packet[..len]) {
                        Ok(_) => {
                            self.counters.tx_frames += 1;
                            Counters::count(
                                &mut self.counters.tx_checksum_left,
                                &mut self.counters.tx_segmented,
                                &self.tx_packet,
                            );
                        }
                        // Dropped, as a NIC drops what its wire refuses;
                        // TCP resends.
                        Err(_) => self.counters.tx_refused += 1,
                    },
                    None => self.counters.tx_malformed += 1,
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
            "{}: {} frames received ({} with the checksum left to the guest, {} segmentation offloads), {} sent ({} with the checksum left to the host, {} segmentation offloads); dropped: {} too big for the guest's buffer, {} malformed, {} refused by tap {}",
            self.name,
            c.rx_frames,
            c.rx_checksum_left,
            c.rx_segmented,
            c.tx_frames,
            c.tx_checksum_left,
            c.tx_segmented,
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

    /// A chain of (address, length, flags) descriptors on a fresh ring.
    fn chain_of<'a>(
        queue: &'a MockSplitQueue<'a, GuestMemoryMmap>,
        descs: &[(u64, u32, u16)],
    ) -> DescriptorChain<&'a GuestMemoryMmap> {
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .map(|&(a, l, f)| RawDescriptor::from(SplitDescriptor::new(a, l, f, 0)))
            .collect();
        queue.build_desc_chain(&raw).unwrap()
    }

    #[test]
    fn a_transmit_chain_gives_its_packet_header_and_all() {
        let mem = memory();
        // The header in one descriptor, the frame split over two.
        mem.write_slice(&[0xee; HEADER_SIZE], GuestAddress(0x10_0000))
            .unwrap();
        mem.write_slice(b"destination", GuestAddress(0x20_0000))
            .unwrap();
        mem.write_slice(b"+payload", GuestAddress(0x30_0000))
            .unwrap();
        let ring = MockSplitQueue::new(&mem, 16);
        let chain = chain_of(
            &ring,
            &[
                (0x10_0000, HEADER_SIZE as u32, 0),
                (0x20_0000, 11, 0),
                (0x30_0000, 8, 0),
            ],
        );
        let mut buf = vec![0; 64];
        assert_eq!(read_tx_chain(chain, &mem, &mut buf), Some(HEADER_SIZE + 19));
        assert_eq!(buf[..HEADER_SIZE], [0xee; HEADER_SIZE]);
        assert_eq!(&buf[HEADER_SIZE..HEADER_SIZE + 19], b"destination+payload");
    }

    #[test]
    fn transmit_chains_without_a_header_or_too_long_are_dropped() {
        let mem = memory();
        let ring_short = MockSplitQueue::new(&mem, 16);
        let short = chain_of(&ring_short, &[(0x10_0000, 11, 0)]);
        assert_eq!(read_tx_chain(short, &mem, &mut [0; 64]), None);
        let ring_long = MockSplitQueue::new(&mem, 16);
        let long = chain_of(&ring_long, &[(0x10_0000, 65, 0)]);
        assert_eq!(read_tx_chain(long, &mem, &mut [0; 64]), None);
        // Straddling the end of guest memory.
        let ring_outside = MockSplitQueue::new(&mem, 16);
        let outside = chain_of(&ring_outside, &[(0x3f_fff0, 64, 0)]);
        assert_eq!(read_tx_chain(outside, &mem, &mut [0; 64]), None);
    }

    #[test]
    fn a_received_packet_lands_whole_across_the_buffers() {
        let mem = memory();
        mem.write_slice(&[0xee; 64], GuestAddress(0x20_0000))
            .unwrap();
        let ring_chain = MockSplitQueue::new(&mem, 16);
        let chain = chain_of(
            &ring_chain,
            &[(0x20_0000, 8, WRITE), (0x20_0010, 48, WRITE)],
        );
        let mut packet = [0u8; HEADER_SIZE + 17];
        packet[10] = 1;
        packet[HEADER_SIZE..].copy_from_slice(b"an ethernet frame");
        assert_eq!(write_rx_chain(chain, &mem, &packet), Some(29));
        let mut got = [0u8; 29];
        mem.read_slice(&mut got[..8], GuestAddress(0x20_0000))
            .unwrap();
        mem.read_slice(&mut got[8..], GuestAddress(0x20_0010))
            .unwrap();
        assert_eq!(got, packet);
    }

    #[test]
    fn a_packet_bigger_than_the_buffer_is_dropped_untouched() {
        let mem = memory();
        mem.write_slice(&[0xee; 32], GuestAddress(0x20_0000))
            .unwrap();
        let ring_chain = MockSplitQueue::new(&mem, 16);
        let chain = chain_of(&ring_chain, &[(0x20_0000, 20, WRITE)]);
        assert_eq!(write_rx_chain(chain, &mem, &[1; 21]), None);
        let mut after = [0u8; 32];
        mem.read_slice(&mut after, GuestAddress(0x20_0000)).unwrap();
        assert_eq!(after, [0xee; 32], "nothing half-written");
        // A readable-only chain has no room at all.
        let ring_chain = MockSplitQueue::new(&mem, 16);
        let chain = chain_of(&ring_chain, &[(0x20_0000, 64, 0)]);
        assert_eq!(write_rx_chain(chain, &mem, &[1; 21]), None);
    }

    #[test]
    fn the_tap_hands_over_only_what_the_driver_takes() {
        let f = |bits: &[u32]| tap_offloads(bits.iter().map(|b| 1u64 << b).sum());
        assert_eq!(f(&[]), 0);
        assert_eq!(
            f(&[VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4]),
            0,
            "transmit offloads say nothing of receive"
        );
        assert_eq!(f(&[VIRTIO_NET_F_GUEST_CSUM]), tap::TUN_F_CSUM);
        assert_eq!(
            f(&[
                VIRTIO_NET_F_GUEST_CSUM,
                VIRTIO_NET_F_GUEST_TSO4,
                VIRTIO_NET_F_GUEST_TSO6
            ]),
            tap::TUN_F_CSUM | tap::TUN_F_TSO4 | tap::TUN_F_TSO6
        );
        assert_eq!(
            f(&[VIRTIO_NET_F_GUEST_TSO4]),
            0,
            "no TSO without the checksum"
        );
    }

    #[test]
    fn headers_say_what_is_left_to_the_receiver() {
        let mut h = [0u8; HEADER_SIZE];
        assert_eq!(offloads_in(&h), (false, false));
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM as u8;
        h[1] = virtio_bindings::virtio_net::VIRTIO_NET_HDR_GSO_TCPV4 as u8;
        assert_eq!(offloads_in(&h), (true, true));
    }
}
