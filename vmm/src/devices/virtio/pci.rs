//! The virtio 1.x PCI transport ([virtio 1.2, 4.1]): a PCI function whose
//! 32-bit memory BAR 0 holds, at fixed offsets,
//!
//! | offset   | structure                                        |
//! |----------|--------------------------------------------------|
//! | 0x0000   | common configuration (features, status, queues)  |
//! | 0x1000   | ISR status                                       |
//! | 0x2000   | device-specific configuration                    |
//! | 0x3000   | queue notifications, 4 bytes per queue            |
//! | 0x4000   | MSI-X table                                      |
//! | 0x5000   | MSI-X pending-bit array                          |
//!
//! each announced by a vendor capability (and MSI-X by its own) in
//! configuration space. The function has no INTx pin: its interrupts are
//! MSI-X only, which every kernel of the test matrix takes (Debian's and
//! ours have `PCI_MSI=y`).
//!
//! The driver's status writes drive the device's life: FEATURES_OK checks
//! the features it accepted, DRIVER_OK hands the queues to the device's
//! worker thread ([`super::worker`]), and a write of 0 (reset) stops the
//! worker and forgets the queues.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::worker::Worker;
use super::{status, Activation, ActiveQueue, DeviceInterrupts, VirtioDevice, NO_VECTOR};
use crate::devices::pci::config_space::{ConfigSpace, ConfigSpaceError, PciIds};
use crate::devices::pci::msix::{self, MsiSink, MsixInterrupts, MsixTable};
use crate::devices::pci::PciFunction;

/// Red Hat's virtio vendor ID.
pub const VIRTIO_VENDOR: u16 = 0x1af4;
/// Modern virtio device IDs are 0x1040 plus the virtio device type.
const MODERN_DEVICE_BASE: u16 = 0x1040;

/// The size of BAR 0.
pub const BAR_SIZE: u64 = 0x8000;
const COMMON_OFFSET: u64 = 0x0000;
const COMMON_SIZE: u64 = 0x38;
const ISR_OFFSET: u64 = 0x1000;
const DEVICE_OFFSET: u64 = 0x2000;
const DEVICE_SIZE: u64 = 0x1000;
const NOTIFY_OFFSET: u64 = 0x3000;
/// Bytes between two queues' notification addresses.
const NOTIFY_MULTIPLIER: u32 = 4;
const MSIX_TABLE_OFFSET: u64 = 0x4000;
const MSIX_PBA_OFFSET: u64 = 0x5000;
/// Room for the MSI-X table: 256 vectors.
const MSIX_TABLE_ROOM: u64 = MSIX_PBA_OFFSET - MSIX_TABLE_OFFSET;

/// The vendor capability ID, which virtio's structures use.
const CAP_VENDOR: u8 = 0x09;
/// `cfg_type` of the virtio PCI capabilities.
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

/// Where the driver's setup hands a notification area to KVM: an eventfd
/// written on each guest write at an address, without a VM exit.
pub trait NotifyRegistrar: Send + Sync {
    /// Signals `event` on every guest write at `address`.
    fn register(&self, event: &EventFd, address: u64) -> std::io::Result<()>;
    /// Undoes [`Self::register`].
    fn unregister(&self, event: &EventFd, address: u64) -> std::io::Result<()>;
}

/// Errors building a virtio-pci function.
#[derive(Debug, thiserror::Error)]
pub enum VirtioPciError {
    /// The configuration space could not hold the BAR or the capabilities.
    #[error(transparent)]
    ConfigSpace(#[from] ConfigSpaceError),
    /// More queues than the MSI-X table's room.
    #[error("{0} queues: more than the transport's MSI-X table holds")]
    TooManyQueues(usize),
    /// An eventfd could not be created.
    #[error("cannot create an eventfd")]
    EventFd(#[source] std::io::Error),
}

/// A queue's registers, as the driver programs them.
#[derive(Clone, Copy, Debug)]
struct QueueRegisters {
    max_size: u16,
    size: u16,
    vector: u16,
    enabled: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

impl QueueRegisters {
    fn new(max_size: u16) -> Self {
        QueueRegisters {
            max_size,
            size: max_size,
            vector: NO_VECTOR,
            enabled: false,
            desc: 0,
            driver: 0,
            device: 0,
        }
    }
}

/// The number of MSI-X vectors a device with `queues` queues gets: one per
/// queue and one for configuration changes.
pub fn vectors_for(queues: usize) -> u16 {
    queues as u16 + 1
}

/// The state behind the function's lock.
struct Transport {
    config: ConfigSpace,
    msix_capability: u8,
    device: Box<dyn VirtioDevice>,
    memory: GuestMemoryMmap,
    notify_registrar: Box<dyn NotifyRegistrar>,
    /// One eventfd per queue, kept across resets.
    notify: Vec<EventFd>,
    /// The BAR address the notify eventfds are registered at.
    registered_at: Option<u64>,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    queue_select: u16,
    config_vector: u16,
    queues: Vec<QueueRegisters>,
    worker: Option<Worker>,
}

/// A virtio device on the PCI transport.
pub struct VirtioPciFunction {
    transport: Mutex<Transport>,
    msix: Arc<MsixInterrupts>,
    isr: Arc<AtomicU8>,
    /// Set by a worker whose driver broke a ring, until the next reset.
    needs_reset: Arc<AtomicBool>,
    name: String,
}

impl std::fmt::Debug for VirtioPciFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioPciFunction")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A virtio capability's body after its ID and next pointer.
fn virtio_cap(cfg_type: u8, offset: u64, length: u64, extra: &[u8]) -> Vec<u8> {
    let mut body = vec![(16 + extra.len()) as u8, cfg_type, 0, 0, 0, 0];
    body.extend_from_slice(&(offset as u32).to_le_bytes());
    body.extend_from_slice(&(length as u32).to_le_bytes());
    body.extend_from_slice(extra);
    body
}

impl VirtioPciFunction {
    /// `device` on the PCI transport, its BAR 0 at `bar_address` (assigned
    /// as firmware would, inside the root's 32-bit window), with its
    /// interrupts delivered through `msi` and its notifications through
    /// `notify_registrar`.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        class: u32,
        bar_address: u64,
        memory: GuestMemoryMmap,
        msi: Box<dyn MsiSink>,
        notify_registrar: Box<dyn NotifyRegistrar>,
    ) -> Result<Self, VirtioPciError> {
        let queue_count = device.queue_max_sizes().len();
        let vectors = vectors_for(queue_count);
        if u64::from(vectors) * msix::ENTRY_SIZE > MSIX_TABLE_ROOM {
            return Err(VirtioPciError::TooManyQueues(queue_count));
        }
        let mut config = ConfigSpace::new(PciIds {
            vendor: VIRTIO_VENDOR,
            device: MODERN_DEVICE_BASE + device.device_type(),
            class,
            revision: 1,
            subsystem_vendor: VIRTIO_VENDOR,
            subsystem: 0x40,
        });
        config.set_bar(0, bar_address, BAR_SIZE)?;
        let table = MsixTable::new(vectors);
        let msix_capability = config.add_capability(
            msix::CAPABILITY_ID,
            &table.capability_body(0, MSIX_TABLE_OFFSET as u32, MSIX_PBA_OFFSET as u32),
            &MsixTable::CAPABILITY_WRITABLE,
        )?;
        let notify_room = u64::from(NOTIFY_MULTIPLIER) * queue_count as u64;
        for body in [
            virtio_cap(CFG_COMMON, COMMON_OFFSET, COMMON_SIZE, &[]),
            virtio_cap(CFG_ISR, ISR_OFFSET, 1, &[]),
            virtio_cap(CFG_DEVICE, DEVICE_OFFSET, DEVICE_SIZE, &[]),
            virtio_cap(
                CFG_NOTIFY,
                NOTIFY_OFFSET,
                notify_room,
                &NOTIFY_MULTIPLIER.to_le_bytes(),
            ),
        ] {
            config.add_capability(CAP_VENDOR, &body, &[])?;
        }
        let notify = (0..queue_count)
            .map(|_| EventFd::new(EFD_NONBLOCK))
            .collect::<Result<Vec<_>, _>>()
            .map_err(VirtioPciError::EventFd)?;
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&m| QueueRegisters::new(m))
            .collect();
        let name = device.name().to_string();
        Ok(VirtioPciFunction {
            transport: Mutex::new(Transport {
                config,
                msix_capability,
                device,
                memory,
                notify_registrar,
                notify,
                registered_at: None,
                device_feature_select: 0,
                driver_feature_select: 0,
                driver_features: 0,
                status: 0,
                queue_select: 0,
                config_vector: NO_VECTOR,
                queues,
                worker: None,
            }),
            msix: Arc::new(MsixInterrupts::new(table, msi)),
            isr: Arc::new(AtomicU8::new(0)),
            needs_reset: Arc::new(AtomicBool::new(false)),
            name,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Transport> {
        self.transport.lock().expect("virtio-pci lock poisoned")
    }

    /// Stops the device's worker, if it runs: at the VM's end, so that no
    /// request is cut in half and the device flushes what it wrote.
    pub fn shut_down(&self) {
        if let Some(worker) = self.lock().worker.take() {
            worker.stop();
        }
    }

    fn bar_offset(&self, t: &Transport, address: u64) -> Option<u64> {
        if !t.config.memory_enabled() {
            return None;
        }
        let (base, size) = t.config.bar(0)?;
        (base..base + size)
            .contains(&address)
            .then(|| address - base)
    }

    fn read_common(&self, t: &Transport, offset: u64, data: &mut [u8]) {
        let q = t.queues.get(usize::from(t.queue_select));
        let features = t.device.features();
        let mut bytes = [0u8; COMMON_SIZE as usize];
        let mut put = |at: usize, v: &[u8]| bytes[at..at + v.len()].copy_from_slice(v);
        put(0x00, &t.device_feature_select.to_le_bytes());
        let device_features = match t.device_feature_select {
            0 => features as u32,
            1 => (features >> 32) as u32,
            _ => 0,
        };
        put(0x04, &device_features.to_le_bytes());
        put(0x08, &t.driver_feature_select.to_le_bytes());
        let driver_features = match t.driver_feature_select {
            0 => t.driver_features as u32,
            1 => (t.driver_features >> 32) as u32,
            _ => 0,
        };
        put(0x0c, &driver_features.to_le_bytes());
        put(0x10, &t.config_vector.to_le_bytes());
        put(0x12, &(t.queues.len() as u16).to_le_bytes());
        let needs_reset = if self.needs_reset.load(Ordering::Acquire) {
            status::DEVICE_NEEDS_RESET
        } else {
            0
        };
        put(0x14, &[t.status | needs_reset]);
        put(0x15, &[0]); // config_generation: the configuration never changes
        put(0x16, &t.queue_select.to_le_bytes());
        if let Some(q) = q {
            put(0x18, &q.size.to_le_bytes());
            put(0x1a, &q.vector.to_le_bytes());
            put(0x1c, &u16::from(q.enabled).to_le_bytes());
            put(0x1e, &t.queue_select.to_le_bytes()); // notify offset = index
            put(0x20, &q.desc.to_le_bytes());
            put(0x28, &q.driver.to_le_bytes());
            put(0x30, &q.device.to_le_bytes());
        }
        super::read_bytes(&bytes, offset, data);
    }

    fn write_common(&self, t: &mut Transport, offset: u64, data: &[u8]) {
        let mut raw = [0u8; 8];
        let n = data.len().min(8);
        raw[..n].copy_from_slice(&data[..n]);
        let value = u64::from_le_bytes(raw);
        let running = t.status & status::DRIVER_OK != 0;
        let select = usize::from(t.queue_select);
        match (offset, data.len()) {
            (0x00, 4) => t.device_feature_select = value as u32,
            (0x08, 4) => t.driver_feature_select = value as u32,
            (0x0c, 4) if t.status & status::FEATURES_OK == 0 => {
                let shift = match t.driver_feature_select {
                    0 => 0,
                    1 => 32,
                    _ => return,
                };
                t.driver_features =
                    (t.driver_features & !(0xffff_ffffu64 << shift)) | (value << shift);
            }
            (0x10, 2) => {
                let v = value as u16;
                t.config_vector = if self.msix.has(v) { v } else { NO_VECTOR };
            }
            (0x14, 1) => self.write_status(t, value as u8),
            (0x16, 2) => t.queue_select = value as u16,
            (0x18, 2) | (0x1a, 2) | (0x1c, 2) | (0x20..=0x37, 4) | (0x20 | 0x28 | 0x30, 8)
                if !running =>
            {
                let vector_ok = self.msix.has(value as u16);
                let Some(q) = t.queues.get_mut(select) else {
                    return;
                };
                match offset {
                    0x18 => q.size = value as u16,
                    0x1a => q.vector = if vector_ok { value as u16 } else { NO_VECTOR },
                    0x1c => q.enabled |= value & 1 != 0,
                    _ => {
                        let field = match offset & !7 {
                            0x20 => &mut q.desc,
                            0x28 => &mut q.driver,
                            _ => &mut q.device,
                        };
                        if data.len() == 8 {
                            *field = value;
                        } else if offset.is_multiple_of(8) {
                            *field = (*field & !0xffff_ffff) | value;
                        } else {
                            *field = (*field & 0xffff_ffff) | (value << 32);
                        }
                    }
                }
            }
            _ => log::debug!(
                "{}: ignored common-config write of {} bytes at 0x{offset:x}",
                self.name,
                data.len()
            ),
        }
    }

    fn write_status(&self, t: &mut Transport, value: u8) {
        if value == 0 {
            self.reset(t);
            return;
        }
        let newly = value & !t.status;
        let mut value = value | (t.status & status::DEVICE_NEEDS_RESET);
        if newly & status::FEATURES_OK != 0 {
            let offered = t.device.features();
            let accepted =
                t.driver_features & !offered == 0 && t.driver_features & super::F_VERSION_1 != 0;
            if !accepted {
                log::warn!(
                    "{}: the driver accepted features 0x{:x} of the offered 0x{offered:x}; refusing FEATURES_OK",
                    self.name,
                    t.driver_features
                );
                value &= !status::FEATURES_OK;
            }
        }
        t.status = value;
        if newly & status::DRIVER_OK != 0 && value & status::FEATURES_OK != 0 {
            if let Err(e) = self.activate(t) {
                log::error!("{}: cannot start the device: {e}", self.name);
                t.status |= status::DEVICE_NEEDS_RESET;
                self.interrupts(t).config();
            }
        }
    }

    fn interrupts(&self, t: &Transport) -> DeviceInterrupts {
        DeviceInterrupts {
            msix: Arc::clone(&self.msix),
            isr: Arc::clone(&self.isr),
            config_vector: t.config_vector,
            needs_reset: Arc::clone(&self.needs_reset),
        }
    }

    fn activate(&self, t: &mut Transport) -> Result<(), String> {
        let needed = t.queues.len();
        let enabled = t.queues.iter().filter(|q| q.enabled).count();
        if enabled < needed {
            return Err(super::ActivateError::MissingQueues { enabled, needed }.to_string());
        }
        let event_idx = t.driver_features & super::F_EVENT_IDX != 0;
        let mut queues = Vec::with_capacity(needed);
        for (i, (r, notify)) in t.queues.iter().zip(&t.notify).enumerate() {
            let mut queue = Queue::new(r.max_size).map_err(|e| format!("queue {i}: {e}"))?;
            queue
                .try_set_size(r.size)
                .map_err(|e| format!("queue {i}: size {}: {e}", r.size))?;
            queue
                .try_set_desc_table_address(GuestAddress(r.desc))
                .and_then(|()| queue.try_set_avail_ring_address(GuestAddress(r.driver)))
                .and_then(|()| queue.try_set_used_ring_address(GuestAddress(r.device)))
                .map_err(|e| format!("queue {i}: {e}"))?;
            queue.set_event_idx(event_idx);
            queue.set_ready(true);
            if !queue.is_valid(&t.memory) {
                return Err(format!(
                    "queue {i}: its rings (0x{:x}, 0x{:x}, 0x{:x}, size {}) are not in guest memory",
                    r.desc, r.driver, r.device, r.size
                ));
            }
            queues.push(ActiveQueue {
                queue,
                notify: notify.try_clone().map_err(|e| format!("queue {i}: {e}"))?,
                vector: r.vector,
            });
        }
        let activation = Activation {
            memory: t.memory.clone(),
            features: t.driver_features,
            queues,
            interrupts: self.interrupts(t),
        };
        let worker = t.device.activate(activation).map_err(|e| e.to_string())?;
        t.worker = Some(worker);
        log::debug!("{}: started", self.name);
        Ok(())
    }

    fn reset(&self, t: &mut Transport) {
        if let Some(worker) = t.worker.take() {
            worker.stop();
        }
        t.device_feature_select = 0;
        t.driver_feature_select = 0;
        t.driver_features = 0;
        t.status = 0;
        t.queue_select = 0;
        t.config_vector = NO_VECTOR;
        for q in &mut t.queues {
            *q = QueueRegisters::new(q.max_size);
        }
        self.isr.store(0, Ordering::Release);
        self.needs_reset.store(false, Ordering::Release);
    }

    /// Puts the notify eventfds where the BAR now decodes, or takes them
    /// away while it does not.
    fn update_notify_registration(&self, t: &mut Transport) {
        let wanted = t
            .config
            .memory_enabled()
            .then(|| t.config.bar(0).map(|(base, _)| base))
            .flatten();
        if wanted == t.registered_at {
            return;
        }
        if let Some(base) = t.registered_at.take() {
            for (i, e) in t.notify.iter().enumerate() {
                if let Err(err) = t.notify_registrar.unregister(e, notify_address(base, i)) {
                    log::warn!(
                        "{}: queue {i}: cannot remove its ioeventfd: {err}",
                        self.name
                    );
                }
            }
        }
        if let Some(base) = wanted {
            for (i, e) in t.notify.iter().enumerate() {
                // Without the ioeventfd the write still arrives, as an MMIO
                // exit that signals the same eventfd.
                if let Err(err) = t.notify_registrar.register(e, notify_address(base, i)) {
                    log::warn!(
                        "{}: queue {i}: no ioeventfd ({err}); notifications take a VM exit",
                        self.name
                    );
                }
            }
            t.registered_at = Some(base);
        }
    }
}

fn notify_address(base: u64, queue: usize) -> u64 {
    base + NOTIFY_OFFSET + u64::from(NOTIFY_MULTIPLIER) * queue as u64
}

impl PciFunction for VirtioPciFunction {
    fn read_config(&self, register: u8) -> u32 {
        self.lock().config.read_dword(register)
    }

    fn write_config(&self, register: u8, offset: u8, data: &[u8]) {
        let mut t = self.lock();
        t.config.write(register, offset, data);
        let cap = t.msix_capability;
        if register & !3 == cap & !3 && usize::from(offset) + data.len() > 2 {
            // Message Control is the upper half of the capability's first
            // dword.
            let control = (t.config.read_dword(cap) >> 16) as u16;
            self.msix.set_control(control);
        }
        self.update_notify_registration(&mut t);
    }

    fn mmio_read(&self, address: u64, data: &mut [u8]) -> bool {
        let t = self.lock();
        let Some(offset) = self.bar_offset(&t, address) else {
            return false;
        };
        match offset {
            COMMON_OFFSET..0x1000 => self.read_common(&t, offset - COMMON_OFFSET, data),
            ISR_OFFSET => {
                // Reading the ISR clears it.
                data.fill(0);
                data[0] = self.isr.swap(0, Ordering::AcqRel);
            }
            DEVICE_OFFSET..NOTIFY_OFFSET => t.device.read_config(offset - DEVICE_OFFSET, data),
            MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET => {
                self.msix.read_table(offset - MSIX_TABLE_OFFSET, data)
            }
            MSIX_PBA_OFFSET..BAR_SIZE => self.msix.read_pba(offset - MSIX_PBA_OFFSET, data),
            _ => data.fill(0),
        }
        true
    }

    fn mmio_write(&self, address: u64, data: &[u8]) -> bool {
        let mut t = self.lock();
        let Some(offset) = self.bar_offset(&t, address) else {
            return false;
        };
        match offset {
            COMMON_OFFSET..0x1000 => self.write_common(&mut t, offset - COMMON_OFFSET, data),
            NOTIFY_OFFSET..MSIX_TABLE_OFFSET => {
                let queue = ((offset - NOTIFY_OFFSET) / u64::from(NOTIFY_MULTIPLIER)) as usize;
                if let Some(e) = t.notify.get(queue) {
                    let _ = e.write(1);
                }
            }
            MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET => {
                self.msix.write_table(offset - MSIX_TABLE_OFFSET, data)
            }
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pci::msix::MsiMessage;
    use event_manager::{EventOps, Events, MutEventSubscriber};
    use std::sync::atomic::AtomicUsize;

    const BAR: u64 = 0xc000_0000;

    #[derive(Default)]
    struct Record {
        registered: Mutex<Vec<(u64, bool)>>,
        fired: Mutex<Vec<u16>>,
        activations: AtomicUsize,
        last_features: Mutex<u64>,
    }

    struct Sink(Arc<Record>);
    impl MsiSink for Sink {
        fn route(&self, _: u16, _: MsiMessage) -> std::io::Result<()> {
            Ok(())
        }
        fn fire(&self, v: u16) -> std::io::Result<()> {
            self.0.fired.lock().unwrap().push(v);
            Ok(())
        }
    }

    struct Registrar(Arc<Record>);
    impl NotifyRegistrar for Registrar {
        fn register(&self, _: &EventFd, a: u64) -> std::io::Result<()> {
            self.0.registered.lock().unwrap().push((a, true));
            Ok(())
        }
        fn unregister(&self, _: &EventFd, a: u64) -> std::io::Result<()> {
            self.0.registered.lock().unwrap().push((a, false));
            Ok(())
        }
    }

    struct Idle;
    impl MutEventSubscriber for Idle {
        fn process(&mut self, _: Events, _: &mut EventOps) {}
        fn init(&mut self, _: &mut EventOps) {}
    }

    struct FakeDevice(Arc<Record>);
    impl VirtioDevice for FakeDevice {
        fn device_type(&self) -> u16 {
            2
        }
        fn name(&self) -> &str {
            "fake"
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn features(&self) -> u64 {
            super::super::F_VERSION_1 | 1 << 9
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            super::super::read_bytes(&[1, 2, 3, 4], offset, data);
        }
        fn activate(&mut self, a: Activation) -> Result<Worker, super::super::ActivateError> {
            self.0.activations.fetch_add(1, Ordering::SeqCst);
            *self.0.last_features.lock().unwrap() = a.features;
            a.interrupts.queue(a.queues[0].vector);
            Worker::spawn("fake".into(), Idle).map_err(super::super::ActivateError::Worker)
        }
    }

    fn function() -> (VirtioPciFunction, Arc<Record>) {
        let record = Arc::new(Record::default());
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let f = VirtioPciFunction::new(
            Box::new(FakeDevice(Arc::clone(&record))),
            0x01_80_00,
            BAR,
            mem,
            Box::new(Sink(Arc::clone(&record))),
            Box::new(Registrar(Arc::clone(&record))),
        )
        .unwrap();
        (f, record)
    }

    fn w(f: &VirtioPciFunction, offset: u64, data: &[u8]) {
        assert!(f.mmio_write(BAR + offset, data));
    }

    fn r(f: &VirtioPciFunction, offset: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        assert!(f.mmio_read(BAR + offset, &mut b[..len]));
        u64::from_le_bytes(b)
    }

    /// The (cfg_type, offset, length) of every virtio capability, walking
    /// the list as a driver does.
    fn virtio_caps(f: &VirtioPciFunction) -> Vec<(u8, u32, u32)> {
        let byte = |at: u8| (f.read_config(at & !3) >> ((at % 4) * 8)) as u8;
        let dword = |at: u8| f.read_config(at);
        let mut caps = Vec::new();
        let mut at = byte(0x34);
        while at != 0 {
            if byte(at) == CAP_VENDOR {
                caps.push((byte(at + 3), dword(at + 8), dword(at + 12)));
            }
            at = byte(at + 1);
        }
        caps
    }

    #[test]
    fn the_function_announces_the_modern_transport() {
        let (f, _) = function();
        assert_eq!(f.read_config(0), 0x1042_1af4, "virtio-blk, modern");
        assert_eq!(f.read_config(8) >> 8, 0x01_80_00);
        assert_eq!(
            virtio_caps(&f),
            vec![
                (CFG_COMMON, 0, COMMON_SIZE as u32),
                (CFG_ISR, 0x1000, 1),
                (CFG_DEVICE, 0x2000, DEVICE_SIZE as u32),
                (CFG_NOTIFY, 0x3000, 4),
            ]
        );
        // Nothing decodes until the driver enables memory space.
        let mut b = [0u8; 4];
        assert!(!f.mmio_read(BAR, &mut b));
    }

    #[test]
    fn a_driver_brings_the_device_up_and_resets_it() {
        let (f, rec) = function();
        f.write_config(4, 0, &[0x06, 0]); // memory space, bus master
        assert_eq!(*rec.registered.lock().unwrap(), vec![(BAR + 0x3000, true)]);
        assert_eq!(r(&f, 0x2000, 4), 0x0403_0201, "device config");
        // Features: bit 9 and VERSION_1 offered.
        w(&f, 0x00, &0u32.to_le_bytes());
        assert_eq!(r(&f, 0x04, 4), 1 << 9);
        w(&f, 0x00, &1u32.to_le_bytes());
        assert_eq!(r(&f, 0x04, 4), 1);
        assert_eq!(r(&f, 0x12, 2), 1, "one queue");
        // A driver taking a feature not offered does not get FEATURES_OK.
        w(&f, 0x14, &[status::ACKNOWLEDGE | status::DRIVER]);
        w(&f, 0x08, &0u32.to_le_bytes());
        w(&f, 0x0c, &(1u32 << 10 | 1 << 9).to_le_bytes());
        w(&f, 0x08, &1u32.to_le_bytes());
        w(&f, 0x0c, &1u32.to_le_bytes());
        w(
            &f,
            0x14,
            &[status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK],
        );
        assert_eq!(r(&f, 0x14, 1) as u8 & status::FEATURES_OK, 0);
        // Reset, then do it right.
        w(&f, 0x14, &[0]);
        assert_eq!(r(&f, 0x14, 1), 0);
        w(&f, 0x14, &[status::ACKNOWLEDGE | status::DRIVER]);
        w(&f, 0x08, &0u32.to_le_bytes());
        w(&f, 0x0c, &(1u32 << 9).to_le_bytes());
        w(&f, 0x08, &1u32.to_le_bytes());
        w(&f, 0x0c, &1u32.to_le_bytes());
        w(
            &f,
            0x14,
            &[status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK],
        );
        assert_ne!(r(&f, 0x14, 1) as u8 & status::FEATURES_OK, 0);
        // Queue 0: vector 1 exists, vector 5 does not.
        w(&f, 0x16, &0u16.to_le_bytes());
        assert_eq!(r(&f, 0x18, 2), 16);
        w(&f, 0x1a, &5u16.to_le_bytes());
        assert_eq!(r(&f, 0x1a, 2), u64::from(NO_VECTOR));
        w(&f, 0x1a, &1u16.to_le_bytes());
        assert_eq!(r(&f, 0x1a, 2), 1);
        w(&f, 0x20, &0x1000u32.to_le_bytes());
        w(&f, 0x24, &0u32.to_le_bytes());
        w(&f, 0x28, &0x2000u64.to_le_bytes());
        w(&f, 0x30, &0x3000u32.to_le_bytes());
        w(&f, 0x1c, &1u16.to_le_bytes());
        assert_eq!(r(&f, 0x20, 8), 0x1000);
        assert_eq!(r(&f, 0x28, 8), 0x2000);
        // MSI-X on, vector 1 unmasked, then DRIVER_OK starts the device,
        // whose first interrupt arrives on vector 1.
        f.write_config(0x40, 2, &0x8000u16.to_le_bytes());
        w(&f, 0x4000 + 16 + 12, &0u32.to_le_bytes());
        w(
            &f,
            0x14,
            &[status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK],
        );
        assert_eq!(rec.activations.load(Ordering::SeqCst), 1);
        assert_eq!(*rec.last_features.lock().unwrap(), 1 << 32 | 1 << 9);
        assert_eq!(*rec.fired.lock().unwrap(), vec![1]);
        assert_eq!(r(&f, 0x1000, 1), 1, "ISR: a queue interrupt");
        assert_eq!(r(&f, 0x1000, 1), 0, "reading the ISR cleared it");
        // While running, the queue's registers are frozen.
        w(&f, 0x18, &8u16.to_le_bytes());
        assert_eq!(r(&f, 0x18, 2), 16);
        // Reset stops the worker and forgets the queue.
        w(&f, 0x14, &[0]);
        assert_eq!(r(&f, 0x1c, 2), 0);
        assert_eq!(r(&f, 0x1a, 2), u64::from(NO_VECTOR));
        // Memory space off: the notify eventfd is taken away.
        f.write_config(4, 0, &[0x04, 0]);
        assert_eq!(
            rec.registered.lock().unwrap().last(),
            Some(&(BAR + 0x3000, false))
        );
    }

    #[test]
    fn driver_ok_without_the_queues_asks_for_a_reset() {
        let (f, rec) = function();
        f.write_config(4, 0, &[0x06, 0]);
        w(&f, 0x08, &1u32.to_le_bytes());
        w(&f, 0x0c, &1u32.to_le_bytes());
        w(
            &f,
            0x14,
            &[status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK],
        );
        assert_eq!(rec.activations.load(Ordering::SeqCst), 0);
        assert_ne!(r(&f, 0x14, 1) as u8 & status::DEVICE_NEEDS_RESET, 0);
    }
}
