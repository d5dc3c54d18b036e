//! The ACPI fixed-hardware registers the guest's ACPI driver programs: the
//! PM1a event block (status and enable), the PM1a control block, and the
//! reset register, all in port I/O. The FADT that
//! [`crate::arch::x86_64::acpi`] builds points the guest at these ports.
//!
//! What they give the VM:
//! - **The power button.** [`AcpiPm::press_power_button`] sets `PWRBTN_STS`
//!   and raises the SCI, once the guest has armed the button by setting
//!   `PWRBTN_EN` (Linux's ACPI button driver does when it binds). Because
//!   the arming is visible here, `vmm` knows whether a press can reach the
//!   guest at all, and falls back to Ctrl-Alt-Del for a guest that never
//!   armed it (booted with `acpi=off`, or without the button driver).
//! - **Power-off.** The guest writes `SLP_TYP` = [`SLP_TYP_S5`] with
//!   `SLP_EN` to PM1a control, which is [`DeviceEvent::PowerOff`].
//! - **Reset.** [`RESET_VALUE`] written to [`RESET_PORT`] is
//!   [`DeviceEvent::Reset`].
//!
//! The SCI is level-triggered (the MADT says so): it is asserted while any
//! enabled status bit is set, and the guest's write-one-to-clear of the
//! status bit drops it.
//!
//! There is no SMI command port: the registers are in ACPI mode from reset,
//! so `SCI_EN` always reads 1.

use std::sync::Mutex;

use super::{DeviceEvent, LevelIrq};

/// First port of the PM1a event block: `PM1_STS` (2 bytes), then `PM1_EN`
/// (2 bytes).
pub const PM1A_EVT_PORT: u16 = 0x600;
/// Length of the PM1a event block.
pub const PM1_EVT_LEN: u8 = 4;
/// Port of the PM1a control register (2 bytes).
pub const PM1A_CNT_PORT: u16 = 0x604;
/// Length of the PM1a control block.
pub const PM1_CNT_LEN: u8 = 2;
/// Port of the reset register (1 byte).
pub const RESET_PORT: u16 = 0x608;
/// The value that resets the VM when written to [`RESET_PORT`].
pub const RESET_VALUE: u8 = 0x01;
/// The first and last port the device answers.
pub const FIRST_PORT: u16 = PM1A_EVT_PORT;
/// See [`FIRST_PORT`].
pub const LAST_PORT: u16 = RESET_PORT;
/// The ISA interrupt line of the SCI (as on PC chipsets).
pub const SCI_IRQ: u32 = 9;
/// The `SLP_TYP` value of the soft-off state S5, as the DSDT's `_S5_` object
/// gives it to the guest.
pub const SLP_TYP_S5: u16 = 5;

/// `PM1_STS`/`PM1_EN`: the global lock release (`GBL_STS`/`GBL_EN`).
const PM1_GBL: u16 = 1 << 5;
/// `PM1_STS`/`PM1_EN`: the power button.
pub const PM1_PWRBTN: u16 = 1 << 8;
/// The status bits this hardware has (the timer, sleep button, RTC and wake
/// bits do not exist here), and so the enable bits that read back.
const PM1_EVENTS: u16 = PM1_GBL | PM1_PWRBTN;
/// `PM1_CNT`: the SCI, rather than an SMI, signals events.
const PM1_CNT_SCI_EN: u16 = 1 << 0;
/// `PM1_CNT`: the sleep type field, bits 10 to 12.
const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;
/// See [`PM1_CNT_SLP_TYP_SHIFT`].
const PM1_CNT_SLP_TYP_MASK: u16 = 0x7;
/// `PM1_CNT`: enter the sleep state of `SLP_TYP` (write-only).
const PM1_CNT_SLP_EN: u16 = 1 << 13;
/// The `PM1_CNT` bits that hold what was written (the rest are fixed or
/// write-only).
const PM1_CNT_STORED: u16 = PM1_CNT_SLP_TYP_MASK << PM1_CNT_SLP_TYP_SHIFT;

/// The register file.
#[derive(Debug, Default)]
struct Registers {
    status: u16,
    enable: u16,
    control: u16,
}

impl Registers {
    /// True while the SCI must be asserted.
    fn sci_level(&self) -> bool {
        self.status & self.enable & PM1_EVENTS != 0
    }

    /// The byte at `offset` from [`FIRST_PORT`].
    fn read_byte(&self, offset: u16) -> u8 {
        let (word, shift) = match offset {
            0 | 1 => (self.status, offset * 8),
            2 | 3 => (self.enable, (offset - 2) * 8),
            4 | 5 => (self.control | PM1_CNT_SCI_EN, (offset - 4) * 8),
            // The reset register reads 0; the hole between reads all-ones.
            8 => return 0,
            _ => return 0xff,
        };
        (word >> shift) as u8
    }

    /// Writes the byte at `offset` from [`FIRST_PORT`]; returns what the VM
    /// must do.
    fn write_byte(&mut self, offset: u16, byte: u8) -> Option<DeviceEvent> {
        let value = u16::from(byte);
        match offset {
            // Write one to clear.
            0 | 1 => self.status &= !(value << (offset * 8)),
            2 | 3 => {
                let shift = (offset - 2) * 8;
                self.enable = (self.enable & !(0xff << shift)) | ((value << shift) & PM1_EVENTS);
            }
            4 => {}
            5 => {
                let written = value << 8;
                self.control = written & PM1_CNT_STORED;
                if written & PM1_CNT_SLP_EN != 0 {
                    let slp_typ = (written >> PM1_CNT_SLP_TYP_SHIFT) & PM1_CNT_SLP_TYP_MASK;
                    if slp_typ == SLP_TYP_S5 {
                        return Some(DeviceEvent::PowerOff);
                    }
                    log::warn!(
                        "ACPI: the guest asked for sleep type {slp_typ}, which this VM does not offer (only S5, type {SLP_TYP_S5}); ignored"
                    );
                }
            }
            8 if byte == RESET_VALUE => return Some(DeviceEvent::Reset),
            _ => {}
        }
        None
    }
}

/// The ACPI PM registers and the SCI line they drive.
///
/// # Invariants
///
/// The SCI line is asserted exactly when `status & enable` has a bit of
/// [`PM1_EVENTS`] set, as of the last register change.
pub struct AcpiPm {
    registers: Mutex<Registers>,
    sci: Box<dyn LevelIrq>,
}

impl std::fmt::Debug for AcpiPm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcpiPm")
            .field("registers", &self.registers)
            .finish_non_exhaustive()
    }
}

impl AcpiPm {
    /// The registers at their reset values, driving `sci`.
    pub fn new(sci: Box<dyn LevelIrq>) -> Self {
        AcpiPm {
            registers: Mutex::new(Registers::default()),
            sci,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registers> {
        self.registers.lock().expect("ACPI PM lock poisoned")
    }

    /// Applies `change` to the registers and brings the SCI line in line
    /// with them, keeping the invariant.
    fn change<T>(&self, change: impl FnOnce(&mut Registers) -> T) -> T {
        let mut regs = self.lock();
        let before = regs.sci_level();
        let result = change(&mut regs);
        let after = regs.sci_level();
        if before != after {
            if let Err(e) = self.sci.set(after) {
                log::warn!("ACPI: cannot set the SCI line to {after}: {e}");
            }
        }
        result
    }

    /// A port read of `data.len()` bytes at `port`, a port of this device.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let regs = self.lock();
        for (i, byte) in data.iter_mut().enumerate() {
            let offset = (port - FIRST_PORT).wrapping_add(i as u16);
            *byte = regs.read_byte(offset);
        }
    }

    /// A port write of `data` at `port`, a port of this device. Returns what
    /// the VM must do, if anything.
    pub fn write(&self, port: u16, data: &[u8]) -> Option<DeviceEvent> {
        self.change(|regs| {
            let mut event = None;
            for (i, &byte) in data.iter().enumerate() {
                let offset = (port - FIRST_PORT).wrapping_add(i as u16);
                event = event.or(regs.write_byte(offset, byte));
            }
            event
        })
    }

    /// True once the guest has enabled the power button event.
    pub fn power_button_armed(&self) -> bool {
        self.lock().enable & PM1_PWRBTN != 0
    }

    /// Presses the power button if the guest has armed it, and returns
    /// whether it had. An unarmed button is left alone, so that a guest
    /// arming it later does not find a stale press.
    pub fn press_power_button(&self) -> bool {
        self.change(|regs| {
            if regs.enable & PM1_PWRBTN == 0 {
                return false;
            }
            regs.status |= PM1_PWRBTN;
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Records every level the device sets.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<bool>>>);

    impl LevelIrq for Recorder {
        fn set(&self, asserted: bool) -> std::io::Result<()> {
            self.0.lock().unwrap().push(asserted);
            Ok(())
        }
    }

    fn device() -> (AcpiPm, Recorder) {
        let rec = Recorder::default();
        (AcpiPm::new(Box::new(rec.clone())), rec)
    }

    fn read16(pm: &AcpiPm, port: u16) -> u16 {
        let mut b = [0u8; 2];
        pm.read(port, &mut b);
        u16::from_le_bytes(b)
    }

    const PM1_STS: u16 = PM1A_EVT_PORT;
    const PM1_EN: u16 = PM1A_EVT_PORT + 2;

    #[test]
    fn acpi_mode_from_reset_and_nothing_pending() {
        let (pm, rec) = device();
        assert_eq!(read16(&pm, PM1A_CNT_PORT) & PM1_CNT_SCI_EN, 1);
        assert_eq!(read16(&pm, PM1_STS), 0);
        assert_eq!(read16(&pm, PM1_EN), 0);
        assert!(!pm.power_button_armed());
        assert!(rec.0.lock().unwrap().is_empty());
    }

    #[test]
    fn an_unarmed_button_is_not_pressed() {
        let (pm, rec) = device();
        assert!(!pm.press_power_button());
        assert_eq!(read16(&pm, PM1_STS), 0, "no stale press for a later arming");
        pm.write(PM1_EN, &PM1_PWRBTN.to_le_bytes());
        assert_eq!(read16(&pm, PM1_STS), 0);
        assert!(rec.0.lock().unwrap().is_empty(), "SCI never raised");
    }

    #[test]
    fn press_raises_the_sci_until_the_guest_clears_the_status() {
        let (pm, rec) = device();
        pm.write(PM1_EN, &PM1_PWRBTN.to_le_bytes());
        assert!(pm.power_button_armed());
        assert!(pm.press_power_button());
        assert_eq!(read16(&pm, PM1_STS), PM1_PWRBTN);
        assert_eq!(*rec.0.lock().unwrap(), vec![true]);
        // Writing zero clears nothing; writing the bit clears it.
        pm.write(PM1_STS, &0u16.to_le_bytes());
        assert_eq!(read16(&pm, PM1_STS), PM1_PWRBTN);
        pm.write(PM1_STS, &PM1_PWRBTN.to_le_bytes());
        assert_eq!(read16(&pm, PM1_STS), 0);
        assert_eq!(*rec.0.lock().unwrap(), vec![true, false]);
    }

    #[test]
    fn disabling_the_event_drops_the_sci() {
        let (pm, rec) = device();
        pm.write(PM1_EN, &PM1_PWRBTN.to_le_bytes());
        pm.press_power_button();
        pm.write(PM1_EN, &0u16.to_le_bytes());
        assert_eq!(*rec.0.lock().unwrap(), vec![true, false]);
        // The status stays pending, and comes back with the enable.
        pm.write(PM1_EN, &PM1_PWRBTN.to_le_bytes());
        assert_eq!(*rec.0.lock().unwrap(), vec![true, false, true]);
    }

    #[test]
    fn enable_bits_read_back_only_where_hardware_exists() {
        let (pm, _) = device();
        // ACPICA checks that GBL_EN sticks before it uses the global lock.
        pm.write(PM1_EN, &0xffffu16.to_le_bytes());
        assert_eq!(read16(&pm, PM1_EN), PM1_GBL | PM1_PWRBTN);
        // Byte accesses reach the same register.
        pm.write(PM1_EN + 1, &[0]);
        assert_eq!(read16(&pm, PM1_EN), PM1_GBL);
        let mut hi = [0u8];
        pm.read(PM1_EN, &mut hi);
        assert_eq!(hi[0], PM1_GBL as u8);
    }

    #[test]
    fn s5_with_slp_en_powers_off() {
        let (pm, _) = device();
        let s5 = (SLP_TYP_S5 << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN | PM1_CNT_SCI_EN;
        assert_eq!(
            pm.write(PM1A_CNT_PORT, &s5.to_le_bytes()),
            Some(DeviceEvent::PowerOff)
        );
        // SLP_TYP alone, without SLP_EN, only sets the field (ACPICA writes
        // the two in separate steps).
        let typ = SLP_TYP_S5 << PM1_CNT_SLP_TYP_SHIFT;
        assert_eq!(pm.write(PM1A_CNT_PORT, &typ.to_le_bytes()), None);
        assert_eq!(read16(&pm, PM1A_CNT_PORT), typ | PM1_CNT_SCI_EN);
        // Another sleep type is refused, not taken for a power-off.
        let s3 = (3 << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN;
        assert_eq!(pm.write(PM1A_CNT_PORT, &s3.to_le_bytes()), None);
    }

    #[test]
    fn the_reset_register_resets_on_its_value_only() {
        let (pm, _) = device();
        assert_eq!(
            pm.write(RESET_PORT, &[RESET_VALUE]),
            Some(DeviceEvent::Reset)
        );
        assert_eq!(pm.write(RESET_PORT, &[0x42]), None);
        let mut b = [0xaau8];
        pm.read(RESET_PORT, &mut b);
        assert_eq!(b[0], 0);
        pm.read(RESET_PORT - 1, &mut b);
        assert_eq!(b[0], 0xff, "the hole between the blocks reads all-ones");
    }
}
