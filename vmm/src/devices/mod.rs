//! The legacy port-I/O devices and the bus that dispatches vCPU port
//! accesses to them.
//!
//! | ports         | device                                  |
//! |---------------|-----------------------------------------|
//! | 0x3f8-0x3ff   | COM1, a 16550A UART ([`serial`]), IRQ 4  |
//! | 0x60, 0x64    | i8042 ([`i8042`]): keyboard, reset line, IRQ 1 |
//! | 0x70-0x71     | CMOS: reads 0                            |
//! | anything else | reads all-ones, writes ignored           |
//!
//! The PIC, PIT (0x40-0x43, 0x61) and I/O APIC are KVM's in-kernel devices
//! and never reach userspace.

pub mod i8042;
pub mod serial;

use std::sync::{Arc, Mutex};

/// Something a device asks of the VM as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The guest pulsed the CPU reset line (i8042 command 0xFE).
    Reset,
}

/// The port-I/O bus shared by all vCPU threads.
#[derive(Debug)]
pub struct PioBus {
    serial: Arc<Mutex<serial::SerialDevice>>,
    i8042: i8042::I8042,
}

impl PioBus {
    /// A bus with the given serial port and i8042.
    pub fn new(serial: Arc<Mutex<serial::SerialDevice>>, i8042: i8042::I8042) -> Self {
        PioBus { serial, i8042 }
    }

    /// The i8042, to type Ctrl-Alt-Del.
    pub fn i8042(&self) -> &i8042::I8042 {
        &self.i8042
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
            _ => None,
        }
    }
}
