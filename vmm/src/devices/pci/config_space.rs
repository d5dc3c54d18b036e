//! A PCI function's type-0 configuration space: the header with its IDs,
//! command register and memory BARs, and the capability list, with the
//! write masks that make each register read-only, writable or sized.
//!
//! This is pure bookkeeping: it never touches KVM or a device. The function
//! that owns it ([`super::PciFunction`]) asks it where its BARs are and
//! whether memory decoding is on, after each configuration write.

/// Size of the configuration space reachable through mechanism #1.
pub const CONFIG_SPACE_SIZE: usize = 256;
/// Number of dword registers in it.
const DWORDS: usize = CONFIG_SPACE_SIZE / 4;
/// The first byte after the standard header, where capabilities start.
const FIRST_CAPABILITY: u8 = 0x40;

/// Register offsets of the type-0 header.
const VENDOR_DEVICE: usize = 0x00;
const COMMAND_STATUS: usize = 0x04;
const CLASS_REVISION: usize = 0x08;
const HEADER_TYPE: usize = 0x0c;
const FIRST_BAR: usize = 0x10;
const SUBSYSTEM: usize = 0x2c;
const CAPABILITIES_POINTER: usize = 0x34;
const INTERRUPT: usize = 0x3c;

/// Command register: the function answers memory accesses in its BARs.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: the function may master the bus (DMA, MSI writes).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command register: INTx is disabled.
const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Status register: the capability list exists.
const STATUS_CAPABILITIES: u32 = 1 << 4;
/// BAR bits 2:1 = 00: a 32-bit memory BAR anywhere below 4 GiB.
const BAR_MEMORY_32: u32 = 0;

/// The number of BARs of a type-0 header.
pub const BAR_COUNT: usize = 6;

/// Errors building a configuration space.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigSpaceError {
    /// A BAR size that is not a power of two of at least 4 KiB (a BAR of
    /// less than a page would share the page with another device).
    #[error("BAR size 0x{0:x} is not a power of two of at least 4 KiB")]
    BarSize(u64),
    /// A BAR address that is not a multiple of its size, or not below 4 GiB.
    #[error("BAR address 0x{address:x} does not fit a 32-bit BAR of size 0x{size:x}")]
    BarAddress {
        /// The address.
        address: u64,
        /// The size.
        size: u64,
    },
    /// A BAR index past the header's six.
    #[error("BAR {0} does not exist")]
    BarIndex(usize),
    /// The capabilities do not fit in the 256-byte space.
    #[error("the capability list does not fit in the configuration space")]
    CapabilitiesFull,
}

/// The identity of a PCI function, as its header gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIds {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code, subclass and programming interface (24 bits).
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// Subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// Subsystem ID.
    pub subsystem: u16,
}

/// A type-0 configuration space.
///
/// # Invariants
///
/// A BAR's writable bits are exactly the address bits above its size, so
/// that the value read back after the guest writes all-ones gives the size
/// (the PCI sizing protocol), and its address is a multiple of its size.
#[derive(Clone, Debug)]
pub struct ConfigSpace {
    registers: [u32; DWORDS],
    writable: [u32; DWORDS],
    bar_sizes: [u64; BAR_COUNT],
    next_capability: u8,
    last_capability: Option<u8>,
}

impl ConfigSpace {
    /// A header with the given IDs, no BARs, no capabilities, no interrupt
    /// pin (the function signals only through MSI-X), and every register
    /// read-only but the command register's memory, bus-master and
    /// INTx-disable bits and the interrupt line.
    pub fn new(ids: PciIds) -> Self {
        let mut registers = [0u32; DWORDS];
        let mut writable = [0u32; DWORDS];
        registers[VENDOR_DEVICE / 4] = (u32::from(ids.device) << 16) | u32::from(ids.vendor);
        registers[CLASS_REVISION / 4] = (ids.class << 8) | u32::from(ids.revision);
        registers[SUBSYSTEM / 4] =
            (u32::from(ids.subsystem) << 16) | u32::from(ids.subsystem_vendor);
        writable[COMMAND_STATUS / 4] =
            u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE);
        // The interrupt line is a scratch register for the guest's own use.
        writable[INTERRUPT / 4] = 0xff;
        // Header type 0, single function.
        registers[HEADER_TYPE / 4] = 0;
        ConfigSpace {
            registers,
            writable,
            bar_sizes: [0; BAR_COUNT],
            next_capability: FIRST_CAPABILITY,
            last_capability: None,
        }
    }

    /// Declares BAR `index` as a 32-bit memory BAR of `size` bytes at
    /// `address`, as firmware would have assigned it.
    pub fn set_bar(
        &mut self,
        index: usize,
        address: u64,
        size: u64,
    ) -> Result<(), ConfigSpaceError> {
        if index >= BAR_COUNT {
            return Err(ConfigSpaceError::BarIndex(index));
        }
        if !size.is_power_of_two() || !(0x1000..=1 << 31).contains(&size) {
            return Err(ConfigSpaceError::BarSize(size));
        }
        if !address.is_multiple_of(size) || address + size > 1 << 32 {
            return Err(ConfigSpaceError::BarAddress { address, size });
        }
        let reg = FIRST_BAR / 4 + index;
        self.registers[reg] = address as u32 | BAR_MEMORY_32;
        self.writable[reg] = !(size as u32 - 1);
        self.bar_sizes[index] = size;
        Ok(())
    }

    /// Appends a capability whose body (after the ID and next-pointer
    /// bytes) is `body`, with `writable` masking the guest's writes to it
    /// byte for byte (missing bytes are read-only). Returns its offset.
    pub fn add_capability(
        &mut self,
        id: u8,
        body: &[u8],
        writable: &[u8],
    ) -> Result<u8, ConfigSpaceError> {
        let len = 2 + body.len();
        let offset = self.next_capability;
        let end = usize::from(offset) + len;
        if end > CONFIG_SPACE_SIZE {
            return Err(ConfigSpaceError::CapabilitiesFull);
        }
        self.set_byte(offset, id);
        self.set_byte(offset + 1, 0);
        for (i, b) in body.iter().enumerate() {
            self.set_byte(offset + 2 + i as u8, *b);
        }
        for (i, mask) in writable.iter().enumerate().take(body.len()) {
            let at = usize::from(offset) + 2 + i;
            self.writable[at / 4] |= u32::from(*mask) << ((at % 4) * 8);
        }
        match self.last_capability {
            Some(last) => self.set_byte(last + 1, offset),
            None => {
                self.registers[CAPABILITIES_POINTER / 4] = u32::from(offset);
                self.registers[COMMAND_STATUS / 4] |= STATUS_CAPABILITIES << 16;
            }
        }
        self.last_capability = Some(offset);
        // The next capability starts on a dword boundary; past the end,
        // none fits.
        self.next_capability = u8::try_from(end.div_ceil(4) * 4).unwrap_or(u8::MAX);
        Ok(offset)
    }

    fn set_byte(&mut self, at: u8, value: u8) {
        let at = usize::from(at);
        let shift = (at % 4) * 8;
        let reg = &mut self.registers[at / 4];
        *reg = (*reg & !(0xff << shift)) | (u32::from(value) << shift);
    }

    /// The dword at byte offset `register` (rounded down to a dword).
    pub fn read_dword(&self, register: u8) -> u32 {
        self.registers[usize::from(register) / 4]
    }

    /// A guest write of `data` (1, 2 or 4 bytes) at byte `offset` of the
    /// dword `register`; only writable bits change.
    pub fn write(&mut self, register: u8, offset: u8, data: &[u8]) {
        let reg = usize::from(register) / 4;
        let offset = usize::from(offset);
        if offset + data.len() > 4 {
            return;
        }
        let mut value = self.registers[reg].to_le_bytes();
        value[offset..offset + data.len()].copy_from_slice(data);
        let new = u32::from_le_bytes(value);
        let mask = self.writable[reg];
        // Bytes outside the access keep their value even where writable.
        let mut touched = [0u8; 4];
        touched[offset..offset + data.len()].fill(0xff);
        let mask = mask & u32::from_le_bytes(touched);
        self.registers[reg] = (self.registers[reg] & !mask) | (new & mask);
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.registers[COMMAND_STATUS / 4] as u16
    }

    /// Whether the function answers memory accesses in its BARs.
    pub fn memory_enabled(&self) -> bool {
        self.command() & COMMAND_MEMORY != 0
    }

    /// BAR `index`'s current address and size, `None` for a BAR that does
    /// not exist.
    pub fn bar(&self, index: usize) -> Option<(u64, u64)> {
        let size = *self.bar_sizes.get(index)?;
        if size == 0 {
            return None;
        }
        let reg = self.registers[FIRST_BAR / 4 + index];
        Some((u64::from(reg & !(size as u32 - 1)), size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> PciIds {
        PciIds {
            vendor: 0x1af4,
            device: 0x1042,
            class: 0x01_80_00,
            revision: 1,
            subsystem_vendor: 0x1af4,
            subsystem: 0x40,
        }
    }

    fn write32(c: &mut ConfigSpace, reg: u8, v: u32) {
        c.write(reg, 0, &v.to_le_bytes());
    }

    #[test]
    fn the_header_carries_the_ids_and_no_interrupt_pin() {
        let c = ConfigSpace::new(ids());
        assert_eq!(c.read_dword(0), 0x1042_1af4);
        assert_eq!(c.read_dword(8), 0x0180_0001);
        assert_eq!(c.read_dword(0x2c), 0x0040_1af4);
        assert_eq!(c.read_dword(0x3c) >> 8 & 0xff, 0, "no INTx pin");
        assert_eq!(c.read_dword(4) >> 16 & STATUS_CAPABILITIES, 0);
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let mut c = ConfigSpace::new(ids());
        write32(&mut c, 0, 0xffff_ffff);
        write32(&mut c, 8, 0);
        assert_eq!(c.read_dword(0), 0x1042_1af4);
        assert_eq!(c.read_dword(8), 0x0180_0001);
        write32(&mut c, 4, 0xffff_ffff);
        assert_eq!(
            c.command(),
            COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE
        );
    }

    #[test]
    fn a_bar_sizes_and_moves_as_the_pci_protocol_says() {
        let mut c = ConfigSpace::new(ids());
        c.set_bar(0, 0xc000_8000, 0x8000).unwrap();
        assert_eq!(c.bar(0), Some((0xc000_8000, 0x8000)));
        assert_eq!(c.bar(1), None);
        // Sizing: all-ones reads back the size mask, memory, 32-bit.
        write32(&mut c, 0x10, 0xffff_ffff);
        assert_eq!(c.read_dword(0x10), 0xffff_8000);
        // A BAR that does not exist reads 0 after sizing.
        write32(&mut c, 0x14, 0xffff_ffff);
        assert_eq!(c.read_dword(0x14), 0);
        // The guest puts it back, or moves it.
        write32(&mut c, 0x10, 0xd000_0000);
        assert_eq!(c.bar(0), Some((0xd000_0000, 0x8000)));
        // Low address bits inside the size stay 0.
        write32(&mut c, 0x10, 0xd000_1234);
        assert_eq!(c.bar(0), Some((0xd000_0000, 0x8000)));
    }

    #[test]
    fn bad_bars_are_refused() {
        let mut c = ConfigSpace::new(ids());
        assert_eq!(
            c.set_bar(0, 0, 0x1800),
            Err(ConfigSpaceError::BarSize(0x1800))
        );
        assert_eq!(
            c.set_bar(0, 0, 0x800),
            Err(ConfigSpaceError::BarSize(0x800))
        );
        assert_eq!(
            c.set_bar(0, 0x1000, 0x2000),
            Err(ConfigSpaceError::BarAddress {
                address: 0x1000,
                size: 0x2000
            })
        );
        assert_eq!(c.set_bar(6, 0, 0x1000), Err(ConfigSpaceError::BarIndex(6)));
    }

    #[test]
    fn capabilities_chain_from_the_pointer_and_mask_writes() {
        let mut c = ConfigSpace::new(ids());
        let a = c
            .add_capability(0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &[0, 0xc0])
            .unwrap();
        let b = c.add_capability(0x09, &[0xaa; 14], &[]).unwrap();
        assert_eq!(a, 0x40);
        assert_eq!(b, 0x4c, "dword-aligned after a 12-byte capability");
        assert_eq!(c.read_dword(0x34) & 0xff, 0x40);
        assert_ne!(c.read_dword(4) >> 16 & STATUS_CAPABILITIES, 0);
        assert_eq!(c.read_dword(0x40), 0x0201_4c11, "ID, next, body");
        assert_eq!(
            c.read_dword(0x4c) & 0xffff,
            0x0009,
            "the last one ends the list"
        );
        // Only the masked bits of byte 3 (body byte 1) change.
        c.write(0x40, 2, &[0xff, 0xff]);
        assert_eq!(c.read_dword(0x40), 0xc201_4c11);
    }

    #[test]
    fn the_capability_list_cannot_overflow() {
        let mut c = ConfigSpace::new(ids());
        let mut n = 0;
        while c.add_capability(0x09, &[0; 30], &[]).is_ok() {
            n += 1;
        }
        assert_eq!(n, 6, "(256 - 64) / 32");
        assert_eq!(
            c.add_capability(0x09, &[0; 2], &[]),
            Err(ConfigSpaceError::CapabilitiesFull)
        );
    }

    #[test]
    fn narrow_writes_touch_only_their_bytes() {
        let mut c = ConfigSpace::new(ids());
        c.write(0x3c, 0, &[0x0b]);
        c.write(0x04, 0, &[0x06]);
        assert_eq!(c.read_dword(0x3c) & 0xff, 0x0b);
        assert_eq!(c.command(), COMMAND_MEMORY | COMMAND_BUS_MASTER);
        c.write(0x04, 1, &[0x04]);
        assert_eq!(c.command(), 0x0406);
        // An access that would cross the dword is ignored.
        c.write(0x04, 3, &[1, 2]);
        assert_eq!(c.command(), 0x0406);
    }
}
