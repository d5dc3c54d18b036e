//! Bad input: each case is refused with a clear error (exit status 2) and
//! leaves every file of the tree as it was (checked by `Tree::fails`).

mod common;

use common::*;

fn refuse(tree: &Tree, args: &[&str], want: &str) {
    for cmd in ["plan", "apply"] {
        let mut a = vec![cmd];
        a.extend_from_slice(args);
        let err = tree.fails(&a);
        assert!(
            err.contains(want),
            "critmem-boot {a:?}: error\n{err}\ndoes not contain\n{want}"
        );
    }
}

#[test]
fn malformed_sizes() {
    let t = debian("bad-size");
    refuse(&t, &["--size", "16Q"], "invalid --size: malformed size '16Q': expected a number with an optional K, M, G or T suffix");
    refuse(
        &t,
        &["--size", "1.5G"],
        "invalid --size: malformed size '1.5G'",
    );
    refuse(
        &t,
        &["--size", "lots"],
        "invalid --size: malformed size 'lots'",
    );
    refuse(&t, &["--size", ""], "invalid --size: empty size");
    refuse(&t, &["--size", "0"], "the pool size must not be zero");
    refuse(
        &t,
        &["--size", "1000"],
        "invalid --size 1000: the pool size must be a multiple of 4 KiB",
    );
    refuse(
        &t,
        &["--size", "99999999999T"],
        "invalid --size: size '99999999999T' is too large",
    );
}

#[test]
fn size_larger_than_ram() {
    let t = debian("bad-big");
    refuse(
        &t,
        &["--size", "128G"],
        "invalid --size: 128 GiB is larger than this machine's RAM (62.80 GiB)",
    );
    // --force does not allow it either.
    refuse(
        &t,
        &["--size", "128G", "--force"],
        "is larger than this machine's RAM",
    );
}

#[test]
fn size_below_safe_minimum_needs_force() {
    let t = debian("bad-min");
    refuse(
        &t,
        &["--size", "60G"],
        "--size 60 GiB leaves the host 2.80 GiB of its 62.80 GiB RAM, less than the safe minimum of 6.28 GiB (max(2 GiB, 10% of RAM)); pass --force to do it anyway",
    );
    let out = t.ok(&["apply", "--size", "60G", "--force"]);
    assert!(out.contains("reserve_mem=60G:1G:critmem"), "{out}");
}

#[test]
fn bad_alignments() {
    let t = debian("bad-align");
    refuse(
        &t,
        &["--size", "16G", "--align", "3G"],
        "invalid --align 3G: the alignment must be a power of two (such as 2M or 1G)",
    );
    refuse(
        &t,
        &["--size", "16G", "--align", "12345"],
        "invalid --align 12345: the alignment must be a power of two",
    );
    refuse(
        &t,
        &["--size", "16G", "--align", "1K"],
        "invalid --align 1K: the alignment must be at least 4K",
    );
    refuse(
        &t,
        &["--size", "16G", "--align", "x"],
        "invalid --align: malformed alignment 'x'",
    );
    refuse(
        &t,
        &[
            "--size", "4G", "--mode", "memmap", "--base", "4G", "--align", "1G",
        ],
        "--align applies to reserve mode only",
    );
}

#[test]
fn base_outside_ram() {
    let t = debian("bad-base");
    // In the PCI hole between 3 GiB and 4 GiB.
    refuse(
        &t,
        &["--size", "1G", "--mode", "memmap", "--base", "0xc0000000"],
        "invalid --base: the range 0xc0000000-0xffffffff is not inside System RAM according to /sys/firmware/memmap (RAM ranges: 0x0-0x9fbff, 0x100000-0xbfffffff, 0x100000000-0x103fffffff)",
    );
    // Straddling the end of RAM.
    refuse(
        &t,
        &["--size", "2G", "--mode", "memmap", "--base", "0x1000000000"],
        "the range 0x1000000000-0x107fffffff is not inside System RAM",
    );
    // Far beyond RAM.
    refuse(
        &t,
        &["--size", "1G", "--mode", "memmap", "--base", "1T"],
        "is not inside System RAM",
    );
    refuse(
        &t,
        &["--size", "1G", "--mode", "memmap", "--base", "0x40000800"],
        "invalid --base 0x40000800: the base must be a multiple of 4 KiB",
    );
    refuse(
        &t,
        &["--size", "1G", "--mode", "memmap"],
        "memmap mode needs --base ADDR",
    );
    refuse(
        &t,
        &["--size", "1G", "--base", "4G"],
        "--base applies to memmap mode only",
    );
}

#[test]
fn base_checked_against_proc_iomem_without_firmware_map() {
    let t = debian("bad-iomem");
    std::fs::remove_dir_all(t.dir.join("sys")).unwrap();
    t.write(
        "/proc/iomem",
        "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n00100000-bfffffff : System RAM\n  01000000-01ffffff : Kernel code\nc0000000-febfffff : PCI Bus 0000:00\n100000000-103fffffff : System RAM\n",
    );
    refuse(
        &t,
        &["--size", "1G", "--mode", "memmap", "--base", "0xc0000000"],
        "is not inside System RAM according to /proc/iomem",
    );
    t.ok(&[
        "plan",
        "--size",
        "1G",
        "--mode",
        "memmap",
        "--base",
        "0x100000000",
    ]);
}

#[test]
fn unknown_bootloader_layout() {
    let t = machine("bad-layout");
    t.write("/etc/hostname", "box\n");
    refuse(
        &t,
        &["--size", "16G"],
        "unknown bootloader layout under <ROOT>: found none of grubby with /boot/loader/entries (RHEL family), loader/loader.conf in /boot, /efi or /boot/efi (systemd-boot), /etc/default/grub (Debian GRUB) or /etc/kernel/cmdline (kernel-install)",
    );
    refuse(
        &t,
        &["--size", "16G", "--bootloader", "rhel-grubby"],
        "--bootloader rhel-grubby: grubby not found under <ROOT>",
    );
}

#[test]
fn foreign_file_is_not_overwritten() {
    let t = debian("bad-foreign");
    t.write("/etc/modprobe.d/critmem.conf", "options critmem size=1\n");
    refuse(
        &t,
        &["--size", "16G"],
        "refusing to overwrite /etc/modprobe.d/critmem.conf: it exists and was not written by critmem-boot",
    );
}

#[test]
fn missing_meminfo_is_reported() {
    let t = debian("bad-meminfo");
    std::fs::remove_file(t.dir.join("proc/meminfo")).unwrap();
    refuse(
        &t,
        &["--size", "16G"],
        "<ROOT>/proc/meminfo is missing: needed to check the pool size against the host's RAM",
    );
}

#[test]
fn remove_without_apply() {
    let t = debian("bad-remove");
    let err = t.fails(&["remove"]);
    assert!(
        err.contains("nothing to remove: /etc/critmem/boot.state does not exist"),
        "{err}"
    );
}

#[test]
fn corrupt_state_file() {
    let t = debian("bad-state");
    t.write("/etc/critmem/boot.state", "flavour=lilo\n");
    let err = t.fails(&["remove"]);
    assert!(
        err.contains("/etc/critmem/boot.state: unknown flavour \"lilo\""),
        "{err}"
    );
    refuse(&t, &["--size", "16G"], "unknown flavour \"lilo\"");
}

#[test]
fn root_must_exist() {
    let t = Tree::empty("bad-root");
    let missing = t.dir.join("nope");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_critmem-boot"))
        .arg("--root")
        .arg(&missing)
        .args(["plan", "--size", "1G"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    assert!(!missing.exists());
}

#[test]
fn switching_bootloader_needs_remove_first() {
    let t = debian("bad-switch");
    t.ok(&["apply", "--size", "16G"]);
    t.write("/etc/kernel/cmdline", "root=UUID=0b5e-77 ro\n");
    refuse(
        &t,
        &["--size", "16G", "--bootloader", "systemd-boot"],
        "critmem-boot last configured debian-grub but this system now looks like systemd-boot; run `critmem-boot remove` first",
    );
}

/// The GRUB line of `debian()` with `word` added, as an operator following
/// the design document would write it.
fn grub_with(word: &str) -> String {
    format!("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0 {word}\"\n")
}

const REMOVE_CRITMEM: &str = "remove each `critmem=` word from the file named (critmem-boot leaves files it did not write to you), then run critmem-boot again";

#[test]
fn critmem_size_in_etc_default_grub_is_refused() {
    let t = debian("bad-critmem-grub");
    t.write("/etc/default/grub", &grub_with("critmem=1G"));
    refuse(
        &t,
        &["--size", "16G"],
        &format!("refusing to plan or apply while a boot line of the next boot has `critmem=`:\n  the boot line in /etc/default/grub has `critmem=1G`, which no kernel reads: critmem's pool is carved out by `reserve_mem=1G:1G:critmem`; write that instead (`critmem-boot plan --size 1G --format cmdline` prints the parameters)\n{REMOVE_CRITMEM}"),
    );
}

#[test]
fn critmem_size_at_base_in_a_grub_dropin_is_refused() {
    let t = debian("bad-critmem-dropin");
    t.write(
        "/etc/default/grub.d/50-cloudimg-settings.cfg",
        "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0 critmem=4G@0x100000000\"\n",
    );
    refuse(
        &t,
        &["--size", "16G"],
        "the boot line in /etc/default/grub.d/50-cloudimg-settings.cfg has `critmem=4G@0x100000000`, which no kernel reads: critmem's pool is carved out by `memmap=4G$0x100000000`, and the module finds it by `critmem.base=0x100000000 critmem.size=0x100000000`; write those instead (`critmem-boot plan --size 4G --mode memmap --base 0x100000000 --format cmdline` prints the parameters)",
    );
}

#[test]
fn unparsable_critmem_in_grub_is_refused_and_points_at_plan() {
    let t = debian("bad-critmem-lots");
    t.write("/etc/default/grub", &grub_with("critmem=lots"));
    refuse(
        &t,
        &["--size", "16G"],
        "the boot line in /etc/default/grub has `critmem=lots`, which no kernel reads and names no pool critmem-boot would make (`critmem-boot plan --size lots`: invalid --size: malformed size 'lots': expected a number with an optional K, M, G or T suffix (or P, E), such as 16G, 512M or 0x40000000): critmem's pool is carved out by `reserve_mem=SIZE:ALIGN:critmem`, or by `memmap=SIZE$BASE` with `critmem.base=BASE critmem.size=SIZE`; `critmem-boot plan --size SIZE --format cmdline` prints the parameters to write instead",
    );
}

#[test]
fn every_critmem_word_is_named_in_one_refusal() {
    let t = debian("bad-critmem-two");
    t.write("/etc/default/grub", &grub_with("critmem=1G critmem=2G:2M"));
    refuse(
        &t,
        &["--size", "16G"],
        "`critmem=1G`, which no kernel reads: critmem's pool is carved out by `reserve_mem=1G:1G:critmem`; write that instead (`critmem-boot plan --size 1G --format cmdline` prints the parameters)\n  the boot line in /etc/default/grub has `critmem=2G:2M`, which no kernel reads: critmem's pool is carved out by `reserve_mem=2G:2M:critmem`; write that instead (`critmem-boot plan --size 2G --align 2M --format cmdline` prints the parameters)\nremove each",
    );
}

#[test]
fn critmem_size_colon_align_in_etc_kernel_cmdline_is_refused() {
    let t = systemd_boot("bad-critmem-sdb");
    t.write(
        "/etc/kernel/cmdline",
        "root=UUID=0b5e-77 ro quiet critmem=8G:2M\n",
    );
    refuse(
        &t,
        &["--size", "16G"],
        "the boot line in /etc/kernel/cmdline has `critmem=8G:2M`, which no kernel reads: critmem's pool is carved out by `reserve_mem=8G:2M:critmem`; write that instead (`critmem-boot plan --size 8G --align 2M --format cmdline` prints the parameters)",
    );
}

#[test]
fn critmem_in_a_bls_entry_is_refused() {
    let t = rhel("bad-critmem-bls");
    let entry = "/boot/loader/entries/0b5e77-7.2.12-critmem.conf";
    t.write(
        entry,
        &t.read(entry)
            .replace("rhgb quiet\n", "rhgb quiet critmem=2G\n"),
    );
    refuse(
        &t,
        &["--size", "16G"],
        "the boot line in /boot/loader/entries/0b5e77-7.2.12-critmem.conf has `critmem=2G`, which no kernel reads: critmem's pool is carved out by `reserve_mem=2G:1G:critmem`",
    );
}

#[test]
fn critmem_with_a_bad_alignment_names_plans_reason() {
    let t = debian("bad-critmem-align");
    t.write("/etc/default/grub", &grub_with("critmem=1G:3M"));
    refuse(
        &t,
        &["--size", "16G"],
        "has `critmem=1G:3M`, which no kernel reads and names no pool critmem-boot would make (`critmem-boot plan --size 1G --align 3M`: invalid --align 3M: the alignment must be a power of two (such as 2M or 1G)): critmem's pool is carved out by `reserve_mem=SIZE:ALIGN:critmem`",
    );
}

#[test]
fn check_refuses_unreadable_signature_policy() {
    let t = machine("bad-sig-enforce");
    t.write("/boot/config-7.2.12-critmem", "CONFIG_RUST=y\n");
    t.write("/sys/module/module/parameters/sig_enforce", "maybe\n");
    let err = t.fails(&["check"]);
    assert!(
        err.contains("<ROOT>/sys/module/module/parameters/sig_enforce: cannot parse line \"maybe\": expected Y or N"),
        "{err}"
    );
    t.write("/sys/module/module/parameters/sig_enforce", "Y\n");
    t.write("/sys/kernel/security/lockdown", "integrity\n");
    let err = t.fails(&["check"]);
    assert!(
        err.contains("<ROOT>/sys/kernel/security/lockdown: cannot parse line \"integrity\": expected the active mode in brackets, as in 'none [integrity] confidentiality'"),
        "{err}"
    );
}

#[test]
fn check_fails_on_module_signature_the_kernel_cannot_use() {
    let t = machine("bad-modsig");
    t.write("/boot/config-7.2.12-critmem", "CONFIG_RUST=y\n");
    t.write("/sys/module/module/parameters/sig_enforce", "Y\n");
    let mut m = module_file(Some(DKMS_SIGNATURE));
    // id_type 1 (PKEY_ID_X509): not PKCS#7, which the kernel refuses.
    let id_type_at = m.len() - 28 - 12 + 2;
    m[id_type_at] = 1;
    t.write_bytes(DKMS_MODULE, &m);
    let out = t.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  [FAIL] critmem.ko (/lib/modules/7.2.12-critmem/updates/dkms/critmem.ko) carries a module signature this kernel cannot use (its signature is not PKCS#7 (id_type 1)), and this kernel (module.sig_enforce=Y) loads only signed modules: reinstall critmem-dkms (apt-get install --reinstall critmem-dkms), which builds and signs it again\n"),
        "{stdout}"
    );
}
