//! KVM's side of PCI interrupts and notifications: the GSI routing table
//! that turns an MSI-X vector's irqfd into the guest's message, and the
//! ioeventfds of the virtio notify areas.
//!
//! `KVM_SET_GSI_ROUTING` replaces the whole table, so [`GsiRouter`] keeps
//! every route and writes them all each time: KVM's own default routes of
//! the legacy interrupt lines (the PIC's and I/O APIC's inputs, which the
//! serial port, the i8042 and the SCI use) and one MSI route per vector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::devices::pci::msix::{MsiMessage, MsiSink};
use crate::devices::virtio::pci::NotifyRegistrar;

/// The I/O APIC's inputs, which are GSIs 0-23; MSI routes come after.
const IOAPIC_PINS: u32 = 24;
/// The PIC pair's inputs, GSIs 0-15.
const PIC_PINS: u32 = 16;
/// KVM's limit on routes (`KVM_MAX_IRQ_ROUTES`).
const MAX_ROUTES: usize = 4096;

/// Errors setting up MSI delivery.
#[derive(Debug, thiserror::Error)]
pub enum MsiError {
    /// More vectors than KVM has routes for.
    #[error("KVM has no room for {0} more MSI routes")]
    NoRoutes(usize),
    /// An irqfd could not be created or registered.
    #[error("cannot set up an irqfd for GSI {0}")]
    Irqfd(u32, #[source] std::io::Error),
}

/// Every GSI route of the VM.
#[derive(Debug)]
pub struct GsiRouter {
    vm: Arc<VmFd>,
    msi: Mutex<BTreeMap<u32, MsiMessage>>,
    next_gsi: Mutex<u32>,
}

/// KVM's default routes of the legacy lines, as `kvm_setup_default_irq_routing`
/// sets them: GSI n to I/O APIC pin n, and GSIs 0-15 also to the PIC pair.
fn legacy_routes() -> Vec<kvm_irq_routing_entry> {
    let mut routes = Vec::new();
    for gsi in 0..IOAPIC_PINS {
        let mut e = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_IRQCHIP,
            ..Default::default()
        };
        e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
        e.u.irqchip.pin = gsi;
        routes.push(e);
        if gsi < PIC_PINS {
            let mut e = kvm_irq_routing_entry {
                gsi,
                type_: KVM_IRQ_ROUTING_IRQCHIP,
                ..Default::default()
            };
            e.u.irqchip.irqchip = if gsi < 8 {
                KVM_IRQCHIP_PIC_MASTER
            } else {
                KVM_IRQCHIP_PIC_SLAVE
            };
            e.u.irqchip.pin = gsi % 8;
            routes.push(e);
        }
    }
    routes
}

impl GsiRouter {
    /// The router of `vm`, with only the legacy routes.
    pub fn new(vm: Arc<VmFd>) -> Self {
        GsiRouter {
            vm,
            msi: Mutex::new(BTreeMap::new()),
            next_gsi: Mutex::new(IOAPIC_PINS),
        }
    }

    /// Hands out `count` GSIs for MSI routes.
    pub fn allocate(&self, count: u16) -> Result<Vec<u32>, MsiError> {
        let mut next = self.next_gsi.lock().expect("GSI lock poisoned");
        let first = *next;
        let end = first + u32::from(count);
        // The legacy routes take 24 + 16 entries.
        if (end - IOAPIC_PINS) as usize + (IOAPIC_PINS + PIC_PINS) as usize > MAX_ROUTES {
            return Err(MsiError::NoRoutes(usize::from(count)));
        }
        *next = end;
        Ok((first..end).collect())
    }

    /// Points `gsi` at `message` and writes the whole table to KVM.
    pub fn set_msi(&self, gsi: u32, message: MsiMessage) -> std::io::Result<()> {
        let mut msi = self.msi.lock().expect("MSI route lock poisoned");
        msi.insert(gsi, message);
        let mut routes = legacy_routes();
        for (&gsi, m) in msi.iter() {
            let mut e = kvm_irq_routing_entry {
                gsi,
                type_: KVM_IRQ_ROUTING_MSI,
                ..Default::default()
            };
            e.u.msi.address_lo = m.address_lo;
            e.u.msi.address_hi = m.address_hi;
            e.u.msi.data = m.data;
            routes.push(e);
        }
        let table = KvmIrqRouting::from_entries(&routes)
            .map_err(|e| std::io::Error::other(format!("routing table: {e:?}")))?;
        self.vm
            .set_gsi_routing(&table)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

/// A function's MSI-X vectors on KVM: vector n is an irqfd on its own GSI,
/// whose route follows the function's table.
#[derive(Debug)]
pub struct KvmMsiSink {
    router: Arc<GsiRouter>,
    gsis: Vec<u32>,
    irqfds: Vec<EventFd>,
}

impl KvmMsiSink {
    /// `vectors` vectors, each with a GSI of `router` and an irqfd on it.
    pub fn new(router: Arc<GsiRouter>, vectors: u16) -> Result<Self, MsiError> {
        let gsis = router.allocate(vectors)?;
        let mut irqfds = Vec::with_capacity(gsis.len());
        for &gsi in &gsis {
            let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| MsiError::Irqfd(gsi, e))?;
            router
                .vm
                .register_irqfd(&fd, gsi)
                .map_err(|e| MsiError::Irqfd(gsi, std::io::Error::from_raw_os_error(e.errno())))?;
            irqfds.push(fd);
        }
        Ok(KvmMsiSink {
            router,
            gsis,
            irqfds,
        })
    }
}

impl MsiSink for KvmMsiSink {
    fn route(&self, vector: u16, message: MsiMessage) -> std::io::Result<()> {
        let gsi = self.gsis[usize::from(vector)];
        self.router.set_msi(gsi, message)
    }

    fn fire(&self, vector: u16) -> std::io::Result<()> {
        self.irqfds[usize::from(vector)].write(1)
    }
}

/// Registers virtio notify areas as KVM ioeventfds on MMIO addresses.
#[derive(Debug)]
pub struct KvmNotifyRegistrar {
    vm: Arc<VmFd>,
}

impl KvmNotifyRegistrar {
    /// The registrar of `vm`.
    pub fn new(vm: Arc<VmFd>) -> Self {
        KvmNotifyRegistrar { vm }
    }
}

impl NotifyRegistrar for KvmNotifyRegistrar {
    fn register(&self, event: &EventFd, address: u64) -> std::io::Result<()> {
        self.vm
            .register_ioevent(event, &IoEventAddress::Mmio(address), NoDatamatch)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }

    fn unregister(&self, event: &EventFd, address: u64) -> std::io::Result<()> {
        self.vm
            .unregister_ioevent(event, &IoEventAddress::Mmio(address), NoDatamatch)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_routes_are_kvms_defaults() {
        let routes = legacy_routes();
        assert_eq!(routes.len(), 24 + 16);
        let pins: Vec<(u32, u32, u32)> = routes
            .iter()
            .map(|e| {
                // SAFETY: each entry was written through `u.irqchip`.
                let chip = unsafe { e.u.irqchip };
                (e.gsi, chip.irqchip, chip.pin)
            })
            .collect();
        assert!(pins.contains(&(4, KVM_IRQCHIP_IOAPIC, 4)));
        assert!(pins.contains(&(4, KVM_IRQCHIP_PIC_MASTER, 4)));
        assert!(pins.contains(&(9, KVM_IRQCHIP_PIC_SLAVE, 1)));
        assert!(pins.contains(&(23, KVM_IRQCHIP_IOAPIC, 23)));
        assert!(!pins
            .iter()
            .any(|&(g, c, _)| g >= 16 && c != KVM_IRQCHIP_IOAPIC));
    }
}
