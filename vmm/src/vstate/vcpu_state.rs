//! A vCPU's state as text, for the dump that follows a fault: registers,
//! segments, pending events, MP state, the local APIC's main registers and
//! the TSC-deadline timer.
//!
//! The formatting is pure, so it is unit-tested without KVM; [`VcpuState`]
//! holds the lines, and `main.rs` prints them to stderr.

use kvm_bindings::{
    kvm_dtable, kvm_lapic_state, kvm_regs, kvm_segment, kvm_sregs, kvm_vcpu_events,
    KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_RUNNABLE,
    KVM_MP_STATE_SIPI_RECEIVED, KVM_MP_STATE_UNINITIALIZED, KVM_VCPUEVENT_VALID_TRIPLE_FAULT,
};

/// The vCPU's TSC and its TSC-deadline MSR, read together: whether a halted
/// vCPU's deadline has already passed tells a lost timer wake-up (passed,
/// nothing pending) from a guest that armed its timer far ahead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TscTimer {
    /// IA32_TSC.
    pub tsc: u64,
    /// IA32_TSC_DEADLINE; 0 when disarmed.
    pub deadline: u64,
}

/// The dumped state of one vCPU, one line per aspect, each starting with
/// `vcpuN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuState {
    /// The lines, without a trailing newline.
    pub lines: Vec<String>,
}

impl VcpuState {
    /// Formats what was read from vCPU `index`.
    pub fn new(
        index: u32,
        regs: &kvm_regs,
        sregs: &kvm_sregs,
        events: &kvm_vcpu_events,
        mp_state: u32,
        lapic: &kvm_lapic_state,
        timer: Option<TscTimer>,
    ) -> Self {
        let p = format!("vcpu{index}");
        VcpuState {
            lines: vec![
                format!("{p} {}", format_regs(regs)),
                format!("{p} {}", format_control(sregs)),
                format!("{p} {}", format_segments(sregs)),
                format!("{p} {}", format_events(events)),
                format!("{p} mp_state={}", mp_state_name(mp_state)),
                format!("{p} {}", format_lapic(lapic)),
                format!("{p} {}", format_tsc_timer(timer)),
            ],
        }
    }
}

fn format_regs(r: &kvm_regs) -> String {
    format!(
        "rip={:#x} rsp={:#x} rflags={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} \
         rsi={:#x} rdi={:#x} rbp={:#x} r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} \
         r13={:#x} r14={:#x} r15={:#x}",
        r.rip,
        r.rsp,
        r.rflags,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15
    )
}

fn format_dtable(name: &str, t: &kvm_dtable) -> String {
    format!("{name}={:#x}/{:#x}", t.base, t.limit)
}

fn format_control(s: &kvm_sregs) -> String {
    format!(
        "cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} cr8={:#x} efer={:#x} apic_base={:#x} {} {}",
        s.cr0,
        s.cr2,
        s.cr3,
        s.cr4,
        s.cr8,
        s.efer,
        s.apic_base,
        format_dtable("gdt", &s.gdt),
        format_dtable("idt", &s.idt)
    )
}

/// `name=selector base limit type`, with `p`resent, `l`ong, `u`nusable
/// flags, e.g. `cs=0x10/0x0/0xffffffff/t11pl`.
fn format_segment(name: &str, s: &kvm_segment) -> String {
    let mut flags = String::new();
    for (set, c) in [(s.present, 'p'), (s.l, 'l'), (s.unusable, 'u')] {
        if set != 0 {
            flags.push(c);
        }
    }
    format!(
        "{name}={:#x}/{:#x}/{:#x}/t{}{}",
        s.selector, s.base, s.limit, s.type_, flags
    )
}

fn format_segments(s: &kvm_sregs) -> String {
    [
        ("cs", &s.cs),
        ("ds", &s.ds),
        ("es", &s.es),
        ("fs", &s.fs),
        ("gs", &s.gs),
        ("ss", &s.ss),
        ("tr", &s.tr),
        ("ldt", &s.ldt),
    ]
    .iter()
    .map(|(n, seg)| format_segment(n, seg))
    .collect::<Vec<_>>()
    .join(" ")
}

fn format_events(e: &kvm_vcpu_events) -> String {
    let triple = if e.flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT != 0 {
        format!(" triple_fault_pending={}", e.triple_fault.pending)
    } else {
        String::new()
    };
    format!(
        "exception injected={} pending={} nr={} error_code={} interrupt injected={} nr={} \
         soft={} shadow={} nmi injected={} pending={} masked={} smi smm={} pending={}{triple}",
        e.exception.injected,
        e.exception.pending,
        e.exception.nr,
        if e.exception.has_error_code != 0 {
            format!("{:#x}", e.exception.error_code)
        } else {
            "none".into()
        },
        e.interrupt.injected,
        e.interrupt.nr,
        e.interrupt.soft,
        e.interrupt.shadow,
        e.nmi.injected,
        e.nmi.pending,
        e.nmi.masked,
        e.smi.smm,
        e.smi.pending
    )
}

fn mp_state_name(state: u32) -> String {
    match state {
        KVM_MP_STATE_RUNNABLE => "runnable".into(),
        KVM_MP_STATE_UNINITIALIZED => "uninitialized (waiting for INIT/SIPI)".into(),
        KVM_MP_STATE_INIT_RECEIVED => "init-received".into(),
        KVM_MP_STATE_HALTED => "halted".into(),
        KVM_MP_STATE_SIPI_RECEIVED => "sipi-received".into(),
        other => format!("{other}"),
    }
}

/// The 32-bit LAPIC register at `offset` (registers are 16 bytes apart).
fn lapic_reg(l: &kvm_lapic_state, offset: usize) -> u32 {
    let b = |i: usize| l.regs[offset + i] as u8;
    u32::from_le_bytes([b(0), b(1), b(2), b(3)])
}

/// The vectors set in the 256-bit LAPIC register array at `offset` (ISR,
/// IRR: eight 32-bit registers 16 bytes apart).
fn lapic_vectors(l: &kvm_lapic_state, offset: usize) -> String {
    let v: Vec<String> = (0..8)
        .flat_map(|word| {
            let bits = lapic_reg(l, offset + word * 0x10);
            (0..32)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| format!("{:#x}", word * 32 + bit))
        })
        .collect();
    format!("[{}]", v.join(","))
}

fn format_lapic(l: &kvm_lapic_state) -> String {
    format!(
        "lapic id={:#x} tpr={:#x} svr={:#x} isr={} irr={} esr={:#x} lvt_timer={:#x} \
         lint0={:#x} lint1={:#x} lvt_error={:#x} timer_initial={:#x} timer_current={:#x} \
         timer_divide={:#x}",
        lapic_reg(l, 0x20),
        lapic_reg(l, 0x80),
        lapic_reg(l, 0xf0),
        lapic_vectors(l, 0x100),
        lapic_vectors(l, 0x200),
        lapic_reg(l, 0x280),
        lapic_reg(l, 0x320),
        lapic_reg(l, 0x350),
        lapic_reg(l, 0x360),
        lapic_reg(l, 0x370),
        lapic_reg(l, 0x380),
        lapic_reg(l, 0x390),
        lapic_reg(l, 0x3e0)
    )
}

fn format_tsc_timer(timer: Option<TscTimer>) -> String {
    let Some(t) = timer else {
        return "tsc unreadable".into();
    };
    let when = if t.deadline == 0 {
        "disarmed".to_string()
    } else if t.deadline <= t.tsc {
        format!("passed {} cycles ago", t.tsc - t.deadline)
    } else {
        format!("due in {} cycles", t.deadline - t.tsc)
    };
    format!("tsc={:#x} tsc_deadline={:#x} ({when})", t.tsc, t.deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_reg(l: &mut kvm_lapic_state, offset: usize, value: u32) {
        for (i, b) in value.to_le_bytes().iter().enumerate() {
            l.regs[offset + i] = *b as _;
        }
    }

    #[test]
    fn lines_cover_registers_events_and_lapic() {
        let regs = kvm_regs {
            rip: 0x1000,
            rsp: 0x8ff0,
            ..Default::default()
        };
        let mut sregs = kvm_sregs {
            cr0: 0x8000_0011,
            efer: 0x500,
            ..Default::default()
        };
        sregs.cs.selector = 0x10;
        sregs.cs.present = 1;
        sregs.cs.l = 1;
        sregs.idt.limit = 0;
        let mut events = kvm_vcpu_events::default();
        events.exception.pending = 1;
        events.exception.nr = 13;
        events.exception.has_error_code = 1;
        events.exception.error_code = 0x8;
        events.flags = KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
        events.triple_fault.pending = 1;
        let mut lapic = kvm_lapic_state::default();
        set_reg(&mut lapic, 0x20, 3 << 24);
        set_reg(&mut lapic, 0x100 + 0x10, 1 << 4); // ISR vector 0x24
        set_reg(&mut lapic, 0x200 + 0x70, 1 << 31); // IRR vector 0xff
        let timer = TscTimer {
            tsc: 5000,
            deadline: 4000,
        };
        let s = VcpuState::new(
            2,
            &regs,
            &sregs,
            &events,
            KVM_MP_STATE_HALTED,
            &lapic,
            Some(timer),
        );
        assert_eq!(s.lines.len(), 7);
        assert!(s.lines.iter().all(|l| l.starts_with("vcpu2 ")));
        assert!(s.lines[0].starts_with("vcpu2 rip=0x1000 rsp=0x8ff0 "));
        assert!(s.lines[1].contains("cr0=0x80000011") && s.lines[1].contains("idt=0x0/0x0"));
        assert!(
            s.lines[2].starts_with("vcpu2 cs=0x10/0x0/0x0/t0pl "),
            "{}",
            s.lines[2]
        );
        assert!(
            s.lines[3].contains("exception injected=0 pending=1 nr=13 error_code=0x8")
                && s.lines[3].ends_with("triple_fault_pending=1"),
            "{}",
            s.lines[3]
        );
        assert_eq!(s.lines[4], "vcpu2 mp_state=halted");
        assert!(
            s.lines[5].contains("lapic id=0x3000000 ")
                && s.lines[5].contains("isr=[0x24]")
                && s.lines[5].contains("irr=[0xff]"),
            "{}",
            s.lines[5]
        );
        assert_eq!(
            s.lines[6],
            "vcpu2 tsc=0x1388 tsc_deadline=0xfa0 (passed 1000 cycles ago)"
        );
    }

    #[test]
    fn tsc_timer_says_when_the_deadline_is() {
        let at = |tsc, deadline| format_tsc_timer(Some(TscTimer { tsc, deadline }));
        assert_eq!(at(10, 0), "tsc=0xa tsc_deadline=0x0 (disarmed)");
        assert_eq!(at(10, 25), "tsc=0xa tsc_deadline=0x19 (due in 15 cycles)");
        assert_eq!(at(10, 10), "tsc=0xa tsc_deadline=0xa (passed 0 cycles ago)");
        assert_eq!(format_tsc_timer(None), "tsc unreadable");
    }
}
