//! An i8042 keyboard controller with a minimal PS/2 keyboard behind it, and
//! no mouse.
//!
//! It answers the controller commands the Linux i8042 driver sends while
//! probing (read/write the command byte, self-test, interface test,
//! enable/disable ports, loopback) and the keyboard commands atkbd sends
//! (reset, identify, LEDs, typematic rate, scan set, enable), so both probes
//! end at once. Keyboard bytes raise IRQ 1 through an irqfd when the command
//! byte enables it.
//!
//! Two things end up in the VM:
//! - command 0xFE (pulse the CPU reset line), which the guest's `reboot=k`
//!   path uses: [`DeviceEvent::Reset`] ends the VM;
//! - [`I8042::ctrl_alt_del`], which types Ctrl-Alt-Del. A Linux guest with
//!   the default keymap then reboots (or its init runs its ctrl-alt-del
//!   action): how `vmm` asks a guest to shut down on SIGTERM.

use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;

use vmm_sys_util::eventfd::EventFd;

use super::DeviceEvent;

/// The i8042's ISA interrupt line (the keyboard's).
pub const IRQ: u32 = 1;
/// i8042 data port.
pub const DATA_PORT: u16 = 0x60;
/// i8042 command/status port.
pub const COMMAND_PORT: u16 = 0x64;

/// Command: read the command byte.
pub const CMD_READ_CTR: u8 = 0x20;
/// Command: write the command byte (next data byte).
pub const CMD_WRITE_CTR: u8 = 0x60;
/// Command: disable the aux port.
pub const CMD_AUX_DISABLE: u8 = 0xa7;
/// Command: enable the aux port.
pub const CMD_AUX_ENABLE: u8 = 0xa8;
/// Command: test the aux interface.
pub const CMD_AUX_TEST: u8 = 0xa9;
/// Command: controller self-test.
pub const CMD_SELF_TEST: u8 = 0xaa;
/// Command: test the keyboard interface.
pub const CMD_KBD_TEST: u8 = 0xab;
/// Command: disable the keyboard port.
pub const CMD_KBD_DISABLE: u8 = 0xad;
/// Command: enable the keyboard port.
pub const CMD_KBD_ENABLE: u8 = 0xae;
/// Command: write the output port (next data byte).
pub const CMD_WRITE_OUTPUT: u8 = 0xd1;
/// Command: put the next data byte in the output buffer as keyboard data.
pub const CMD_KBD_LOOP: u8 = 0xd2;
/// Command: put the next data byte in the output buffer as aux data.
pub const CMD_AUX_LOOP: u8 = 0xd3;
/// Command: send the next data byte to the aux device.
pub const CMD_AUX_SEND: u8 = 0xd4;
/// Command: pulse the CPU reset line.
pub const CMD_RESET_CPU: u8 = 0xfe;

/// Status: output buffer full.
pub const STATUS_OBF: u8 = 0x01;
/// Status: system flag (self-test passed).
pub const STATUS_SYS: u8 = 0x04;
/// Status: keyboard not inhibited (no keylock).
pub const STATUS_UNLOCKED: u8 = 0x10;
/// Status: the output buffer holds aux data.
pub const STATUS_AUX_DATA: u8 = 0x20;

/// Command byte: interrupt on keyboard data.
const CTR_KBD_INT: u8 = 0x01;
const CTR_KBD_DISABLE: u8 = 0x10;
const CTR_AUX_DISABLE: u8 = 0x20;
/// Command byte: translate scan set 2 to set 1 (Linux sets it by default).
const CTR_XLATE: u8 = 0x40;
const SELF_TEST_OK: u8 = 0x55;
const INTERFACE_OK: u8 = 0x00;
const INTERFACE_NO_DEVICE: u8 = 0xff;

/// Keyboard command: set the LEDs (one parameter byte).
pub const KBD_SET_LEDS: u8 = 0xed;
/// Keyboard command: echo.
pub const KBD_ECHO: u8 = 0xee;
/// Keyboard command: get or set the scan code set (one parameter byte).
pub const KBD_SCAN_SET: u8 = 0xf0;
/// Keyboard command: identify.
pub const KBD_GET_ID: u8 = 0xf2;
/// Keyboard command: set the typematic rate (one parameter byte).
pub const KBD_TYPEMATIC: u8 = 0xf3;
/// Keyboard command: reset and self-test.
pub const KBD_RESET: u8 = 0xff;
/// Keyboard reply: acknowledge.
pub const KBD_ACK: u8 = 0xfa;
/// Keyboard reply: self-test passed.
pub const KBD_SELF_TEST_OK: u8 = 0xaa;
/// Keyboard reply: first identity byte of an MF2 keyboard.
pub const KBD_ID: u8 = 0xab;
/// Second identity byte, untranslated and translated.
const KBD_ID_SECOND: u8 = 0x83;
const KBD_ID_SECOND_XLATED: u8 = 0x41;
/// The scan set this keyboard uses.
const KBD_SCAN_SET_2: u8 = 2;

/// Ctrl, Alt and Delete pressed then released, in scan set 1 (what the
/// guest sees with translation on) and in set 2.
const CTRL_ALT_DEL_SET1: [u8; 8] = [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d];
const CTRL_ALT_DEL_SET2: [u8; 11] = [
    0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14,
];

/// Where a byte in the output buffer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The controller or the keyboard: IRQ 1.
    Keyboard,
    /// The aux port (loopback only; there is no mouse).
    Aux,
}

#[derive(Debug)]
struct State {
    ctr: u8,
    out: VecDeque<(u8, Source)>,
    /// A controller command waiting for its data byte.
    pending: Option<u8>,
    /// A keyboard command waiting for its parameter byte.
    kbd_pending: Option<u8>,
}

/// The controller.
#[derive(Debug)]
pub struct I8042 {
    state: Mutex<State>,
    /// IRQ 1, an irqfd; `None` in unit tests.
    irq: Option<EventFd>,
}

impl Default for I8042 {
    fn default() -> Self {
        I8042::new(None)
    }
}

impl State {
    /// Queues `bytes`; returns whether IRQ 1 must be raised (the buffer was
    /// empty and keyboard interrupts are on).
    fn push(&mut self, bytes: &[u8], source: Source) -> bool {
        let was_empty = self.out.is_empty();
        self.out.extend(bytes.iter().map(|&b| (b, source)));
        was_empty && self.irq_due()
    }

    /// Whether the byte at the head of the buffer interrupts.
    fn irq_due(&self) -> bool {
        matches!(self.out.front(), Some((_, Source::Keyboard))) && self.ctr & CTR_KBD_INT != 0
    }

    fn translated(&self) -> bool {
        self.ctr & CTR_XLATE != 0
    }

    /// A byte the guest sent to the keyboard.
    fn keyboard_byte(&mut self, value: u8) -> bool {
        if let Some(cmd) = self.kbd_pending.take() {
            if cmd == KBD_SCAN_SET && value == 0 {
                return self.push(&[KBD_ACK, KBD_SCAN_SET_2], Source::Keyboard);
            }
            return self.push(&[KBD_ACK], Source::Keyboard);
        }
        match value {
            KBD_RESET => self.push(&[KBD_ACK, KBD_SELF_TEST_OK], Source::Keyboard),
            KBD_GET_ID => {
                let second = if self.translated() {
                    KBD_ID_SECOND_XLATED
                } else {
                    KBD_ID_SECOND
                };
                self.push(&[KBD_ACK, KBD_ID, second], Source::Keyboard)
            }
            KBD_SET_LEDS | KBD_TYPEMATIC | KBD_SCAN_SET => {
                self.kbd_pending = Some(value);
                self.push(&[KBD_ACK], Source::Keyboard)
            }
            KBD_ECHO => self.push(&[KBD_ECHO], Source::Keyboard),
            // Enable, disable, defaults and the rest: acknowledged.
            _ => self.push(&[KBD_ACK], Source::Keyboard),
        }
    }
}

impl I8042 {
    /// A controller that raises IRQ 1 on `irq` (an irqfd), if given.
    pub fn new(irq: Option<EventFd>) -> Self {
        I8042 {
            state: Mutex::new(State {
                ctr: CTR_KBD_DISABLE | CTR_AUX_DISABLE,
                out: VecDeque::new(),
                pending: None,
                kbd_pending: None,
            }),
            irq,
        }
    }

    fn raise_irq(&self) {
        if let Some(irq) = &self.irq {
            if let Err(e) = irq.write(1) {
                log::warn!("i8042: cannot raise IRQ 1: {e}");
            }
        }
    }

    /// A read of `port`: the status register, or the output buffer.
    pub fn read(&self, port: u16) -> u8 {
        let mut s = self.state.lock().expect("i8042 lock poisoned");
        if port == COMMAND_PORT {
            let mut status = STATUS_SYS | STATUS_UNLOCKED;
            if let Some(&(_, source)) = s.out.front() {
                status |= STATUS_OBF;
                if source == Source::Aux {
                    status |= STATUS_AUX_DATA;
                }
            }
            return status;
        }
        let byte = s.out.pop_front().map_or(0, |(b, _)| b);
        if s.irq_due() {
            self.raise_irq();
        }
        byte
    }

    /// A write of `value` to `port`. Returns [`DeviceEvent::Reset`] for the
    /// reset command.
    pub fn write(&self, port: u16, value: u8) -> Option<DeviceEvent> {
        let mut s = self.state.lock().expect("i8042 lock poisoned");
        let irq = if port == COMMAND_PORT {
            s.pending = None;
            match value {
                CMD_READ_CTR => {
                    let ctr = s.ctr;
                    s.push(&[ctr], Source::Keyboard)
                }
                CMD_WRITE_CTR | CMD_WRITE_OUTPUT | CMD_KBD_LOOP | CMD_AUX_LOOP | CMD_AUX_SEND => {
                    s.pending = Some(value);
                    false
                }
                CMD_SELF_TEST => s.push(&[SELF_TEST_OK], Source::Keyboard),
                CMD_KBD_TEST => s.push(&[INTERFACE_OK], Source::Keyboard),
                CMD_AUX_TEST => s.push(&[INTERFACE_NO_DEVICE], Source::Keyboard),
                CMD_KBD_DISABLE => {
                    s.ctr |= CTR_KBD_DISABLE;
                    false
                }
                CMD_KBD_ENABLE => {
                    s.ctr &= !CTR_KBD_DISABLE;
                    false
                }
                CMD_AUX_DISABLE => {
                    s.ctr |= CTR_AUX_DISABLE;
                    false
                }
                CMD_AUX_ENABLE => {
                    s.ctr &= !CTR_AUX_DISABLE;
                    false
                }
                CMD_RESET_CPU => return Some(DeviceEvent::Reset),
                _ => false,
            }
        } else {
            match s.pending.take() {
                Some(CMD_WRITE_CTR) => {
                    s.ctr = value;
                    // Enabling interrupts with bytes waiting raises one.
                    s.irq_due()
                }
                Some(CMD_KBD_LOOP) => s.push(&[value], Source::Keyboard),
                Some(CMD_AUX_LOOP) => s.push(&[value], Source::Aux),
                // Output port bit 0 low holds the CPU in reset.
                Some(CMD_WRITE_OUTPUT) if value & 1 == 0 => return Some(DeviceEvent::Reset),
                Some(CMD_WRITE_OUTPUT) => false,
                // Bytes for the (absent) aux device are dropped.
                Some(CMD_AUX_SEND) => false,
                _ => s.keyboard_byte(value),
            }
        };
        if irq {
            self.raise_irq();
        }
        None
    }

    /// Types Ctrl-Alt-Del on the keyboard, in the scan set the guest reads.
    pub fn ctrl_alt_del(&self) -> io::Result<()> {
        let mut s = self.state.lock().expect("i8042 lock poisoned");
        let irq = if s.translated() {
            s.push(&CTRL_ALT_DEL_SET1, Source::Keyboard)
        } else {
            s.push(&CTRL_ALT_DEL_SET2, Source::Keyboard)
        };
        if irq {
            if let Some(fd) = &self.irq {
                fd.write(1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command() {
        let d = I8042::default();
        assert_eq!(
            d.write(COMMAND_PORT, CMD_RESET_CPU),
            Some(DeviceEvent::Reset)
        );
        assert_eq!(d.write(DATA_PORT, CMD_RESET_CPU), None);
        d.write(COMMAND_PORT, CMD_WRITE_OUTPUT);
        assert_eq!(d.write(DATA_PORT, 0xfe), Some(DeviceEvent::Reset));
    }

    #[test]
    fn command_byte_round_trip() {
        let d = I8042::default();
        assert_eq!(d.read(COMMAND_PORT) & STATUS_OBF, 0);
        d.write(COMMAND_PORT, CMD_READ_CTR);
        assert_eq!(d.read(COMMAND_PORT) & STATUS_OBF, STATUS_OBF);
        assert_eq!(d.read(DATA_PORT), CTR_KBD_DISABLE | CTR_AUX_DISABLE);
        assert_eq!(d.read(COMMAND_PORT) & STATUS_OBF, 0);
        d.write(COMMAND_PORT, CMD_WRITE_CTR);
        d.write(DATA_PORT, 0x47);
        d.write(COMMAND_PORT, CMD_READ_CTR);
        assert_eq!(d.read(DATA_PORT), 0x47);
        d.write(COMMAND_PORT, CMD_AUX_DISABLE);
        d.write(COMMAND_PORT, CMD_READ_CTR);
        assert_eq!(d.read(DATA_PORT), 0x47 | CTR_AUX_DISABLE);
    }

    #[test]
    fn keyboard_probe_is_answered() {
        let d = I8042::default();
        d.write(DATA_PORT, KBD_RESET);
        assert_eq!(d.read(DATA_PORT), KBD_ACK);
        assert_eq!(d.read(DATA_PORT), KBD_SELF_TEST_OK);
        // Untranslated, then translated identity.
        d.write(DATA_PORT, KBD_GET_ID);
        assert_eq!(
            [d.read(DATA_PORT), d.read(DATA_PORT), d.read(DATA_PORT)],
            [KBD_ACK, KBD_ID, 0x83]
        );
        d.write(COMMAND_PORT, CMD_WRITE_CTR);
        d.write(DATA_PORT, CTR_XLATE);
        d.write(DATA_PORT, KBD_GET_ID);
        assert_eq!(
            [d.read(DATA_PORT), d.read(DATA_PORT), d.read(DATA_PORT)],
            [KBD_ACK, KBD_ID, 0x41]
        );
        // A command with a parameter acknowledges both bytes.
        d.write(DATA_PORT, KBD_SET_LEDS);
        assert_eq!(d.read(DATA_PORT), KBD_ACK);
        d.write(DATA_PORT, 0x07);
        assert_eq!(d.read(DATA_PORT), KBD_ACK);
        d.write(DATA_PORT, KBD_SCAN_SET);
        d.write(DATA_PORT, 0);
        assert_eq!(
            [d.read(DATA_PORT), d.read(DATA_PORT), d.read(DATA_PORT)],
            [KBD_ACK, KBD_ACK, 2]
        );
        assert_eq!(d.read(COMMAND_PORT) & STATUS_OBF, 0, "buffer drained");
    }

    #[test]
    fn keyboard_bytes_raise_irq1_when_enabled() {
        let irq = EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK).unwrap();
        let d = I8042::new(Some(irq.try_clone().unwrap()));
        d.write(DATA_PORT, KBD_RESET);
        assert!(
            irq.read().is_err(),
            "no IRQ while the command byte disables it"
        );
        // Enabling interrupts with two bytes waiting raises one IRQ, and
        // reading the first raises one for the second.
        d.write(COMMAND_PORT, CMD_WRITE_CTR);
        d.write(DATA_PORT, CTR_KBD_INT | CTR_XLATE);
        assert_eq!(irq.read().unwrap(), 1);
        assert_eq!(d.read(DATA_PORT), KBD_ACK);
        assert_eq!(irq.read().unwrap(), 1);
        assert_eq!(d.read(DATA_PORT), KBD_SELF_TEST_OK);
        assert!(irq.read().is_err(), "nothing left, no IRQ");
    }

    #[test]
    fn ctrl_alt_del_in_the_guest_scan_set() {
        let d = I8042::default();
        d.write(COMMAND_PORT, CMD_WRITE_CTR);
        d.write(DATA_PORT, CTR_XLATE);
        d.ctrl_alt_del().unwrap();
        let typed: Vec<u8> = (0..CTRL_ALT_DEL_SET1.len())
            .map(|_| d.read(DATA_PORT))
            .collect();
        assert_eq!(typed, CTRL_ALT_DEL_SET1);
        d.write(COMMAND_PORT, CMD_WRITE_CTR);
        d.write(DATA_PORT, 0);
        d.ctrl_alt_del().unwrap();
        let typed: Vec<u8> = (0..CTRL_ALT_DEL_SET2.len())
            .map(|_| d.read(DATA_PORT))
            .collect();
        assert_eq!(typed, CTRL_ALT_DEL_SET2);
    }

    #[test]
    fn tests_and_loopback() {
        let d = I8042::default();
        d.write(COMMAND_PORT, CMD_SELF_TEST);
        assert_eq!(d.read(DATA_PORT), SELF_TEST_OK);
        d.write(COMMAND_PORT, CMD_KBD_TEST);
        assert_eq!(d.read(DATA_PORT), INTERFACE_OK);
        d.write(COMMAND_PORT, CMD_AUX_LOOP);
        d.write(DATA_PORT, 0x5a);
        assert_eq!(
            d.read(COMMAND_PORT),
            STATUS_SYS | STATUS_UNLOCKED | STATUS_OBF | STATUS_AUX_DATA
        );
        assert_eq!(d.read(DATA_PORT), 0x5a);
    }
}
