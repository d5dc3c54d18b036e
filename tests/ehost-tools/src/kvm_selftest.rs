//! `cmtool kvm-selftest`: proves that /dev/kvm runs a guest.
//!
//! A one-page real-mode guest copies a NUL-terminated string from its memory
//! to the serial port and halts. The host writes a fresh nonce into guest
//! memory first, so the bytes seen on the port can only come from guest
//! execution, not from anything precomputed.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};
use std::ptr::NonNull;
use std::time::{SystemTime, UNIX_EPOCH};

const MEM_SIZE: usize = 0x10000;
const CODE_GPA: u64 = 0x1000;
const TEXT_GPA: u64 = 0x1010;
const SERIAL_PORT: u16 = 0x3f8;

/// mov dx,0x3f8; mov si,0x1010; loop: lodsb; test al,al; jz done;
/// out dx,al; jmp loop; done: hlt
const GUEST_CODE: [u8; 15] = [
    0xba, 0xf8, 0x03, 0xbe, 0x10, 0x10, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xf4,
];

/// Anonymous memory that backs the guest, unmapped on drop.
///
/// # Invariants
/// `ptr` is the start of a live private anonymous mapping of `MEM_SIZE` bytes.
struct GuestRam {
    ptr: NonNull<u8>,
}

impl GuestRam {
    fn new() -> Result<Self, String> {
        // SAFETY: a fresh anonymous mapping touches no existing memory; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEM_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast()).ok_or("mmap returned null")?;
        Ok(GuestRam { ptr })
    }

    fn write(&mut self, gpa: u64, bytes: &[u8]) {
        let off = gpa as usize;
        assert!(off + bytes.len() <= MEM_SIZE);
        // SAFETY: the range [off, off + len) lies inside the mapping (checked
        // above) and `&mut self` excludes other Rust references into it.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(off), bytes.len())
        };
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this is our own live mapping, and the
        // VM that used it has been dropped before (field order in `run`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), MEM_SIZE) };
    }
}

pub fn run() -> Result<(), String> {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .subsec_nanos()
        ^ std::process::id();
    let text = format!("guest-nonce-{nonce:08x}");

    let mut ram = GuestRam::new()?;
    ram.write(CODE_GPA, &GUEST_CODE);
    let mut z = text.clone().into_bytes();
    z.push(0);
    ram.write(TEXT_GPA, &z);

    let kvm = Kvm::new().map_err(|e| format!("open /dev/kvm: {e}"))?;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM_SIZE as u64,
        userspace_addr: ram.ptr.as_ptr() as u64,
        flags: 0,
    };
    // SAFETY: the region describes `ram`, which stays mapped until after `vm`
    // is dropped at the end of this function.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    sregs.ds.base = 0;
    sregs.ds.selector = 0;
    vcpu.set_sregs(&sregs)
        .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
    let mut regs = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
    regs.rip = CODE_GPA;
    regs.rflags = 2;
    vcpu.set_regs(&regs)
        .map_err(|e| format!("KVM_SET_REGS: {e}"))?;

    let mut seen = Vec::new();
    for _ in 0..10_000 {
        match vcpu.run().map_err(|e| format!("KVM_RUN: {e}"))? {
            VcpuExit::IoOut(SERIAL_PORT, data) => seen.extend_from_slice(data),
            VcpuExit::Hlt => {
                let got = String::from_utf8_lossy(&seen);
                println!("kvm-selftest: guest wrote '{got}' to port 0x3f8 and halted");
                return if got == text {
                    println!("kvm-selftest: ok");
                    Ok(())
                } else {
                    Err(format!("guest wrote '{got}', expected '{text}'"))
                };
            }
            other => return Err(format!("unexpected vCPU exit: {other:?}")),
        }
    }
    Err("guest did not halt within 10000 exits".into())
}
