//! Virtio 1.x devices on the PCI transport.
//!
//! - [`pci`]: the transport: a PCI function whose BAR holds the common,
//!   notify, ISR and device-specific configuration structures and the
//!   MSI-X table, and which starts and stops its device with the driver's
//!   status writes.
//! - [`block`]: virtio-blk on a raw image file.
//! - [`net`]: virtio-net on a host tap.
//! - [`worker`]: the thread each active device runs on, an event loop
//!   (rust-vmm's `event-manager`) on the queues' notification eventfds.
//!
//! The rings themselves are rust-vmm's `virtio-queue`; nothing here parses
//! a descriptor.
//!
//! A queue notification never reaches a vCPU thread: the notify area's
//! writes are KVM ioeventfds, which the device's worker waits on, and the
//! worker's interrupts are KVM irqfds. The vCPU threads only see the
//! configuration accesses of the driver's setup and teardown.

pub mod block;
pub mod net;
pub mod pci;
pub mod worker;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use virtio_bindings::{virtio_config, virtio_ring};
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::devices::pci::msix::MsixInterrupts;

/// Feature: the device conforms to virtio 1.x (the modern interface).
pub const F_VERSION_1: u64 = 1 << virtio_config::VIRTIO_F_VERSION_1;
/// Feature: descriptors may point at tables of descriptors.
pub const F_INDIRECT_DESC: u64 = 1 << virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;
/// Feature: the used and available event indices suppress notifications
/// and interrupts.
pub const F_EVENT_IDX: u64 = 1 << virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// The device status bits the driver writes ([virtio 1.2, 2.1]).
pub mod status {
    /// The guest found the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready: the device may run.
    pub const DRIVER_OK: u8 = 4;
    /// The driver accepted the features it wrote.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 0x80;
}

/// "No MSI-X vector" in the vector registers.
pub const NO_VECTOR: u16 = 0xffff;

/// The ISR status bit of a used-buffer interrupt.
const ISR_QUEUE: u8 = 1;
/// The ISR status bit of a configuration-change interrupt.
const ISR_CONFIG: u8 = 2;

/// The interrupts of one device, as its worker raises them.
#[derive(Debug)]
pub struct DeviceInterrupts {
    msix: Arc<MsixInterrupts>,
    isr: Arc<AtomicU8>,
    config_vector: u16,
    needs_reset: Arc<AtomicBool>,
}

impl DeviceInterrupts {
    /// Signals that the queue whose vector is `vector` has used buffers.
    pub fn queue(&self, vector: u16) {
        self.isr.fetch_or(ISR_QUEUE, Ordering::AcqRel);
        if vector != NO_VECTOR {
            self.msix.raise(vector);
        }
    }

    /// Signals a configuration change.
    pub fn config(&self) {
        self.isr.fetch_or(ISR_CONFIG, Ordering::AcqRel);
        if self.config_vector != NO_VECTOR {
            self.msix.raise(self.config_vector);
        }
    }

    /// Sets DEVICE_NEEDS_RESET in the device status and tells the driver,
    /// as the spec asks of a device that can no longer serve its queues
    /// ([virtio 1.2, 2.1.2]).
    pub fn needs_reset(&self) {
        self.needs_reset.store(true, Ordering::Release);
        self.config();
    }
}

/// Takes the next chain the driver made available. Unlike
/// `pop_descriptor_chain`, which logs a broken available ring and says
/// "none", this returns the error: a driver that moved its index further
/// than the queue's size would otherwise have a serving loop spin, as the
/// moved index says there is more to take.
pub fn next_chain<'a>(
    queue: &mut Queue,
    memory: &'a GuestMemoryMmap,
) -> Result<Option<DescriptorChain<&'a GuestMemoryMmap>>, virtio_queue::Error> {
    Ok(queue.iter(memory)?.next())
}

/// A queue the driver made ready, handed to the device at activation.
#[derive(Debug)]
pub struct ActiveQueue {
    /// The ring, with the addresses and size the driver set.
    pub queue: Queue,
    /// The eventfd the queue's notifications arrive on.
    pub notify: EventFd,
    /// The MSI-X vector of the queue's used-buffer interrupts.
    pub vector: u16,
}

/// What a device gets when the driver sets DRIVER_OK.
#[derive(Debug)]
pub struct Activation {
    /// Guest memory, where the rings and buffers are.
    pub memory: GuestMemoryMmap,
    /// The features both sides agreed on.
    pub features: u64,
    /// The queues, in order.
    pub queues: Vec<ActiveQueue>,
    /// The device's interrupts.
    pub interrupts: DeviceInterrupts,
}

/// Errors starting a device.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver enabled fewer queues than the device needs.
    #[error("the driver enabled {enabled} of the {needed} queues the device needs")]
    MissingQueues {
        /// Queues enabled.
        enabled: usize,
        /// Queues needed.
        needed: usize,
    },
    /// The worker thread could not start.
    #[error("cannot start the device's worker")]
    Worker(#[source] std::io::Error),
}

/// A virtio device, independent of its transport.
pub trait VirtioDevice: Send {
    /// The virtio device ID (2 = block, 1 = network).
    fn device_type(&self) -> u16;
    /// A short name for logs and thread names ("blk0").
    fn name(&self) -> &str;
    /// The largest size of each queue.
    fn queue_max_sizes(&self) -> &[u16];
    /// The feature bits the device offers.
    fn features(&self) -> u64;
    /// A driver read of the device-specific configuration.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Starts the device on the driver's queues, on its own worker thread.
    fn activate(&mut self, activation: Activation) -> Result<worker::Worker, ActivateError>;
}

/// Reads `data.len()` bytes at `offset` of `bytes`, zero past its end: how
/// every read-only configuration structure answers.
pub fn read_bytes(bytes: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| bytes.get(o + i))
            .copied()
            .unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::QueueT;
    use vm_memory::GuestAddress;

    #[test]
    fn an_available_index_moved_past_the_queue_size_is_an_error() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let mock = MockSplitQueue::new(&mem, 16);
        mock.add_desc_chains(
            &[RawDescriptor::from(SplitDescriptor::new(0x8000, 64, 0, 0))],
            0,
        )
        .unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        let chain = next_chain(&mut queue, &mem)
            .unwrap()
            .expect("the chain made");
        assert_eq!(chain.head_index(), 0);
        assert!(
            next_chain(&mut queue, &mem).unwrap().is_none(),
            "nothing more"
        );
        // A driver claiming 17 new chains on a 16-entry ring.
        mock.avail().idx().store(1 + 17);
        assert!(next_chain(&mut queue, &mem).is_err());
        // pop_descriptor_chain says "none" here, while the index says
        // there is more: a loop on both would never end.
        assert!(queue.pop_descriptor_chain(&mem).is_none());
        assert!(queue.enable_notification(&mem).unwrap());
    }
}
