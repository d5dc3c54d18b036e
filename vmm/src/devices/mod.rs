//! The devices, and the bus that dispatches vCPU port and memory accesses
//! to them.
//!
//! | ports         | device                                  |
//! |---------------|-----------------------------------------|
//! | 0x3f8-0x3ff   | COM1, a 16550A UART ([`serial`]), IRQ 4  |
//! | 0x60, 0x64    | i8042 ([`i8042`]): keyboard, reset line, IRQ 1 |
//! | 0x70-0x71     | CMOS: reads 0                            |
//! | 0x600-0x608   | ACPI PM1a event and control blocks, reset register ([`acpi_pm`]), SCI on IRQ 9 |
//! | 0xcf8-0xcff   | PCI configuration mechanism #1 ([`pci`]): bus 0, the host bridge at 00:00.0, virtio devices ([`virtio`]) from 00:01.0 |
//! | anything else | reads all-ones, writes ignored           |
//!
//! Memory accesses that KVM does not handle (outside guest RAM, the LAPIC
//! and the I/O APIC) go to the PCI root, whose devices' BARs are in the
//! 32-bit window of [`crate::arch::x86_64::layout`]; elsewhere they read
//! all-ones.
//!
//! The PIC, PIT (0x40-0x43, 0x61) and I/O APIC are KVM's in-kernel devices
//! and never reach userspace.

pub mod acpi_pm;
pub mod i8042;
pub mod pci;
pub mod serial;
pub mod virtio;

use std::sync::{Arc, Mutex};

/// Something a device asks of the VM as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The guest pulsed the CPU reset line (i8042 command 0xFE) or wrote
    /// the ACPI reset register.
    Reset,
    /// The guest entered ACPI S5 (soft off).
    PowerOff,
}

/// An interrupt line that a level-triggered device holds high while it
/// wants service.
pub trait LevelIrq: Send + Sync {
    /// Asserts (`true`) or deasserts the line.
    fn set(&self, asserted: bool) -> std::io::Result<()>;
}

/// The port-I/O and MMIO bus shared by all vCPU threads.
#[derive(Debug)]
pub struct PioBus {
    serial: Arc<Mutex<serial::SerialDevice>>,
    i8042: i8042::I8042,
    acpi_pm: acpi_pm::AcpiPm,
    pci: pci::PciRoot,
}

impl PioBus {
    /// A bus with the given serial port, i8042, ACPI PM registers and PCI
    /// root.
    pub fn new(
        serial: Arc<Mutex<serial::SerialDevice>>,
        i8042: i8042::I8042,
        acpi_pm: acpi_pm::AcpiPm,
        pci: pci::PciRoot,
    ) -> Self {
        PioBus {
            serial,
            i8042,
            acpi_pm,
            pci,
        }
    }

    /// A memory read at guest-physical `address` that KVM left to `vmm`.
    pub fn mmio_read(&self, address: u64, data: &mut [u8]) {
        self.pci.mmio_read(address, data);
    }

    /// A memory write at guest-physical `address` that KVM left to `vmm`.
    pub fn mmio_write(&self, address: u64, data: &[u8]) {
        self.pci.mmio_write(address, data);
    }

    /// The i8042, to type Ctrl-Alt-Del.
    pub fn i8042(&self) -> &i8042::I8042 {
        &self.i8042
    }

    /// The ACPI PM registers, to press the power button.
    pub fn acpi_pm(&self) -> &acpi_pm::AcpiPm {
        &self.acpi_pm
    }

    /// A port read of `data.len()` bytes at `port`.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        match port {
            serial::COM1_BASE..=serial::COM1_LAST => {
                let v = self
                    .serial
                    .lock()
                    .expect("serial lock poisoned")
                    .read((port - serial::COM1_BASE) as u8);
                data.fill(0);
                data[0] = v;
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT => {
                data.fill(0);
                data[0] = self.i8042.read(port);
            }
            0x70 | 0x71 => data.fill(0),
            acpi_pm::FIRST_PORT..=acpi_pm::LAST_PORT => self.acpi_pm.read(port, data),
            pci::CONFIG_ADDRESS_PORT..=pci::LAST_PORT => self.pci.read(port, data),
            _ => data.fill(0xff),
        }
    }

    /// A port write of `data` at `port`. Returns what the VM must do, if
    /// anything.
    pub fn write(&self, port: u16, data: &[u8]) -> Option<DeviceEvent> {
        match port {
            serial::COM1_BASE..=serial::COM1_LAST => {
                if let Err(e) = self
                    .serial
                    .lock()
                    .expect("serial lock poisoned")
                    .write((port - serial::COM1_BASE) as u8, data[0])
                {
                    log::warn!("serial: {e:?}");
                }
                None
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT => self.i8042.write(port, data[0]),
            acpi_pm::FIRST_PORT..=acpi_pm::LAST_PORT => self.acpi_pm.write(port, data),
            pci::CONFIG_ADDRESS_PORT..=pci::LAST_PORT => {
                self.pci.write(port, data);
                None
            }
            _ => None,
        }
    }
}
