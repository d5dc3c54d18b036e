//! The Linux zero page (`struct boot_params`): setup header, command line,
//! initramfs and e820 map, as described in the kernel's
//! Documentation/arch/x86/boot.rst.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};

use super::e820::E820Entry;
use super::layout::CMDLINE_START;

/// `boot_flag` value every setup header carries.
pub const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header` value: "HdrS".
pub const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// `type_of_loader` for a loader without an assigned ID.
pub const KERNEL_LOADER_OTHER: u8 = 0xff;
/// Default physical alignment of a relocatable kernel (16 MiB).
pub const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;
/// Highest initramfs address a kernel without a setup header accepts.
pub const DEFAULT_INITRD_ADDR_MAX: u64 = 0x7fff_ffff;

/// Errors building the zero page.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootParamsError {
    /// The e820 map has more entries than `boot_params` can hold.
    #[error("the e820 map has {0} entries, more than the zero page holds")]
    TooManyE820Entries(usize),
}

/// Where the initramfs was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Initrd {
    /// Guest-physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Builds the zero page.
///
/// `header` is the bzImage's setup header as the loader read it, or `None`
/// for an ELF vmlinux, which has none: then a minimal header is made up.
/// `cmdline_len` is the command line's length including its NUL; `rsdp` is
/// the guest address of the ACPI RSDP.
pub fn build_boot_params(
    header: Option<setup_header>,
    cmdline_len: usize,
    initrd: Option<Initrd>,
    e820: &[E820Entry],
    rsdp: u64,
) -> Result<boot_params, BootParamsError> {
    let mut params = boot_params {
        acpi_rsdp_addr: rsdp,
        ..Default::default()
    };
    match header {
        Some(h) => params.hdr = h,
        None => {
            params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
            params.hdr.header = KERNEL_HDR_MAGIC;
            params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
        }
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(rd) = initrd {
        params.hdr.ramdisk_image = rd.addr as u32;
        params.hdr.ramdisk_size = rd.size as u32;
    }
    if e820.len() > params.e820_table.len() {
        return Err(BootParamsError::TooManyE820Entries(e820.len()));
    }
    for (slot, e) in params.e820_table.iter_mut().zip(e820) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind,
        };
    }
    params.e820_entries = e820.len() as u8;
    Ok(params)
}

/// Highest initramfs address the kernel accepts, from its setup header.
pub fn initrd_addr_max(header: Option<&setup_header>) -> u64 {
    match header {
        Some(h) if h.version >= 0x0203 && h.initrd_addr_max != 0 => u64::from(h.initrd_addr_max),
        _ => DEFAULT_INITRD_ADDR_MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::e820::e820_map;

    #[test]
    fn vmlinux_gets_a_made_up_header() {
        let e820 = e820_map(256 << 20);
        let p = build_boot_params(None, 30, None, &e820, 0xe0000).unwrap();
        let hdr = p.hdr;
        assert_eq!({ hdr.boot_flag }, KERNEL_BOOT_FLAG_MAGIC);
        assert_eq!({ hdr.header }, KERNEL_HDR_MAGIC);
        assert_eq!({ hdr.type_of_loader }, KERNEL_LOADER_OTHER);
        assert_eq!({ hdr.cmd_line_ptr }, CMDLINE_START as u32);
        assert_eq!({ hdr.cmdline_size }, 30);
        assert_eq!({ hdr.ramdisk_image }, 0);
        assert_eq!({ p.acpi_rsdp_addr }, 0xe0000);
        assert_eq!({ p.e820_entries }, 3);
        let last = p.e820_table[2];
        assert_eq!({ last.addr }, 0x100000);
        assert_eq!({ last.size }, (256 << 20) - 0x100000);
        assert_eq!({ last.r#type }, 1);
    }

    #[test]
    fn bzimage_header_is_kept_and_completed() {
        let mut h = setup_header {
            boot_flag: KERNEL_BOOT_FLAG_MAGIC,
            header: KERNEL_HDR_MAGIC,
            version: 0x020f,
            initrd_addr_max: 0x7fff_ffff,
            setup_sects: 27,
            ..Default::default()
        };
        let rd = Initrd {
            addr: 0x1f00_0000,
            size: 0x12345,
        };
        let p = build_boot_params(Some(h), 100, Some(rd), &e820_map(1 << 30), 0xe0000).unwrap();
        let hdr = p.hdr;
        assert_eq!({ hdr.setup_sects }, 27);
        assert_eq!({ hdr.version }, 0x020f);
        assert_eq!({ hdr.ramdisk_image }, 0x1f00_0000);
        assert_eq!({ hdr.ramdisk_size }, 0x12345);
        assert_eq!({ hdr.type_of_loader }, KERNEL_LOADER_OTHER);
        assert_eq!(initrd_addr_max(Some(&h)), 0x7fff_ffff);
        h.version = 0x0202;
        assert_eq!(initrd_addr_max(Some(&h)), DEFAULT_INITRD_ADDR_MAX);
        assert_eq!(initrd_addr_max(None), DEFAULT_INITRD_ADDR_MAX);
    }

    #[test]
    fn too_many_e820_entries_are_refused() {
        let e = E820Entry {
            addr: 0,
            size: 1,
            kind: 1,
        };
        let many = vec![e; 200];
        assert_eq!(
            build_boot_params(None, 1, None, &many, 0),
            Err(BootParamsError::TooManyE820Entries(200))
        );
    }
}
