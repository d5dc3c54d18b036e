//! A minimal i8042 keyboard controller with no keyboard or mouse behind it.
//!
//! It answers the controller commands the Linux i8042 driver sends while
//! probing (read/write the command byte, self-test, interface test,
//! enable/disable ports, loopback), so the probe ends at once instead of
//! timing out, and it implements command 0xFE (pulse the CPU reset line),
//! which the guest's `reboot=k` path uses: that ends the VM.

use std::sync::Mutex;

use super::DeviceEvent;

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

const CTR_KBD_DISABLE: u8 = 0x10;
const CTR_AUX_DISABLE: u8 = 0x20;
const SELF_TEST_OK: u8 = 0x55;
const INTERFACE_OK: u8 = 0x00;
const INTERFACE_NO_DEVICE: u8 = 0xff;

#[derive(Debug)]
struct State {
    ctr: u8,
    out: Option<(u8, bool)>, // (byte, is aux data)
    pending: Option<u8>,
}

/// The controller.
#[derive(Debug)]
pub struct I8042 {
    state: Mutex<State>,
}

impl Default for I8042 {
    fn default() -> Self {
        I8042 {
            state: Mutex::new(State {
                ctr: CTR_KBD_DISABLE | CTR_AUX_DISABLE,
                out: None,
                pending: None,
            }),
        }
    }
}

impl I8042 {
    /// A read of `port`: the status register, or the output buffer.
    pub fn read(&self, port: u16) -> u8 {
        let mut s = self.state.lock().expect("i8042 lock poisoned");
        if port == COMMAND_PORT {
            let mut status = STATUS_SYS | STATUS_UNLOCKED;
            if let Some((_, aux)) = s.out {
                status |= STATUS_OBF | if aux { STATUS_AUX_DATA } else { 0 };
            }
            status
        } else {
            s.out.take().map_or(0, |(b, _)| b)
        }
    }

    /// A write of `value` to `port`. Returns [`DeviceEvent::Reset`] for the
    /// reset command.
    pub fn write(&self, port: u16, value: u8) -> Option<DeviceEvent> {
        let mut s = self.state.lock().expect("i8042 lock poisoned");
        if port == COMMAND_PORT {
            s.pending = None;
            match value {
                CMD_READ_CTR => s.out = Some((s.ctr, false)),
                CMD_WRITE_CTR | CMD_WRITE_OUTPUT | CMD_KBD_LOOP | CMD_AUX_LOOP | CMD_AUX_SEND => {
                    s.pending = Some(value)
                }
                CMD_SELF_TEST => s.out = Some((SELF_TEST_OK, false)),
                CMD_KBD_TEST => s.out = Some((INTERFACE_OK, false)),
                CMD_AUX_TEST => s.out = Some((INTERFACE_NO_DEVICE, false)),
                CMD_KBD_DISABLE => s.ctr |= CTR_KBD_DISABLE,
                CMD_KBD_ENABLE => s.ctr &= !CTR_KBD_DISABLE,
                CMD_AUX_DISABLE => s.ctr |= CTR_AUX_DISABLE,
                CMD_AUX_ENABLE => s.ctr &= !CTR_AUX_DISABLE,
                CMD_RESET_CPU => return Some(DeviceEvent::Reset),
                _ => {}
            }
            return None;
        }
        match s.pending.take() {
            Some(CMD_WRITE_CTR) => s.ctr = value,
            Some(CMD_KBD_LOOP) => s.out = Some((value, false)),
            Some(CMD_AUX_LOOP) => s.out = Some((value, true)),
            // Output port bit 0 low holds the CPU in reset.
            Some(CMD_WRITE_OUTPUT) if value & 1 == 0 => return Some(DeviceEvent::Reset),
            // Bytes for the (absent) keyboard or aux device are dropped.
            _ => {}
        }
        None
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
