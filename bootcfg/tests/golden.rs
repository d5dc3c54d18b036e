//! Golden-file tests of every file critmem-boot writes, for each bootloader
//! flavour and both pool modes, with idempotence, resizing and removal.

mod common;

use common::*;

const RESERVE: &[&str] = &["--size", "16G", "--align", "1G"];
const MEMMAP: &[&str] = &["--size", "4G", "--mode", "memmap", "--base", "0x100000000"];

fn args<'a>(cmd: &'a str, pool: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![cmd];
    v.extend_from_slice(pool);
    v
}

/// apply writes exactly the golden files; a second apply changes nothing;
/// remove brings the tree back to what it was, byte for byte.
fn apply_apply_remove(case: &str, tree: Tree, pool: &[&str]) {
    let original = tree.snapshot();

    // plan changes nothing and shows what apply will do.
    let plan = tree.ok(&args("plan", pool));
    assert_eq!(
        diff_snapshots(&original, &tree.snapshot()),
        Vec::<String>::new()
    );
    golden_text(case, "plan.stdout", &plan);

    let out = tree.ok(&args("apply", pool));
    golden_text(case, "apply.stdout", &out);
    golden_tree(case, &original, &tree);
    let applied = tree.snapshot();

    let again = tree.ok(&args("apply", pool));
    assert!(
        again.contains("nothing to change"),
        "second apply:\n{again}"
    );
    assert_eq!(
        diff_snapshots(&applied, &tree.snapshot()),
        Vec::<String>::new()
    );

    let status = tree.ok(&["status"]);
    golden_text(case, "status.stdout", &status);

    let removed = tree.ok(&["remove"]);
    golden_text(case, "remove.stdout", &removed);
    let mut left = diff_snapshots(&original, &tree.snapshot());
    // The fake grubby keeps its call log; everything else is as before.
    left.retain(|p| p != "/grubby.log");
    assert_eq!(
        left,
        Vec::<String>::new(),
        "remove did not restore the tree"
    );
}

#[test]
fn debian_grub_reserve() {
    apply_apply_remove("debian-grub/reserve", debian("deb-res"), RESERVE);
}

#[test]
fn debian_grub_memmap() {
    apply_apply_remove("debian-grub/memmap", debian("deb-mm"), MEMMAP);
}

#[test]
fn rhel_grubby_reserve() {
    let t = rhel("rhel-res");
    apply_apply_remove("rhel-grubby/reserve", t, RESERVE);
}

#[test]
fn rhel_grubby_memmap() {
    let t = rhel("rhel-mm");
    apply_apply_remove("rhel-grubby/memmap", t, MEMMAP);
}

#[test]
fn rhel_grubby_calls() {
    // The grubby calls, in order, over apply, re-apply, resize and remove.
    let t = rhel("rhel-calls");
    t.ok(&args("apply", RESERVE));
    t.ok(&args("apply", RESERVE));
    t.ok(&args("apply", MEMMAP));
    t.ok(&["remove"]);
    golden_text("rhel-grubby/calls", "grubby.log", &t.read("/grubby.log"));
    // The entries are back to what they were.
    let fresh = rhel("rhel-fresh");
    for e in [
        "/boot/loader/entries/0b5e77-7.2.12-critmem.conf",
        "/boot/loader/entries/0b5e77-0-rescue-0b5e77.conf",
    ] {
        assert_eq!(t.read(e), fresh.read(e));
    }
}

#[test]
fn systemd_boot_reserve() {
    apply_apply_remove("systemd-boot/reserve", systemd_boot("sdb-res"), RESERVE);
}

#[test]
fn systemd_boot_memmap() {
    apply_apply_remove("systemd-boot/memmap", systemd_boot("sdb-mm"), MEMMAP);
}

/// Applying a new size replaces the old parameters: no duplicates.
fn resize(case: &str, tree: Tree) {
    tree.ok(&args("apply", RESERVE));
    let before = tree.snapshot();
    let out = tree.ok(&["apply", "--size", "8G", "--align", "2M"]);
    golden_text(case, "apply.stdout", &out);
    golden_tree(case, &before, &tree);
    let all: String = tree
        .snapshot()
        .iter()
        .filter(|(p, _)| p.starts_with("/etc") || p.starts_with("/boot"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        !all.contains("reserve_mem=16G"),
        "old parameter left behind"
    );
    let _ = tree.ok(&["remove"]);
}

#[test]
fn debian_grub_resize() {
    resize("debian-grub/resize", debian("deb-rs"));
}

#[test]
fn rhel_grubby_resize() {
    resize("rhel-grubby/resize", rhel("rhel-rs"));
}

#[test]
fn systemd_boot_resize() {
    resize("systemd-boot/resize", systemd_boot("sdb-rs"));
}

#[test]
fn mode_switch_memmap_to_reserve() {
    let t = systemd_boot("sdb-switch");
    t.ok(&args("apply", MEMMAP));
    t.ok(&args("apply", RESERVE));
    assert_eq!(
        t.read("/etc/kernel/cmdline"),
        "root=UUID=0b5e-77 ro quiet reserve_mem=16G:1G:critmem\n"
    );
}

#[test]
fn status_reports_reboot_change() {
    let t = debian("status");
    t.ok(&args("apply", RESERVE));
    t.write(
        "/proc/cmdline",
        "BOOT_IMAGE=/boot/vmlinuz root=UUID=0b5e-77 ro reserve_mem=8G:1G:critmem quiet\n",
    );
    t.write(
        "/proc/critmem",
        "version=1\nsource=reserve_mem\nstart=0x840000000\nend_inclusive=0xa3fffffff\nsize=8589934592\nalign=1073741824\nfree=7516192768\nfree_zeroed=7516192768\nlargest_free_1g=7516192768\nslices=1\nslice=id=1 start=0x840000000 end_inclusive=0x87fffffff size=1073741824 pid=42 state=live\n",
    );
    golden_text("status/reboot-change", "status.stdout", &t.ok(&["status"]));
    // Booted as configured: nothing changes.
    t.write(
        "/proc/cmdline",
        "BOOT_IMAGE=/boot/vmlinuz root=UUID=0b5e-77 ro reserve_mem=16G:1G:critmem quiet\n",
    );
    t.write(
        "/proc/critmem",
        "version=1\nsource=reserve_mem\nstart=0x1000000000\nend_inclusive=0x13ffffffff\nsize=17179869184\nalign=1073741824\nfree=17179869184\nfree_zeroed=0\nlargest_free_1g=17179869184\nslices=0\n",
    );
    golden_text("status/in-sync", "status.stdout", &t.ok(&["status"]));
}

#[test]
fn apply_accounts_for_the_pool_already_held() {
    // MemTotal no longer counts a booted 56 GiB pool; re-applying it is
    // still fine because the held pool is added back.
    let t = debian("held");
    t.write("/proc/meminfo", "MemTotal:        8388608 kB\n");
    t.write(
        "/proc/cmdline",
        "root=UUID=0b5e-77 ro reserve_mem=56G:1G:critmem\n",
    );
    t.ok(&["apply", "--size", "56G"]);
}

fn config_gz(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

const GOOD_CONFIG: &str = "CONFIG_64BIT=y\nCONFIG_RUST=y\nCONFIG_MODULES=y\nCONFIG_KVM=y\nCONFIG_KVM_AMD=y\n# CONFIG_KVM_INTEL is not set\nCONFIG_TRANSPARENT_HUGEPAGE=y\nCONFIG_ARCH_SUPPORTS_HUGE_PFNMAP=y\nCONFIG_ARCH_SUPPORTS_PMD_PFNMAP=y\nCONFIG_ARCH_SUPPORTS_PUD_PFNMAP=y\nCONFIG_DEVMEM=y\n";

#[test]
fn check_good_kernel_from_boot_config() {
    let t = machine("check-good");
    t.write(&format!("/boot/config-{RELEASE}"), GOOD_CONFIG);
    golden_text("check/good", "check.stdout", &t.ok(&["check"]));
}

#[test]
fn check_good_kernel_from_proc_config_gz() {
    let t = machine("check-gz");
    t.write_bytes("/proc/config.gz", &config_gz(GOOD_CONFIG));
    let out = t.ok(&["check"]);
    assert!(out.contains("configuration: /proc/config.gz"), "{out}");
    assert!(
        out.contains("kernel supports independent memory configuration: yes"),
        "{out}"
    );
}

#[test]
fn check_old_kernel_is_memmap_only() {
    let t = machine("check-old");
    t.write("/proc/sys/kernel/osrelease", "6.10.3-1-amd64\n");
    t.write("/boot/config-6.10.3-1-amd64", GOOD_CONFIG);
    let out = t.ok(&["check"]);
    assert!(
        out.contains("kernel supports independent memory configuration: yes, memmap mode only"),
        "{out}"
    );
}

#[test]
fn check_distro_kernel_without_rust_says_no() {
    let t = machine("check-bad");
    t.write("/proc/sys/kernel/osrelease", "6.1.0-25-amd64\n");
    t.write(
        "/boot/config-6.1.0-25-amd64",
        "CONFIG_MODULES=y\nCONFIG_KVM=m\nCONFIG_KVM_INTEL=m\nCONFIG_TRANSPARENT_HUGEPAGE=y\n# CONFIG_RUST is not set\n",
    );
    let out = t.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    golden_text(
        "check/no-rust",
        "check.stdout",
        &String::from_utf8_lossy(&out.stdout),
    );
}

/// A host booted with the design document's `critmem=`, and GRUB files
/// still holding more of them, in every form.
fn booted_with_critmem_param(name: &str) -> Tree {
    let t = debian(name);
    t.write(
        "/proc/cmdline",
        "BOOT_IMAGE=/boot/vmlinuz root=UUID=0b5e-77 ro critmem=1G quiet\n",
    );
    t.write(
        "/etc/default/grub",
        "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet critmem=512M:2M\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0 critmem=2G@0x100000000\"\n",
    );
    t.write(
        "/etc/default/grub.d/50-cloudimg-settings.cfg",
        "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 critmem=2GiB\"\n",
    );
    t
}

#[test]
fn status_reports_every_critmem_param() {
    let t = booted_with_critmem_param("status-critmem");
    golden_text("status/critmem-param", "status.stdout", &t.ok(&["status"]));
}

#[test]
fn check_warns_of_every_critmem_param_and_still_says_yes() {
    let t = booted_with_critmem_param("check-critmem");
    t.write(&format!("/boot/config-{RELEASE}"), GOOD_CONFIG);
    let out = t.run(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the kernel still supports critmem"
    );
    golden_text(
        "check/critmem-param",
        "check.stdout",
        &String::from_utf8_lossy(&out.stdout),
    );
}

#[test]
fn critmem_param_on_proc_cmdline_alone_does_not_stop_apply() {
    // The booted line cannot be edited; apply is how it gets fixed.
    let t = debian("apply-critmem-booted");
    t.write(
        "/proc/cmdline",
        "BOOT_IMAGE=/boot/vmlinuz root=UUID=0b5e-77 ro critmem=1G quiet\n",
    );
    let out = t.ok(&["apply", "--size", "1G"]);
    assert!(
        out.contains("kernel parameters: reserve_mem=1G:1G:critmem\n"),
        "{out}"
    );
    let status = t.ok(&["status"]);
    assert!(
        status.contains("warning: the boot line in /proc/cmdline has `critmem=1G`, which no kernel reads: critmem's pool is carved out by `reserve_mem=1G:1G:critmem`; write that instead (`critmem-boot plan --size 1G --format cmdline` prints the parameters)\n"),
        "{status}"
    );
}

#[test]
fn kernel_cmdline_created_from_proc_cmdline_leaves_critmem_param_out() {
    let t = systemd_boot("sdb-critmem");
    t.write(
        "/proc/cmdline",
        "BOOT_IMAGE=/0b5e77/7.2.12-critmem/linux root=UUID=0b5e-77 ro critmem=1G quiet\n",
    );
    let plan = t.ok(&args("plan", RESERVE));
    assert!(
        plan.contains("\nnote: /etc/kernel/cmdline leaves out `critmem=1G` of /proc/cmdline: no kernel reads it, and the kernel parameters above carve out the pool\n"),
        "{plan}"
    );
    assert!(
        plan.contains("+root=UUID=0b5e-77 ro quiet reserve_mem=16G:1G:critmem\n"),
        "{plan}"
    );
    t.ok(&args("apply", RESERVE));
    assert_eq!(
        t.read("/etc/kernel/cmdline"),
        "root=UUID=0b5e-77 ro quiet reserve_mem=16G:1G:critmem\n"
    );
}

#[test]
fn plan_format_cmdline_still_answers_with_critmem_param_in_grub() {
    // The refusal's advice, `plan --format cmdline`, must keep working.
    let t = booted_with_critmem_param("fmt-critmem");
    assert_eq!(
        t.ok(&["plan", "--size", "1G", "--format", "cmdline"]),
        "reserve_mem=1G:1G:critmem\n"
    );
}

/// A machine with a good kernel and the given signature policy files.
fn signature_policy(name: &str, sig_enforce: &str, lockdown: &str) -> Tree {
    let t = machine(name);
    t.write(&format!("/boot/config-{RELEASE}"), GOOD_CONFIG);
    t.write("/sys/module/module/parameters/sig_enforce", sig_enforce);
    t.write("/sys/kernel/security/lockdown", lockdown);
    t
}

const NO_LOCKDOWN: &str = "[none] integrity confidentiality\n";
const SECURE_BOOT_LOCKDOWN: &str = "none [integrity] confidentiality\n";

/// Runs check; returns its exit code and stdout (root replaced).
fn check(t: &Tree) -> (Option<i32>, String) {
    let out = t.run(&["check"]);
    let stdout =
        String::from_utf8_lossy(&out.stdout).replace(&t.dir.display().to_string(), "<ROOT>");
    (out.status.code(), stdout)
}

#[test]
fn check_signatures_not_enforced() {
    // Even an unsigned module is fine then.
    let t = signature_policy("sig-off", "N\n", NO_LOCKDOWN);
    t.write_bytes(DKMS_MODULE, &module_file(None));
    let (code, out) = check(&t);
    assert_eq!(code, Some(0), "{out}");
    golden_text("check/signatures-not-enforced", "check.stdout", &out);
    assert!(
        out.contains(
            "  [ok  ] module signatures are not enforced (module.sig_enforce=N, lockdown none)\n"
        ),
        "{out}"
    );
}

#[test]
fn check_signatures_enforced_module_not_installed() {
    let t = signature_policy("sig-none", "Y\n", NO_LOCKDOWN);
    // A DKMS build tree behind the build/ symlink is not an installed
    // module: symlinks are not followed.
    t.write_bytes(
        "/var/lib/dkms/critmem/0.1.0/build/critmem.ko",
        &module_file(None),
    );
    std::fs::create_dir_all(t.dir.join("lib/modules/7.2.12-critmem")).unwrap();
    std::os::unix::fs::symlink(
        t.dir.join("var/lib/dkms/critmem/0.1.0"),
        t.dir.join("lib/modules/7.2.12-critmem/build"),
    )
    .unwrap();
    let (code, out) = check(&t);
    assert_eq!(code, Some(0), "not installed yet is not a failure: {out}");
    golden_text("check/signatures-no-module", "check.stdout", &out);
    assert!(out.contains("  [warn] this kernel (module.sig_enforce=Y) loads only signed modules and no critmem.ko is installed for it (searched /lib/modules/7.2.12-critmem): install critmem-dkms, which builds and signs critmem.ko for this kernel\n"), "{out}");
}

#[test]
fn check_signatures_enforced_module_unsigned() {
    let t = signature_policy("sig-unsigned", "Y\n", NO_LOCKDOWN);
    t.write_bytes(
        "/lib/modules/7.2.12-critmem/extra/critmem.ko",
        &module_file(None),
    );
    let (code, out) = check(&t);
    assert_eq!(code, Some(1), "{out}");
    golden_text("check/signatures-unsigned", "check.stdout", &out);
    assert!(out.contains("  [FAIL] critmem.ko (/lib/modules/7.2.12-critmem/extra/critmem.ko) is not signed, and this kernel (module.sig_enforce=Y) loads only signed modules: install it through critmem-dkms, which signs it with DKMS's key, and enroll that key (mokutil --import /var/lib/dkms/mok.pub, reboot, confirm the enrolment)\n"), "{out}");
    assert!(
        out.ends_with(
            "critmem.ko cannot load under this kernel's module-signature policy (see FAIL above)\n"
        ),
        "{out}"
    );
}

#[test]
fn check_secure_boot_module_signed_by_untrusted_key() {
    let t = signature_policy("sig-untrusted", "N\n", SECURE_BOOT_LOCKDOWN);
    t.write_bytes(DKMS_MODULE, &module_file(Some(DKMS_SIGNATURE)));
    t.write("/proc/keys", PROC_KEYS_DEBIAN);
    let (code, out) = check(&t);
    assert_eq!(code, Some(1), "{out}");
    golden_text("check/signatures-untrusted", "check.stdout", &out);
    assert!(out.contains("  [FAIL] critmem.ko (/lib/modules/7.2.12-critmem/updates/dkms/critmem.ko) is signed by 'DKMS module signing key', which this kernel (lockdown=integrity) does not trust (no such key in /proc/keys): enroll /var/lib/dkms/mok.pub (mokutil --import /var/lib/dkms/mok.pub, reboot, confirm the enrolment in the MOK manager)\n"), "{out}");
}

#[test]
fn check_secure_boot_module_signed_by_enrolled_key() {
    let t = signature_policy("sig-trusted", "N\n", SECURE_BOOT_LOCKDOWN);
    t.write_bytes(DKMS_MODULE, &module_file(Some(DKMS_SIGNATURE)));
    // depmod prefers updates/: the unsigned copy elsewhere is not loaded.
    t.write_bytes(
        "/lib/modules/7.2.12-critmem/extra/critmem.ko",
        &module_file(None),
    );
    t.write("/proc/keys", PROC_KEYS_DKMS);
    let (code, out) = check(&t);
    assert_eq!(code, Some(0), "{out}");
    golden_text("check/signatures-trusted", "check.stdout", &out);
    assert!(out.contains("  [ok  ] critmem.ko (/lib/modules/7.2.12-critmem/updates/dkms/critmem.ko) is signed by 'DKMS module signing key', a key this kernel has (/proc/keys), as lockdown=integrity requires\n"), "{out}");
}

#[test]
fn check_signatures_cannot_be_told() {
    // Compressed: not inspected.
    let t = signature_policy("sig-xz", "Y\n", SECURE_BOOT_LOCKDOWN);
    t.write_bytes(
        "/lib/modules/7.2.12-critmem/updates/dkms/critmem.ko.xz",
        b"\xfd7zXZ\0",
    );
    let (code, out) = check(&t);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("  [warn] critmem.ko (/lib/modules/7.2.12-critmem/updates/dkms/critmem.ko.xz) is compressed, so its signature was not inspected; this kernel (module.sig_enforce=Y and lockdown=integrity) loads it only if it is signed by a key the kernel trusts: if `modprobe critmem` fails with 'Key was rejected by service', enroll /var/lib/dkms/mok.pub (mokutil --import /var/lib/dkms/mok.pub, reboot, confirm the enrolment in the MOK manager)\n"), "{out}");

    // Signed, but /proc/keys read by someone who may view none of the
    // kernel's keys.
    let t = signature_policy("sig-nokeys", "N\n", SECURE_BOOT_LOCKDOWN);
    t.write_bytes(DKMS_MODULE, &module_file(Some(DKMS_SIGNATURE)));
    t.write(
        "/proc/keys",
        "0b14c499 I--Q---     1 perm 1f3f0000  1000 65534 keyring   _uid_ses.1000: 1\n",
    );
    let (code, out) = check(&t);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("  [warn] critmem.ko (/lib/modules/7.2.12-critmem/updates/dkms/critmem.ko) is signed by 'DKMS module signing key', but /proc/keys shows no asymmetric keys (run check as root to see the kernel's), so whether this kernel (lockdown=integrity) trusts it cannot be told: if `modprobe critmem` fails with 'Operation not permitted', enroll /var/lib/dkms/mok.pub (mokutil --import /var/lib/dkms/mok.pub, reboot, confirm the enrolment in the MOK manager)\n"), "{out}");
}

#[test]
fn check_without_module_sig_ignores_lockdown() {
    // No sig_enforce parameter: CONFIG_MODULE_SIG is off and the kernel
    // asks no module for a signature, lockdown or not.
    let t = machine("sig-nosig");
    t.write(&format!("/boot/config-{RELEASE}"), GOOD_CONFIG);
    t.write("/sys/kernel/security/lockdown", SECURE_BOOT_LOCKDOWN);
    t.write_bytes(DKMS_MODULE, &module_file(None));
    let (code, out) = check(&t);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("  [ok  ] module signatures are not checked (the kernel has no CONFIG_MODULE_SIG: no /sys/module/module/parameters/sig_enforce)\n"), "{out}");
}
