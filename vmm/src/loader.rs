//! Putting the guest's boot payload into guest memory: the kernel (ELF
//! vmlinux or bzImage, through linux-loader), the initramfs, the command
//! line, the zero page, the ACPI tables, the MP table, the boot GDT and page
//! tables.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::{bzimage::BzImage, elf::Elf, load_cmdline, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::bootparams::{self, Initrd};
use crate::arch::x86_64::layout::{
    self, CMDLINE_MAX_SIZE, CMDLINE_START, HIMEM_START, MPTABLE_START, ZERO_PAGE_START,
};
use crate::arch::x86_64::{acpi, e820, mptable, regs};
use crate::config::VmConfig;

/// Offset of the 64-bit entry point (`startup_64`) from the start of a
/// bzImage's protected-mode code.
pub const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// Errors loading the boot payload.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The kernel image cannot be opened or read.
    #[error("cannot read kernel image {path}")]
    KernelFile {
        /// The image path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel image is neither ELF nor bzImage.
    #[error("kernel image {0} is neither an ELF vmlinux nor a bzImage")]
    UnknownKernelFormat(PathBuf),
    /// The kernel image is shorter than its own headers say.
    #[error(
        "kernel image {path} is truncated or corrupt: {size} bytes, its headers need {needed}"
    )]
    TruncatedKernel {
        /// The image path.
        path: PathBuf,
        /// The file's size.
        size: u64,
        /// The size its headers describe.
        needed: u64,
    },
    /// linux-loader rejected the kernel image.
    #[error("cannot load kernel image {path}")]
    LoadKernel {
        /// The image path.
        path: PathBuf,
        /// The loader's error.
        #[source]
        source: linux_loader::loader::Error,
    },
    /// The command line is invalid or too long.
    #[error("invalid kernel command line")]
    Cmdline(#[source] linux_loader::cmdline::Error),
    /// The command line is longer than the kernel accepts.
    #[error("the kernel command line is {len} bytes; this kernel accepts at most {max}")]
    CmdlineTooLong {
        /// Length including the NUL.
        len: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// Writing the command line failed.
    #[error("cannot write the kernel command line")]
    LoadCmdline(#[source] linux_loader::loader::Error),
    /// The initramfs cannot be read.
    #[error("cannot read initramfs {path}")]
    InitrdFile {
        /// The initramfs path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The initramfs does not fit.
    #[error("initramfs {path} ({size} bytes) does not fit in guest memory above the kernel")]
    InitrdTooLarge {
        /// The initramfs path.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Writing boot structures to guest memory failed.
    #[error("cannot write the {0} to guest memory")]
    WriteGuestMemory(&'static str, #[source] vm_memory::GuestMemoryError),
    /// The zero page could not be built.
    #[error(transparent)]
    BootParams(#[from] bootparams::BootParamsError),
    /// The MP table could not be built.
    #[error(transparent)]
    Mptable(#[from] mptable::MptableError),
    /// The ACPI tables could not be built.
    #[error(transparent)]
    Acpi(#[from] acpi::AcpiError),
    /// The GDT or page tables could not be written.
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
}

/// The kernel image formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// ELF vmlinux.
    Elf,
    /// bzImage.
    BzImage,
}

/// Identifies the kernel format from the image's first bytes: the ELF magic,
/// or the "HdrS" setup header magic at 0x202.
pub fn kernel_format(head: &[u8]) -> Option<KernelFormat> {
    if head.starts_with(b"\x7fELF") {
        Some(KernelFormat::Elf)
    } else if head.get(0x202..0x206) == Some(b"HdrS") {
        Some(KernelFormat::BzImage)
    } else {
        None
    }
}

/// How many bytes an image with these first bytes must have, from its own
/// headers: for a bzImage the setup sectors plus `syssize` paragraphs; for
/// an ELF the end of its last loadable segment in the file (program headers
/// must lie within `head`). `None` if the headers cannot tell.
pub fn expected_image_size(head: &[u8], format: KernelFormat) -> Option<u64> {
    let u16_at = |o: usize| {
        head.get(o..o + 2)
            .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let u64_at = |o: usize| {
        head.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    match format {
        KernelFormat::BzImage => {
            let version = u16_at(0x206)?;
            if version < 0x0204 {
                return None; // syssize is only 32-bit from protocol 2.04
            }
            let setup_sects = match *head.get(0x1f1)? {
                0 => 4,
                n => u64::from(n),
            };
            Some((setup_sects + 1) * 512 + u32_at(0x1f4)? * 16)
        }
        KernelFormat::Elf => {
            const PT_LOAD: u64 = 1;
            let phoff = u64_at(0x20)? as usize;
            let phentsize = u16_at(0x36)? as usize;
            let phnum = u16_at(0x38)? as usize;
            let mut end = (phoff + phentsize * phnum) as u64;
            for i in 0..phnum {
                let ph = phoff + i * phentsize;
                if u32_at(ph)? == PT_LOAD {
                    end = end.max(u64_at(ph + 8)? + u64_at(ph + 0x20)?);
                }
            }
            Some(end)
        }
    }
}

/// Opens the kernel image, identifies its format and checks it is complete,
/// before any resource (guest memory, a critmem slice) is allocated for it.
pub fn check_kernel(path: &Path) -> Result<KernelFormat, LoaderError> {
    let file_err = |source| LoaderError::KernelFile {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(file_err)?;
    let size = f.metadata().map_err(file_err)?.len();
    let mut head = Vec::with_capacity(0x10000);
    f.by_ref()
        .take(0x10000)
        .read_to_end(&mut head)
        .map_err(file_err)?;
    let format =
        kernel_format(&head).ok_or_else(|| LoaderError::UnknownKernelFormat(path.to_path_buf()))?;
    if let Some(needed) = expected_image_size(&head, format) {
        if size < needed {
            return Err(LoaderError::TruncatedKernel {
                path: path.to_path_buf(),
                size,
                needed,
            });
        }
    }
    Ok(format)
}

/// Checks that the initramfs (if any) can be read.
pub fn check_initrd(path: Option<&Path>) -> Result<(), LoaderError> {
    if let Some(p) = path {
        File::open(p).map_err(|source| LoaderError::InitrdFile {
            path: p.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Where to put an initramfs of `size` bytes: page-aligned, as high as
/// possible below both the end of low RAM and the kernel's `addr_max`
/// (inclusive), and above `kernel_end`.
pub fn initrd_address(size: u64, low_ram_end: u64, addr_max: u64, kernel_end: u64) -> Option<u64> {
    let limit = low_ram_end.min(addr_max.saturating_add(1));
    let addr = limit.checked_sub(size)? & !0xfff;
    (addr >= kernel_end).then_some(addr)
}

/// Loads everything the boot vCPU needs and returns its entry point.
pub fn load_boot_payload(
    mem: &GuestMemoryMmap,
    config: &VmConfig,
    mem_size: u64,
) -> Result<u64, LoaderError> {
    let path = &config.kernel;
    let format = check_kernel(path)?;
    let mut kernel = File::open(path).map_err(|source| LoaderError::KernelFile {
        path: path.clone(),
        source,
    })?;
    let load_err = |source| LoaderError::LoadKernel {
        path: path.clone(),
        source,
    };
    let result = match format {
        KernelFormat::Elf => Elf::load(mem, None, &mut kernel, Some(GuestAddress(HIMEM_START))),
        KernelFormat::BzImage => {
            BzImage::load(mem, None, &mut kernel, Some(GuestAddress(HIMEM_START)))
        }
    }
    .map_err(load_err)?;
    let entry = match format {
        KernelFormat::Elf => result.kernel_load.0,
        KernelFormat::BzImage => result.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
    };
    log::debug!(
        "kernel: {format:?} loaded at 0x{:x}, ends 0x{:x}, entry 0x{entry:x}",
        result.kernel_load.0,
        result.kernel_end
    );

    // Command line.
    let cmdline =
        Cmdline::try_from(&config.cmdline, CMDLINE_MAX_SIZE).map_err(LoaderError::Cmdline)?;
    let cmdline_len = cmdline
        .as_cstring()
        .map_err(LoaderError::Cmdline)?
        .as_bytes_with_nul()
        .len();
    if let Some(h) = result.setup_header.as_ref() {
        let max = h.cmdline_size as usize;
        if h.version >= 0x0206 && max != 0 && cmdline_len > max + 1 {
            return Err(LoaderError::CmdlineTooLong {
                len: cmdline_len,
                max,
            });
        }
    }
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cmdline).map_err(LoaderError::LoadCmdline)?;

    // Initramfs.
    let initrd = match config.initramfs.as_deref() {
        None => None,
        Some(p) => {
            let file_err = |source| LoaderError::InitrdFile {
                path: p.to_path_buf(),
                source,
            };
            let data = std::fs::read(p).map_err(file_err)?;
            let size = data.len() as u64;
            let addr = initrd_address(
                size,
                layout::low_ram_end(mem_size),
                bootparams::initrd_addr_max(result.setup_header.as_ref()),
                result.kernel_end,
            )
            .ok_or_else(|| LoaderError::InitrdTooLarge {
                path: p.to_path_buf(),
                size,
            })?;
            mem.write_slice(&data, GuestAddress(addr))
                .map_err(|e| LoaderError::WriteGuestMemory("initramfs", e))?;
            log::debug!("initramfs: {size} bytes at 0x{addr:x}");
            Some(Initrd { addr, size })
        }
    };

    // ACPI tables, for kernels that read them (every distribution kernel),
    // and the MP table below, for kernels without ACPI or booted acpi=off.
    let acpi = acpi::build_acpi_tables(config.cpus)?;
    mem.write_slice(&acpi.bytes, GuestAddress(acpi.start))
        .map_err(|e| LoaderError::WriteGuestMemory("ACPI tables", e))?;

    // Zero page.
    let params = bootparams::build_boot_params(
        result.setup_header,
        cmdline_len,
        initrd,
        &e820::e820_map(mem_size),
        acpi.rsdp_address(),
    )?;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_START))
        .map_err(|e| LoaderError::WriteGuestMemory("zero page", e))?;

    // MP table.
    let table = mptable::build_mptable(config.cpus)?;
    mem.write_slice(&table, GuestAddress(MPTABLE_START))
        .map_err(|e| LoaderError::WriteGuestMemory("MP table", e))?;

    // Boot GDT and page tables.
    regs::write_gdt(mem)?;
    regs::write_page_tables(mem)?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_magic() {
        assert_eq!(kernel_format(b"\x7fELF\x02\x01"), Some(KernelFormat::Elf));
        let mut bz = vec![0u8; 0x400];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(kernel_format(&bz), Some(KernelFormat::BzImage));
        assert_eq!(kernel_format(b"garbage"), None);
        assert_eq!(kernel_format(&vec![0u8; 0x400]), None);
    }

    #[test]
    fn missing_and_corrupt_kernels() {
        let e = check_kernel(Path::new("/nonexistent/bzImage")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot read kernel image /nonexistent/bzImage"));
        let p = std::env::temp_dir().join(format!("vmm-corrupt-kernel-{}", std::process::id()));
        std::fs::write(&p, vec![0x5a; 4096]).unwrap();
        let e = check_kernel(&p).unwrap_err();
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(e, LoaderError::UnknownKernelFormat(_)));
        assert!(e
            .to_string()
            .contains("neither an ELF vmlinux nor a bzImage"));
    }

    #[test]
    fn bzimage_size_from_its_header() {
        let mut bz = vec![0u8; 0x400];
        bz[0x1f1] = 27; // setup sectors
        bz[0x1f4..0x1f8].copy_from_slice(&0x1000u32.to_le_bytes()); // syssize
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        assert_eq!(
            expected_image_size(&bz, KernelFormat::BzImage),
            Some(28 * 512 + 0x10000)
        );
        bz[0x1f1] = 0;
        assert_eq!(
            expected_image_size(&bz, KernelFormat::BzImage),
            Some(5 * 512 + 0x10000)
        );
        bz[0x206..0x208].copy_from_slice(&0x0203u16.to_le_bytes());
        assert_eq!(expected_image_size(&bz, KernelFormat::BzImage), None);
    }

    #[test]
    fn elf_size_from_its_program_headers() {
        let mut elf = vec![0u8; 0x200];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes()); // phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes()); // phnum
        for (i, (ty, off, filesz)) in [(1u32, 0x1000u64, 0x5000u64), (4, 0x90000, 0x10)]
            .iter()
            .enumerate()
        {
            let ph = 0x40 + i * 56;
            elf[ph..ph + 4].copy_from_slice(&ty.to_le_bytes());
            elf[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            elf[ph + 0x20..ph + 0x28].copy_from_slice(&filesz.to_le_bytes());
        }
        // Only PT_LOAD segments count.
        assert_eq!(expected_image_size(&elf, KernelFormat::Elf), Some(0x6000));
    }

    #[test]
    fn truncated_kernel_is_refused_before_loading() {
        let mut bz = vec![0u8; 0x1000];
        bz[0x1f1] = 4;
        bz[0x1f4..0x1f8].copy_from_slice(&0x100u32.to_le_bytes());
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        let p = std::env::temp_dir().join(format!("vmm-truncated-{}", std::process::id()));
        std::fs::write(&p, &bz).unwrap();
        let e = check_kernel(&p).unwrap_err();
        std::fs::remove_file(&p).unwrap();
        assert!(
            matches!(
                e,
                LoaderError::TruncatedKernel {
                    size: 0x1000,
                    needed: 0x1a00,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn initrd_goes_high_and_page_aligned() {
        let mb = 1 << 20;
        assert_eq!(
            initrd_address(0x1234, 512 * mb, 0x7fff_ffff, 20 * mb),
            Some((512 * mb - 0x1234) & !0xfff)
        );
        // Capped by initrd_addr_max (inclusive).
        assert_eq!(
            initrd_address(mb, 3 << 30, 0x7fff_ffff, 20 * mb),
            Some(0x8000_0000 - mb)
        );
        // Does not fit above the kernel.
        assert_eq!(initrd_address(40 * mb, 50 * mb, 0x7fff_ffff, 20 * mb), None);
        assert_eq!(initrd_address(100 * mb, 50 * mb, 0x7fff_ffff, 0), None);
    }

    #[test]
    fn boot_payload_for_a_fake_elf_is_refused_cleanly() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let p = std::env::temp_dir().join(format!("vmm-fake-elf-{}", std::process::id()));
        let mut bytes = b"\x7fELF".to_vec();
        bytes.resize(256, 0);
        std::fs::write(&p, bytes).unwrap();
        let cfg = VmConfig::new(&p);
        let e = load_boot_payload(&mem, &cfg, 64 << 20).unwrap_err();
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(e, LoaderError::LoadKernel { .. }), "{e:?}");
    }
}
