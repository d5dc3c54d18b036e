//! MSI-X: a function's vector table and pending-bit array, and the rules
//! that decide whether a vector's interrupt is delivered or held pending.
//!
//! [`MsixTable`] is the pure state: it answers the guest's accesses and
//! says, as [`MsixAction`]s, what must happen outside (a route to point at
//! a new message, an interrupt to deliver). [`MsixInterrupts`] puts it
//! behind a lock with an [`MsiSink`] that carries those actions out (on
//! KVM: GSI routes and irqfds), and is shared by the vCPU threads, which
//! program the table, and the device threads, which raise vectors.

use std::sync::Mutex;

/// The MSI-X capability ID.
pub const CAPABILITY_ID: u8 = 0x11;
/// Bytes per table entry.
pub const ENTRY_SIZE: u64 = 16;
/// Message Control: the function mask.
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Message Control: MSI-X is enabled.
const CONTROL_ENABLE: u16 = 1 << 15;
/// Vector Control: the vector is masked.
const VECTOR_MASKED: u32 = 1;

/// An MSI message: where the function writes, and what.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsiMessage {
    /// Message address, low 32 bits.
    pub address_lo: u32,
    /// Message address, high 32 bits.
    pub address_hi: u32,
    /// Message data.
    pub data: u32,
}

/// What the guest's access asks of the world outside the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixAction {
    /// Point the vector's route at this message.
    Route(u16, MsiMessage),
    /// Deliver the vector's interrupt now.
    Fire(u16),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    message: MsiMessage,
    control: u32,
    /// The message the vector's route points at, once it has one.
    routed: Option<MsiMessage>,
}

impl Default for Entry {
    fn default() -> Self {
        // Every vector is masked at reset.
        Entry {
            message: MsiMessage::default(),
            control: VECTOR_MASKED,
            routed: None,
        }
    }
}

/// The vector table and pending bits of one function.
#[derive(Debug)]
pub struct MsixTable {
    entries: Vec<Entry>,
    pending: Vec<bool>,
    enabled: bool,
    function_masked: bool,
}

impl MsixTable {
    /// A table of `vectors` entries (1..=2048), all masked, MSI-X disabled.
    pub fn new(vectors: u16) -> Self {
        assert!((1..=2048).contains(&vectors), "MSI-X has 1 to 2048 vectors");
        MsixTable {
            entries: vec![Entry::default(); usize::from(vectors)],
            pending: vec![false; usize::from(vectors)],
            enabled: false,
            function_masked: false,
        }
    }

    /// The number of vectors.
    pub fn len(&self) -> u16 {
        self.entries.len() as u16
    }

    /// Whether the table has no vectors (never: at least one).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The capability's body after ID and next pointer: Message Control
    /// (table size), then the table's and the PBA's offset in BAR `bar`.
    pub fn capability_body(&self, bar: u8, table_offset: u32, pba_offset: u32) -> [u8; 10] {
        let mut body = [0u8; 10];
        body[0..2].copy_from_slice(&(self.len() - 1).to_le_bytes());
        body[2..6].copy_from_slice(&(table_offset | u32::from(bar)).to_le_bytes());
        body[6..10].copy_from_slice(&(pba_offset | u32::from(bar)).to_le_bytes());
        body
    }

    /// The write mask of the capability's body: the enable and function
    /// mask bits of Message Control.
    pub const CAPABILITY_WRITABLE: [u8; 2] = [0, 0xc0];

    /// The bytes the table and the PBA need in their BAR.
    pub fn table_size(&self) -> u64 {
        u64::from(self.len()) * ENTRY_SIZE
    }

    /// The bytes the pending-bit array needs (whole qwords).
    pub fn pba_size(&self) -> u64 {
        u64::from(self.len()).div_ceil(64) * 8
    }

    fn masked(&self, vector: u16) -> bool {
        !self.enabled
            || self.function_masked
            || self.entries[usize::from(vector)].control & VECTOR_MASKED != 0
    }

    /// Whether the vector exists.
    pub fn has(&self, vector: u16) -> bool {
        usize::from(vector) < self.entries.len()
    }

    /// The device raises `vector`: deliver it, or hold it pending while it
    /// is masked. A vector that does not exist is dropped.
    pub fn raise(&mut self, vector: u16) -> Option<MsixAction> {
        if !self.has(vector) {
            return None;
        }
        if self.masked(vector) {
            self.pending[usize::from(vector)] = true;
            None
        } else {
            Some(MsixAction::Fire(vector))
        }
    }

    /// Delivers every pending vector that is no longer masked.
    fn release_pending(&mut self, actions: &mut Vec<MsixAction>) {
        for v in 0..self.len() {
            if self.pending[usize::from(v)] && !self.masked(v) {
                self.pending[usize::from(v)] = false;
                actions.push(MsixAction::Fire(v));
            }
        }
    }

    /// The guest wrote Message Control: `control` is its new value.
    pub fn set_control(&mut self, control: u16) -> Vec<MsixAction> {
        self.enabled = control & CONTROL_ENABLE != 0;
        self.function_masked = control & CONTROL_FUNCTION_MASK != 0;
        let mut actions = Vec::new();
        self.release_pending(&mut actions);
        actions
    }

    /// A guest read of the table at byte `offset`.
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        read_dwords(offset, data, |dword| {
            let Some(entry) = self.entries.get((dword / 4) as usize) else {
                return 0;
            };
            match dword % 4 {
                0 => entry.message.address_lo,
                1 => entry.message.address_hi,
                2 => entry.message.data,
                _ => entry.control,
            }
        });
    }

    /// A guest write to the table at byte `offset` (dword or qword
    /// accesses; others are ignored, as the PCI spec allows).
    pub fn write_table(&mut self, offset: u64, data: &[u8]) -> Vec<MsixAction> {
        let mut actions = Vec::new();
        if !matches!(data.len(), 4 | 8) || !offset.is_multiple_of(4) {
            return actions;
        }
        for (i, chunk) in data.chunks_exact(4).enumerate() {
            let dword = offset / 4 + i as u64;
            let value = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
            let v = (dword / 4) as usize;
            let Some(entry) = self.entries.get_mut(v) else {
                continue;
            };
            match dword % 4 {
                0 => entry.message.address_lo = value,
                1 => entry.message.address_hi = value,
                2 => entry.message.data = value,
                _ => entry.control = value & VECTOR_MASKED,
            }
            // The driver programs a vector while it is masked (the PCI
            // spec's rule): the route follows once it is unmasked, one
            // routing-table write per change instead of one per dword.
            if entry.control & VECTOR_MASKED == 0 && entry.routed != Some(entry.message) {
                entry.routed = Some(entry.message);
                actions.push(MsixAction::Route(v as u16, entry.message));
            }
        }
        self.release_pending(&mut actions);
        actions
    }

    /// A guest read of the pending-bit array at byte `offset`.
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        read_dwords(offset, data, |dword| {
            let mut bits = 0u32;
            for bit in 0..32 {
                if self.pending.get((dword * 32 + bit) as usize) == Some(&true) {
                    bits |= 1 << bit;
                }
            }
            bits
        });
    }
}

/// Fills `data` from the dwords `dword(i)` gives, starting at byte
/// `offset` (any alignment and width).
fn read_dwords(offset: u64, data: &mut [u8], dword: impl Fn(u64) -> u32) {
    for (i, byte) in data.iter_mut().enumerate() {
        let at = offset + i as u64;
        *byte = dword(at / 4).to_le_bytes()[(at % 4) as usize];
    }
}

/// Carries out the MSI-X actions of a function.
pub trait MsiSink: Send + Sync {
    /// Points `vector`'s route at `message`.
    fn route(&self, vector: u16, message: MsiMessage) -> std::io::Result<()>;
    /// Delivers `vector`'s interrupt.
    fn fire(&self, vector: u16) -> std::io::Result<()>;
}

/// A function's MSI-X table behind its lock, with the sink that delivers.
pub struct MsixInterrupts {
    table: Mutex<MsixTable>,
    sink: Box<dyn MsiSink>,
}

impl std::fmt::Debug for MsixInterrupts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsixInterrupts")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl MsixInterrupts {
    /// `table`, delivered through `sink`.
    pub fn new(table: MsixTable, sink: Box<dyn MsiSink>) -> Self {
        MsixInterrupts {
            table: Mutex::new(table),
            sink,
        }
    }

    /// Runs `f` on the table and carries out what it asks, under the lock,
    /// so that a vector's route is in place before it fires.
    fn with_table<R>(&self, f: impl FnOnce(&mut MsixTable) -> (R, Vec<MsixAction>)) -> R {
        let mut table = self.table.lock().expect("MSI-X lock poisoned");
        let (result, actions) = f(&mut table);
        for action in actions {
            let r = match action {
                MsixAction::Route(v, m) => self.sink.route(v, m),
                MsixAction::Fire(v) => self.sink.fire(v),
            };
            if let Err(e) = r {
                log::warn!("MSI-X {action:?}: {e}");
            }
        }
        result
    }

    /// The device raises `vector`.
    pub fn raise(&self, vector: u16) {
        self.with_table(|t| ((), t.raise(vector).into_iter().collect()));
    }

    /// The guest wrote Message Control.
    pub fn set_control(&self, control: u16) {
        self.with_table(|t| ((), t.set_control(control)));
    }

    /// A guest read of the table.
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        self.with_table(|t| (t.read_table(offset, data), Vec::new()));
    }

    /// A guest write to the table.
    pub fn write_table(&self, offset: u64, data: &[u8]) {
        self.with_table(|t| ((), t.write_table(offset, data)));
    }

    /// A guest read of the pending-bit array.
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        self.with_table(|t| (t.read_pba(offset, data), Vec::new()));
    }

    /// Whether `vector` exists.
    pub fn has(&self, vector: u16) -> bool {
        self.table.lock().expect("MSI-X lock poisoned").has(vector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(t: &mut MsixTable, offset: u64, v: u32) -> Vec<MsixAction> {
        t.write_table(offset, &v.to_le_bytes())
    }

    fn program(t: &mut MsixTable, vector: u16, message: MsiMessage) -> Vec<MsixAction> {
        let base = u64::from(vector) * ENTRY_SIZE;
        let mut a = write(t, base, message.address_lo);
        a.extend(write(t, base + 4, message.address_hi));
        a.extend(write(t, base + 8, message.data));
        a
    }

    const MSG: MsiMessage = MsiMessage {
        address_lo: 0xfee0_0000,
        address_hi: 0,
        data: 0x4041,
    };

    #[test]
    fn the_capability_describes_the_table() {
        let t = MsixTable::new(3);
        let body = t.capability_body(0, 0x4000, 0x5000);
        assert_eq!(u16::from_le_bytes([body[0], body[1]]), 2, "size - 1");
        assert_eq!(u32::from_le_bytes(body[2..6].try_into().unwrap()), 0x4000);
        assert_eq!(u32::from_le_bytes(body[6..10].try_into().unwrap()), 0x5000);
        assert_eq!(t.table_size(), 48);
        assert_eq!(t.pba_size(), 8);
        assert_eq!(MsixTable::new(65).pba_size(), 16);
    }

    #[test]
    fn a_vector_is_routed_when_unmasked_and_rerouted_when_changed() {
        let mut t = MsixTable::new(1);
        assert_eq!(program(&mut t, 0, MSG), vec![], "masked: no route yet");
        assert_eq!(write(&mut t, 12, 0), vec![MsixAction::Route(0, MSG)]);
        assert_eq!(write(&mut t, 12, 0), vec![], "already routed");
        let moved = MsiMessage {
            data: 0x4042,
            ..MSG
        };
        assert_eq!(
            write(&mut t, 8, moved.data),
            vec![MsixAction::Route(0, moved)]
        );
        // Masked and reprogrammed to the same message: nothing to do.
        write(&mut t, 12, 1);
        assert_eq!(program(&mut t, 0, moved), vec![]);
        assert_eq!(write(&mut t, 12, 0), vec![]);
    }

    #[test]
    fn a_vector_is_held_pending_until_enabled_and_unmasked() {
        let mut t = MsixTable::new(2);
        assert_eq!(program(&mut t, 1, MSG), vec![]);
        // Disabled: pending.
        assert_eq!(t.raise(1), None);
        let mut pba = [0u8; 8];
        t.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0b10);
        // Enabled, but the vector is still masked (its reset state).
        assert_eq!(t.set_control(CONTROL_ENABLE), vec![]);
        // Unmasking routes the vector, then delivers the pending interrupt
        // and clears its bit.
        assert_eq!(
            write(&mut t, 16 + 12, 0),
            vec![MsixAction::Route(1, MSG), MsixAction::Fire(1)]
        );
        t.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0);
        // From now on it fires at once.
        assert_eq!(t.raise(1), Some(MsixAction::Fire(1)));
    }

    #[test]
    fn the_function_mask_holds_every_vector() {
        let mut t = MsixTable::new(2);
        program(&mut t, 0, MSG);
        assert_eq!(write(&mut t, 12, 0), vec![MsixAction::Route(0, MSG)]);
        t.set_control(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        assert_eq!(t.raise(0), None);
        assert_eq!(t.set_control(CONTROL_ENABLE), vec![MsixAction::Fire(0)]);
    }

    #[test]
    fn the_table_reads_back_and_unchanged_writes_route_nothing() {
        let mut t = MsixTable::new(1);
        program(&mut t, 0, MSG);
        let mut entry = [0u8; 16];
        t.read_table(0, &mut entry);
        assert_eq!(
            u32::from_le_bytes(entry[0..4].try_into().unwrap()),
            MSG.address_lo
        );
        assert_eq!(
            u32::from_le_bytes(entry[8..12].try_into().unwrap()),
            MSG.data
        );
        assert_eq!(
            u32::from_le_bytes(entry[12..16].try_into().unwrap()),
            1,
            "masked"
        );
        // A qword write of address low and high, then of data and control.
        let both = (0x1_0000_0000u64 | 0xfee0_1000).to_le_bytes();
        assert_eq!(t.write_table(0, &both), vec![]);
        let data_unmask = u64::from(MSG.data).to_le_bytes();
        assert_eq!(
            t.write_table(8, &data_unmask),
            vec![MsixAction::Route(
                0,
                MsiMessage {
                    address_lo: 0xfee0_1000,
                    address_hi: 1,
                    ..MSG
                }
            )]
        );
    }

    #[test]
    fn accesses_outside_the_table_or_of_odd_width_do_nothing() {
        let mut t = MsixTable::new(1);
        assert_eq!(write(&mut t, 16, 0), vec![]);
        assert_eq!(t.write_table(0, &[1, 2]), vec![]);
        assert_eq!(t.write_table(2, &[1, 2, 3, 4]), vec![]);
        let mut b = [0xffu8; 4];
        t.read_table(32, &mut b);
        assert_eq!(b, [0; 4]);
        assert_eq!(t.raise(7), None);
    }
}
