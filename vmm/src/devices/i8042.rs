//! A minimal i8042 keyboard controller: just enough for the guest's
//! `reboot=k` path, which writes command 0xFE (pulse reset) to port 0x64.
//! There is no keyboard: the status register reads 0 (buffers empty), data
//! reads 0.

use super::DeviceEvent;

/// i8042 data port.
pub const DATA_PORT: u16 = 0x60;
/// i8042 command/status port.
pub const COMMAND_PORT: u16 = 0x64;
/// Command: pulse the CPU reset line.
pub const CMD_RESET_CPU: u8 = 0xfe;

/// The controller. Stateless.
#[derive(Debug, Default)]
pub struct I8042;

impl I8042 {
    /// A read of `port`.
    pub fn read(&self, _port: u16) -> u8 {
        0
    }

    /// A write of `value` to `port`.
    pub fn write(&self, port: u16, value: u8) -> Option<DeviceEvent> {
        if port == COMMAND_PORT && value == CMD_RESET_CPU {
            Some(DeviceEvent::Reset)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command() {
        let d = I8042;
        assert_eq!(
            d.write(COMMAND_PORT, CMD_RESET_CPU),
            Some(DeviceEvent::Reset)
        );
        assert_eq!(d.write(COMMAND_PORT, 0xd1), None);
        assert_eq!(d.write(DATA_PORT, CMD_RESET_CPU), None);
        assert_eq!(d.read(COMMAND_PORT), 0);
    }
}
