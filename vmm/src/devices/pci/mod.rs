//! The PCI root: bus 0 behind the PC's configuration mechanism #1 (the
//! address register at [`CONFIG_ADDRESS_PORT`], the data window at
//! [`CONFIG_DATA_PORT`]), with the host bridge at 00:00.0 and the devices
//! ([`PciFunction`]s, virtio-pci) at 00:01.0 onwards, one function each.
//!
//! Any x86 kernel with `CONFIG_PCI` finds the bus through those ports; the
//! DSDT's `\_SB_.PCI0` (a PNP0A03 root bridge, [`crate::arch::x86_64::acpi`])
//! tells an ACPI kernel that the bus exists and which windows it decodes.
//! A function that does not exist reads as all-ones, as on real hardware.
//!
//! - [`config_space`]: a function's type-0 header, BARs and capabilities.
//! - [`msix`]: MSI-X tables and the delivery of their vectors.

pub mod config_space;
pub mod msix;

use std::sync::{Arc, Mutex};

/// The device numbers of bus 0: 0 is the host bridge, so 31 remain.
pub const MAX_DEVICES: usize = 31;

/// A function on bus 0 that is not the host bridge.
pub trait PciFunction: Send + Sync + std::fmt::Debug {
    /// The configuration dword at byte offset `register`.
    fn read_config(&self, register: u8) -> u32;
    /// A configuration write of `data` at byte `offset` of dword
    /// `register`.
    fn write_config(&self, register: u8, offset: u8, data: &[u8]);
    /// A memory read at guest-physical `address`: `false` when none of the
    /// function's decoding BARs holds it.
    fn mmio_read(&self, address: u64, data: &mut [u8]) -> bool;
    /// A memory write at guest-physical `address`: `false` when none of
    /// the function's decoding BARs holds it.
    fn mmio_write(&self, address: u64, data: &[u8]) -> bool;
}

/// Errors placing functions on the bus or their BARs in the window.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PciError {
    /// Every device number of bus 0 is taken.
    #[error(
        "bus 0 holds at most {MAX_DEVICES} devices besides the host bridge; {0} were asked for"
    )]
    BusFull(usize),
    /// The 32-bit memory window has no room left for a BAR.
    #[error("the PCI memory window has no room for a BAR of 0x{0:x} bytes")]
    WindowFull(u64),
}

/// Hands out BAR addresses in the root's 32-bit memory window, each
/// aligned to its size, as firmware assigns them before the kernel boots.
#[derive(Debug)]
pub struct BarAllocator {
    next: u64,
    last: u64,
}

impl BarAllocator {
    /// An allocator for the window `first..=last`.
    pub fn new(first: u64, last: u64) -> Self {
        BarAllocator { next: first, last }
    }

    /// The address of a new BAR of `size` bytes (a power of two).
    pub fn allocate(&mut self, size: u64) -> Result<u64, PciError> {
        let address = self.next.next_multiple_of(size);
        if address
            .checked_add(size - 1)
            .is_none_or(|end| end > self.last)
        {
            return Err(PciError::WindowFull(size));
        }
        self.next = address + size;
        Ok(address)
    }
}

/// The configuration address register (32 bits).
pub const CONFIG_ADDRESS_PORT: u16 = 0xcf8;
/// The first port of the configuration data window (4 bytes).
pub const CONFIG_DATA_PORT: u16 = 0xcfc;
/// The last port of the mechanism.
pub const LAST_PORT: u16 = 0xcff;

/// The host bridge's vendor ID: Red Hat, Inc., whose 0x1b36 range holds IDs
/// for virtual hardware.
pub const HOST_BRIDGE_VENDOR: u16 = 0x1b36;
/// The host bridge's device ID: Red Hat's "PCI host bridge" (0x0008), which
/// Linux drives with no quirk.
pub const HOST_BRIDGE_DEVICE: u16 = 0x0008;
/// PCI class code of a host bridge (class 06, subclass 00, prog-if 00).
const CLASS_HOST_BRIDGE: u32 = 0x06_00_00;

/// `CONFIG_ADDRESS` bit 31: the data window reaches configuration space.
const CONFIG_ENABLE: u32 = 1 << 31;
/// The `CONFIG_ADDRESS` bits that hold what was written: enable, bus,
/// device, function and dword register (bits 1:0 read as 0).
const CONFIG_ADDRESS_MASK: u32 = 0x80ff_fffc;

/// A decoded `CONFIG_ADDRESS`: which function's dword the data window is at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigAddress {
    /// The bus number.
    pub bus: u8,
    /// The device number (0..=31).
    pub device: u8,
    /// The function number (0..=7).
    pub function: u8,
    /// Byte offset of the dword register in configuration space.
    pub register: u8,
}

impl ConfigAddress {
    /// Decodes a `CONFIG_ADDRESS` value; `None` while the enable bit is
    /// clear (the data window then reaches nothing).
    pub fn decode(value: u32) -> Option<Self> {
        if value & CONFIG_ENABLE == 0 {
            return None;
        }
        Some(ConfigAddress {
            bus: (value >> 16) as u8,
            device: ((value >> 11) & 0x1f) as u8,
            function: ((value >> 8) & 0x7) as u8,
            register: (value & 0xfc) as u8,
        })
    }
}

/// The host bridge's configuration space: a type-0 header with IDs, class
/// and no BARs. Every register is read-only, so a write changes nothing.
fn host_bridge_dword(register: u8) -> u32 {
    match register {
        0x00 => (u32::from(HOST_BRIDGE_DEVICE) << 16) | u32::from(HOST_BRIDGE_VENDOR),
        // Class code and revision 0.
        0x08 => CLASS_HOST_BRIDGE << 8,
        _ => 0,
    }
}

/// The PCI root, its configuration mechanism and the functions on bus 0.
#[derive(Debug, Default)]
pub struct PciRoot {
    address: Mutex<u32>,
    functions: Vec<Arc<dyn PciFunction>>,
}

impl PciRoot {
    /// The root with only the host bridge.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root with `functions` at 00:01.0, 00:02.0, ... in order.
    pub fn with_functions(functions: Vec<Arc<dyn PciFunction>>) -> Result<Self, PciError> {
        if functions.len() > MAX_DEVICES {
            return Err(PciError::BusFull(functions.len()));
        }
        Ok(PciRoot {
            address: Mutex::default(),
            functions,
        })
    }

    fn function(&self, address: ConfigAddress) -> Option<&Arc<dyn PciFunction>> {
        match (address.bus, address.device, address.function) {
            (0, d, 0) if d > 0 => self.functions.get(usize::from(d) - 1),
            _ => None,
        }
    }

    /// The dword at `address`: the host bridge's, a function's, or
    /// all-ones for a function that does not exist.
    fn config_dword(&self, address: ConfigAddress) -> u32 {
        match (address.bus, address.device, address.function) {
            (0, 0, 0) => host_bridge_dword(address.register),
            _ => self
                .function(address)
                .map_or(u32::MAX, |f| f.read_config(address.register)),
        }
    }

    /// A memory read in the PCI window at `address`: all-ones where no BAR
    /// decodes, as a master abort reads.
    pub fn mmio_read(&self, address: u64, data: &mut [u8]) {
        if !self.functions.iter().any(|f| f.mmio_read(address, data)) {
            data.fill(0xff);
        }
    }

    /// A memory write in the PCI window at `address`, dropped where no BAR
    /// decodes.
    pub fn mmio_write(&self, address: u64, data: &[u8]) {
        let _ = self.functions.iter().any(|f| f.mmio_write(address, data));
    }

    /// A port read of `data.len()` bytes at `port`, a port of the mechanism.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let address = *self.address.lock().expect("PCI address lock poisoned");
        let (value, offset) = if (CONFIG_ADDRESS_PORT..CONFIG_DATA_PORT).contains(&port) {
            (address, port - CONFIG_ADDRESS_PORT)
        } else {
            let dword = ConfigAddress::decode(address).map_or(u32::MAX, |a| self.config_dword(a));
            (dword, port - CONFIG_DATA_PORT)
        };
        let bytes = value.to_le_bytes();
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = bytes.get(usize::from(offset) + i).copied().unwrap_or(0xff);
        }
    }

    /// A port write of `data` at `port`, a port of the mechanism. Only a
    /// full dword write sets the address register, as on PC chipsets (a
    /// byte write to 0xcf9 is a chipset reset register there, not part of
    /// the address); the host bridge's registers are all read-only.
    pub fn write(&self, port: u16, data: &[u8]) {
        if port == CONFIG_ADDRESS_PORT && data.len() == 4 {
            let value = u32::from_le_bytes(data.try_into().expect("4 bytes"));
            *self.address.lock().expect("PCI address lock poisoned") = value & CONFIG_ADDRESS_MASK;
        } else if (CONFIG_DATA_PORT..=LAST_PORT).contains(&port) {
            let address = *self.address.lock().expect("PCI address lock poisoned");
            let offset = (port - CONFIG_DATA_PORT) as u8;
            if let Some(a) = ConfigAddress::decode(address) {
                if let Some(f) = self.function(a) {
                    f.write_config(a.register, offset, data);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(bus: u32, device: u32, function: u32, register: u32) -> u32 {
        CONFIG_ENABLE | (bus << 16) | (device << 11) | (function << 8) | register
    }

    fn read_config(root: &PciRoot, addr: u32, offset: u16, len: usize) -> u32 {
        root.write(CONFIG_ADDRESS_PORT, &addr.to_le_bytes());
        let mut b = [0u8; 4];
        root.read(CONFIG_DATA_PORT + offset, &mut b[..len]);
        u32::from_le_bytes(b)
    }

    #[test]
    fn config_address_decodes_each_field() {
        assert_eq!(
            ConfigAddress::decode(address(1, 2, 3, 0x10) & !CONFIG_ENABLE),
            None
        );
        assert_eq!(
            ConfigAddress::decode(address(1, 31, 7, 0xfc)),
            Some(ConfigAddress {
                bus: 1,
                device: 31,
                function: 7,
                register: 0xfc
            })
        );
    }

    #[test]
    fn the_host_bridge_answers_at_00_00_0() {
        let root = PciRoot::new();
        let ids = read_config(&root, address(0, 0, 0, 0), 0, 4);
        assert_eq!(ids & 0xffff, u32::from(HOST_BRIDGE_VENDOR));
        assert_eq!(ids >> 16, u32::from(HOST_BRIDGE_DEVICE));
        // Word and byte reads inside the dword, as Linux's probes do.
        assert_eq!(
            read_config(&root, address(0, 0, 0, 0), 2, 2),
            u32::from(HOST_BRIDGE_DEVICE)
        );
        assert_eq!(
            read_config(&root, address(0, 0, 0, 8), 3, 1),
            0x06,
            "class: bridge"
        );
        assert_eq!(
            read_config(&root, address(0, 0, 0, 8), 2, 1),
            0x00,
            "subclass: host"
        );
        // A type-0 header without BARs.
        assert_eq!(read_config(&root, address(0, 0, 0, 0x0c), 2, 1), 0);
        assert_eq!(read_config(&root, address(0, 0, 0, 0x10), 0, 4), 0);
    }

    #[test]
    fn absent_functions_and_a_disabled_window_read_all_ones() {
        let root = PciRoot::new();
        assert_eq!(read_config(&root, address(0, 1, 0, 0), 0, 4), u32::MAX);
        assert_eq!(read_config(&root, address(0, 0, 1, 0), 0, 4), u32::MAX);
        assert_eq!(read_config(&root, address(1, 0, 0, 0), 0, 4), u32::MAX);
        assert_eq!(
            read_config(&root, address(0, 0, 0, 0) & !CONFIG_ENABLE, 0, 4),
            u32::MAX
        );
    }

    #[test]
    fn the_address_register_reads_back_and_ignores_narrow_writes() {
        let root = PciRoot::new();
        let a = address(0, 3, 0, 0x40) | 0x3;
        root.write(CONFIG_ADDRESS_PORT, &a.to_le_bytes());
        let mut b = [0u8; 4];
        root.read(CONFIG_ADDRESS_PORT, &mut b);
        assert_eq!(u32::from_le_bytes(b), a & CONFIG_ADDRESS_MASK);
        // A byte write at 0xcf9 (a reset register on PC chipsets) leaves it.
        root.write(CONFIG_ADDRESS_PORT + 1, &[0x06]);
        root.read(CONFIG_ADDRESS_PORT, &mut b);
        assert_eq!(u32::from_le_bytes(b), a & CONFIG_ADDRESS_MASK);
    }

    #[derive(Debug, Default)]
    struct Scratch {
        dword: Mutex<u32>,
    }

    impl PciFunction for Scratch {
        fn read_config(&self, register: u8) -> u32 {
            if register == 0 {
                0x1234_5678
            } else {
                *self.dword.lock().unwrap()
            }
        }
        fn write_config(&self, _: u8, offset: u8, data: &[u8]) {
            let mut b = self.dword.lock().unwrap().to_le_bytes();
            b[usize::from(offset)..usize::from(offset) + data.len()].copy_from_slice(data);
            *self.dword.lock().unwrap() = u32::from_le_bytes(b);
        }
        fn mmio_read(&self, address: u64, data: &mut [u8]) -> bool {
            if address == 0xc000_0000 {
                data.fill(0x5a);
                return true;
            }
            false
        }
        fn mmio_write(&self, address: u64, _: &[u8]) -> bool {
            address == 0xc000_0000
        }
    }

    #[test]
    fn functions_answer_from_device_1_and_their_bars() {
        let f = Arc::new(Scratch::default());
        let root = PciRoot::with_functions(vec![f.clone()]).unwrap();
        assert_eq!(read_config(&root, address(0, 1, 0, 0), 0, 4), 0x1234_5678);
        assert_eq!(read_config(&root, address(0, 2, 0, 0), 0, 4), u32::MAX);
        assert_eq!(
            read_config(&root, address(0, 1, 1, 0), 0, 4),
            u32::MAX,
            "single-function"
        );
        root.write(CONFIG_ADDRESS_PORT, &address(0, 1, 0, 0x10).to_le_bytes());
        root.write(CONFIG_DATA_PORT + 2, &[0xab]);
        assert_eq!(
            read_config(&root, address(0, 1, 0, 0x10), 0, 4),
            0x00ab_0000
        );
        let mut b = [0u8; 2];
        root.mmio_read(0xc000_0000, &mut b);
        assert_eq!(b, [0x5a, 0x5a]);
        root.mmio_read(0xc000_1000, &mut b);
        assert_eq!(b, [0xff, 0xff], "no BAR decodes there");
    }

    #[test]
    fn the_bus_and_the_window_have_limits() {
        let many: Vec<Arc<dyn PciFunction>> = (0..=MAX_DEVICES)
            .map(|_| Arc::new(Scratch::default()) as Arc<dyn PciFunction>)
            .collect();
        assert_eq!(
            PciRoot::with_functions(many).unwrap_err(),
            PciError::BusFull(32)
        );
        let mut bars = BarAllocator::new(0xc000_1000, 0xc001_ffff);
        assert_eq!(
            bars.allocate(0x8000),
            Ok(0xc000_8000),
            "aligned to its size"
        );
        assert_eq!(bars.allocate(0x1000), Ok(0xc001_0000));
        assert_eq!(bars.allocate(0x8000), Ok(0xc001_8000));
        assert_eq!(bars.allocate(0x1000), Err(PciError::WindowFull(0x1000)));
    }

    #[test]
    fn configuration_writes_change_nothing() {
        let root = PciRoot::new();
        root.write(CONFIG_ADDRESS_PORT, &address(0, 0, 0, 4).to_le_bytes());
        root.write(CONFIG_DATA_PORT, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(read_config(&root, address(0, 0, 0, 4), 0, 4), 0);
    }
}
