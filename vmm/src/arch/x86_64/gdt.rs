//! The boot-time Global Descriptor Table and its conversion to KVM segment
//! registers.
//!
//! A descriptor is the 8-byte x86 segment descriptor: limit 15:0 in bits
//! 15:0, base 23:0 in bits 39:16, access byte in 47:40, limit 19:16 in
//! 51:48, flags (AVL, L, D/B, G) in 55:52 and base 31:24 in 63:56.

use kvm_bindings::kvm_segment;

/// Access byte + flags of a 64-bit code segment (present, ring 0, execute /
/// read, L=1, G=1).
pub const CODE64_FLAGS: u16 = 0xa09b;
/// Access byte + flags of a data segment (present, ring 0, read / write,
/// D/B=1, G=1).
pub const DATA_FLAGS: u16 = 0xc093;
/// Access byte + flags of a busy 64-bit TSS.
pub const TSS_FLAGS: u16 = 0x808b;

/// Index of the code segment in [`boot_gdt`].
pub const CODE_INDEX: u16 = 1;
/// Index of the data segment in [`boot_gdt`].
pub const DATA_INDEX: u16 = 2;
/// Index of the TSS in [`boot_gdt`].
pub const TSS_INDEX: u16 = 3;

/// Encodes a segment descriptor. `flags` holds the access byte in bits 7:0
/// and the AVL/L/D/G nibble in bits 15:12.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// The boot GDT: null, 64-bit code, data, TSS.
pub fn boot_gdt() -> [u64; 4] {
    [
        0,
        gdt_entry(CODE64_FLAGS, 0, 0xfffff),
        gdt_entry(DATA_FLAGS, 0, 0xfffff),
        gdt_entry(TSS_FLAGS, 0, 0xfffff),
    ]
}

fn base(entry: u64) -> u64 {
    ((entry >> 32) & 0xff00_0000) | ((entry >> 16) & 0x00ff_ffff)
}

fn limit(entry: u64) -> u32 {
    let raw = (((entry >> 32) & 0x000f_0000) | (entry & 0xffff)) as u32;
    // With G=1 the limit counts 4 KiB units; KVM wants it in bytes.
    if (entry >> 55) & 1 == 1 {
        (raw << 12) | 0xfff
    } else {
        raw
    }
}

/// Converts the descriptor at `index` to the KVM segment register it loads.
pub fn kvm_segment_from_gdt(entry: u64, index: u16) -> kvm_segment {
    let present = ((entry >> 47) & 1) as u8;
    kvm_segment {
        base: base(entry),
        limit: limit(entry),
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 0x3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: ((entry >> 55) & 1) as u8,
        avl: ((entry >> 52) & 1) as u8,
        unusable: if present == 1 { 0 } else { 1 },
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        // The flat 64-bit code and data descriptors every x86 boot uses.
        assert_eq!(gdt_entry(CODE64_FLAGS, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(DATA_FLAGS, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        assert_eq!(gdt_entry(TSS_FLAGS, 0, 0xfffff), 0x008f_8b00_0000_ffff);
    }

    #[test]
    fn round_trip_base_and_limit() {
        let e = gdt_entry(0x0093, 0x1234_5678, 0xabcde);
        let s = kvm_segment_from_gdt(e, 5);
        assert_eq!(s.base, 0x1234_5678);
        assert_eq!(s.limit, 0xabcde); // G=0: byte granular
        assert_eq!(s.selector, 40);
        assert_eq!(s.type_, 3);
        assert_eq!(s.present, 1);
        assert_eq!(s.s, 1);
        assert_eq!(s.g, 0);
    }

    #[test]
    fn code_segment_fields() {
        let gdt = boot_gdt();
        let cs = kvm_segment_from_gdt(gdt[CODE_INDEX as usize], CODE_INDEX);
        assert_eq!(cs.selector, 0x8);
        assert_eq!(
            (cs.l, cs.db, cs.g, cs.present, cs.dpl, cs.s),
            (1, 0, 1, 1, 0, 1)
        );
        assert_eq!(cs.type_, 0xb);
        assert_eq!(cs.limit, 0xffff_ffff);
        let ds = kvm_segment_from_gdt(gdt[DATA_INDEX as usize], DATA_INDEX);
        assert_eq!((ds.selector, ds.l, ds.db, ds.type_), (0x10, 0, 1, 3));
        let tss = kvm_segment_from_gdt(gdt[TSS_INDEX as usize], TSS_INDEX);
        assert_eq!((tss.selector, tss.s, tss.type_), (0x18, 0, 0xb));
        let null = kvm_segment_from_gdt(gdt[0], 0);
        assert_eq!(null.unusable, 1);
    }
}
