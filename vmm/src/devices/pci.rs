//! The PCI root: bus 0 behind the PC's configuration mechanism #1 (the
//! address register at [`CONFIG_ADDRESS_PORT`], the data window at
//! [`CONFIG_DATA_PORT`]), with the host bridge at 00:00.0.
//!
//! Any x86 kernel with `CONFIG_PCI` finds the bus through those ports; the
//! DSDT's `\_SB_.PCI0` (a PNP0A03 root bridge, [`crate::arch::x86_64::acpi`])
//! tells an ACPI kernel that the bus exists and which windows it decodes.
//! The devices that sit on it (virtio-pci) come with the next change; for
//! now a function other than the host bridge reads as absent (all-ones),
//! as on real hardware.

use std::sync::Mutex;

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

/// The PCI root and its configuration mechanism.
#[derive(Debug, Default)]
pub struct PciRoot {
    address: Mutex<u32>,
}

impl PciRoot {
    /// The root with the address register cleared.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dword at `address`: the host bridge's, or all-ones for a
    /// function that does not exist.
    fn config_dword(address: ConfigAddress) -> u32 {
        match (address.bus, address.device, address.function) {
            (0, 0, 0) => host_bridge_dword(address.register),
            _ => u32::MAX,
        }
    }

    /// A port read of `data.len()` bytes at `port`, a port of the mechanism.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let address = *self.address.lock().expect("PCI address lock poisoned");
        let (value, offset) = if (CONFIG_ADDRESS_PORT..CONFIG_DATA_PORT).contains(&port) {
            (address, port - CONFIG_ADDRESS_PORT)
        } else {
            let dword = ConfigAddress::decode(address).map_or(u32::MAX, Self::config_dword);
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
    /// the address); configuration writes reach only read-only registers.
    pub fn write(&self, port: u16, data: &[u8]) {
        if port == CONFIG_ADDRESS_PORT && data.len() == 4 {
            let value = u32::from_le_bytes(data.try_into().expect("4 bytes"));
            *self.address.lock().expect("PCI address lock poisoned") = value & CONFIG_ADDRESS_MASK;
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

    #[test]
    fn configuration_writes_change_nothing() {
        let root = PciRoot::new();
        root.write(CONFIG_ADDRESS_PORT, &address(0, 0, 0, 4).to_le_bytes());
        root.write(CONFIG_DATA_PORT, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(read_config(&root, address(0, 0, 0, 4), 0, 4), 0);
    }
}
