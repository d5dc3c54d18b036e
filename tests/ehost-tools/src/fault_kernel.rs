//! `cmtool fault-kernel --out FILE`: writes a tiny ELF "kernel" that makes
//! the vCPU triple-fault on purpose, for the test of `vmm`'s fault exit
//! status and state dump (`tests/scenarios/vmm/triple-fault.sh`).
//!
//! `vmm` enters an ELF kernel in 64-bit mode at its entry point. This one
//! loads an empty IDT (limit 0) and executes `ud2`: the #UD cannot be
//! delivered (#GP), nor can the #GP (#DF), nor the #DF, so the CPU shuts
//! down, which KVM reports as `KVM_EXIT_SHUTDOWN`. The faulting `ud2` is at
//! [`UD2_ADDRESS`].

use std::fs;

/// Where the code is loaded and entered: 1 MiB, where `vmm` loads kernels.
pub const LOAD_ADDRESS: u64 = 0x10_0000;
/// The address of the `ud2`, after the 7-byte `lidt`.
pub const UD2_ADDRESS: u64 = LOAD_ADDRESS + 7;

/// `lidt [rip + 2]`, `ud2`, then the IDT register image: limit 0, base 0.
const CODE: [u8; 19] = [
    0x0f, 0x01, 0x1d, 0x02, 0x00, 0x00, 0x00, // lidt [rip+2]
    0x0f, 0x0b, // ud2
    0x00, 0x00, // idtr.limit
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // idtr.base
];

const EHDR_SIZE: u16 = 64;
const PHDR_SIZE: u16 = 56;

/// The ELF64 executable: header, one PT_LOAD program header, the code.
pub fn image() -> Vec<u8> {
    let code_offset = u64::from(EHDR_SIZE + PHDR_SIZE);
    let mut f = Vec::new();
    // e_ident: magic, 64-bit, little endian, version 1, System V ABI.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine: EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&LOAD_ADDRESS.to_le_bytes()); // e_entry
    f.extend_from_slice(&u64::from(EHDR_SIZE).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&EHDR_SIZE.to_le_bytes());
    f.extend_from_slice(&PHDR_SIZE.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
                                              // The program header.
    f.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R+X
    f.extend_from_slice(&code_offset.to_le_bytes()); // p_offset
    f.extend_from_slice(&LOAD_ADDRESS.to_le_bytes()); // p_vaddr
    f.extend_from_slice(&LOAD_ADDRESS.to_le_bytes()); // p_paddr
    f.extend_from_slice(&(CODE.len() as u64).to_le_bytes()); // p_filesz
    f.extend_from_slice(&(CODE.len() as u64).to_le_bytes()); // p_memsz
    f.extend_from_slice(&1u64.to_le_bytes()); // p_align
    f.extend_from_slice(&CODE);
    f
}

pub fn run(out: &str) -> Result<(), String> {
    fs::write(out, image()).map_err(|e| format!("write {out}: {e}"))?;
    println!("fault_kernel={out} ud2_rip={UD2_ADDRESS:#x}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn the_image_is_an_elf64_executable_loading_the_code_at_1_mib() {
        let img = image();
        assert_eq!(&img[..4], b"\x7fELF");
        assert_eq!(img[4], 2, "64-bit");
        assert_eq!(u64_at(&img, 24), LOAD_ADDRESS, "e_entry");
        assert_eq!(u64_at(&img, 32), 64, "e_phoff");
        let ph = 64;
        assert_eq!(
            u32::from_le_bytes(img[ph..ph + 4].try_into().unwrap()),
            1,
            "PT_LOAD"
        );
        let offset = u64_at(&img, ph + 8) as usize;
        assert_eq!(u64_at(&img, ph + 24), LOAD_ADDRESS, "p_paddr");
        assert_eq!(u64_at(&img, ph + 32), CODE.len() as u64, "p_filesz");
        assert_eq!(&img[offset..], &CODE);
        assert_eq!(img.len(), offset + CODE.len());
        // The lidt operand is the 10 bytes after the ud2.
        assert_eq!(&CODE[7..9], &[0x0f, 0x0b], "ud2 at UD2_ADDRESS");
        assert_eq!(CODE.len() - 9, 10, "limit and base of the IDT register");
    }
}
