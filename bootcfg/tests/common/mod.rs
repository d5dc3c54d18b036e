//! Shared helpers of critmem-boot's integration tests: fake system trees,
//! running the binary against them, snapshots and golden files.
//!
//! Golden files live in `bootcfg/tests/golden/<case>/`: `stdout` (the
//! command output, with the tree's path replaced by `<ROOT>`) and `tree/`
//! (every file the command wrote, at its path inside the root). Run with
//! `CRITMEM_BLESS=1` to rewrite them after an intended change.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fake system tree, deleted when dropped.
pub struct Tree {
    pub dir: PathBuf,
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Tree {
    /// An empty tree.
    pub fn empty(name: &str) -> Tree {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "critmem-boot-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Tree { dir }
    }

    /// Writes a file (parents created).
    pub fn write(&self, path: &str, content: &str) -> &Self {
        let p = self.dir.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        self
    }

    /// Writes raw bytes.
    pub fn write_bytes(&self, path: &str, content: &[u8]) -> &Self {
        let p = self.dir.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        self
    }

    /// Writes an executable.
    pub fn write_exec(&self, path: &str, content: &str) -> &Self {
        self.write(path, content);
        let p = self.dir.join(path.trim_start_matches('/'));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// Reads a file.
    pub fn read(&self, path: &str) -> String {
        fs::read_to_string(self.dir.join(path.trim_start_matches('/'))).unwrap()
    }

    /// Every file and directory with content; directories end in `/`.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(&self.dir, &self.dir, &mut out);
        out
    }

    /// Runs critmem-boot with `--root` this tree.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_critmem-boot"))
            .arg("--root")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs critmem-boot and expects success; returns stdout with the root
    /// replaced by `<ROOT>`.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = self.clean(&out.stdout);
        assert!(
            out.status.success(),
            "critmem-boot {args:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            self.clean(&out.stderr)
        );
        stdout
    }

    /// Runs critmem-boot and expects failure (exit 2); returns stderr with
    /// the root replaced by `<ROOT>`, after checking no file changed.
    pub fn fails(&self, args: &[&str]) -> String {
        let before = self.snapshot();
        let out = self.run(args);
        let stderr = self.clean(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "critmem-boot {args:?} should fail; stdout:\n{}\nstderr:\n{stderr}",
            self.clean(&out.stdout)
        );
        assert_eq!(
            diff_snapshots(&before, &self.snapshot()),
            Vec::<String>::new(),
            "critmem-boot {args:?} failed but changed files"
        );
        stderr
    }

    fn clean(&self, bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).replace(&self.dir.display().to_string(), "<ROOT>")
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = format!("/{}", p.strip_prefix(base).unwrap().display());
        if e.file_type().unwrap().is_dir() {
            out.insert(format!("{rel}/"), Vec::new());
            walk(base, &p, out);
        } else {
            out.insert(rel, fs::read(&p).unwrap());
        }
    }
}

/// Paths that differ between two snapshots.
pub fn diff_snapshots(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

fn golden_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
}

fn bless() -> bool {
    std::env::var_os("CRITMEM_BLESS").is_some()
}

/// Compares `actual` with golden file `tests/golden/<case>/<name>`.
pub fn golden_text(case: &str, name: &str, actual: &str) {
    let path = golden_dir(case).join(name);
    if bless() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with CRITMEM_BLESS=1 to create)",
            path.display()
        )
    });
    assert_eq!(actual, want, "output differs from {}", path.display());
}

/// Compares every file that changed between `before` and the tree now with
/// `tests/golden/<case>/tree/`: same set of files, same bytes.
pub fn golden_tree(case: &str, before: &BTreeMap<String, Vec<u8>>, tree: &Tree) {
    let after = tree.snapshot();
    let changed: BTreeMap<String, Vec<u8>> = diff_snapshots(before, &after)
        .into_iter()
        .filter(|p| !p.ends_with('/'))
        .map(|p| {
            let v = after
                .get(&p)
                .cloned()
                .unwrap_or_else(|| b"<deleted>\n".to_vec());
            (p, v)
        })
        .collect();
    let dir = golden_dir(case).join("tree");
    if bless() {
        let _ = fs::remove_dir_all(&dir);
        for (p, v) in &changed {
            let f = dir.join(p.trim_start_matches('/'));
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, v).unwrap();
        }
        return;
    }
    let mut want = BTreeMap::new();
    if dir.exists() {
        walk(&dir, &dir, &mut want);
    }
    want.retain(|k, _| !k.ends_with('/'));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&changed),
        names(&want),
        "files written differ from {}",
        dir.display()
    );
    for (p, v) in &changed {
        assert_eq!(
            String::from_utf8_lossy(v),
            String::from_utf8_lossy(&want[p]),
            "{p} differs from {}",
            dir.display()
        );
    }
}

/// Release of the fake running kernel.
pub const RELEASE: &str = "7.2.12-critmem";

/// A machine with 64 GiB of RAM (firmware map and meminfo) and a booted
/// command line without critmem parameters.
pub fn machine(name: &str) -> Tree {
    let t = Tree::empty(name);
    // 64 GiB: 0-640K, 1M-3G, 4G-65G (3 GiB + 61 GiB = 64 GiB, give or take
    // the low 1 MiB); MemTotal a bit lower as on real machines.
    for (i, (start, end, kind)) in [
        ("0x0", "0x9fbff", "System RAM"),
        ("0x9fc00", "0x9ffff", "Reserved"),
        ("0x100000", "0xbfffffff", "System RAM"),
        ("0xfeffc000", "0xfeffffff", "Reserved"),
        ("0x100000000", "0x103fffffff", "System RAM"),
    ]
    .iter()
    .enumerate()
    {
        t.write(
            &format!("/sys/firmware/memmap/{i}/start"),
            &format!("{start}\n"),
        );
        t.write(
            &format!("/sys/firmware/memmap/{i}/end"),
            &format!("{end}\n"),
        );
        t.write(
            &format!("/sys/firmware/memmap/{i}/type"),
            &format!("{kind}\n"),
        );
    }
    t.write(
        "/proc/meminfo",
        "MemTotal:       65855456 kB\nMemFree:        60000000 kB\nMemAvailable:   61000000 kB\n",
    );
    t.write(
        "/proc/cmdline",
        &format!("BOOT_IMAGE=/boot/vmlinuz-{RELEASE} root=UUID=0b5e-77 ro quiet\n"),
    );
    t.write("/proc/sys/kernel/osrelease", &format!("{RELEASE}\n"));
    t
}

/// Debian/Ubuntu GRUB: /etc/default/grub plus a distro drop-in that sets
/// GRUB_CMDLINE_LINUX_DEFAULT.
pub fn debian(name: &str) -> Tree {
    let t = machine(name);
    t.write(
        "/etc/default/grub",
        "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n",
    );
    t.write(
        "/etc/default/grub.d/50-cloudimg-settings.cfg",
        "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0\"\n",
    );
    t.write("/boot/grub/grub.cfg", "# generated by grub-mkconfig\n");
    t
}

/// RHEL family: grubby (the fake one), BLS entries, /etc/kernel/cmdline.
pub fn rhel(name: &str) -> Tree {
    let t = machine(name);
    t.write_exec("/usr/sbin/grubby", include_str!("../fixtures/grubby"));
    t.write("/etc/default/grub", "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"crashkernel=1G-4G:192M rhgb quiet\"\nGRUB_ENABLE_BLSCFG=true\n");
    t.write(
        "/etc/kernel/cmdline",
        "root=UUID=0b5e-77 ro crashkernel=1G-4G:192M rhgb quiet\n",
    );
    for (id, ver) in [("0b5e77", RELEASE), ("0b5e77", "0-rescue-0b5e77")] {
        t.write(
            &format!("/boot/loader/entries/{id}-{ver}.conf"),
            &format!("title Red Hat Enterprise Linux ({ver})\nversion {ver}\nlinux /vmlinuz-{ver}\ninitrd /initramfs-{ver}.img\noptions root=UUID=0b5e-77 ro crashkernel=1G-4G:192M rhgb quiet\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class rhel\n"),
        );
    }
    t
}

/// systemd-boot: an ESP with loader.conf, no /etc/kernel/cmdline yet.
pub fn systemd_boot(name: &str) -> Tree {
    let t = machine(name);
    t.write("/boot/loader/loader.conf", "timeout 3\n");
    t.write(
        "/boot/loader/entries/0b5e77-7.2.12-critmem.conf",
        "title Debian\nlinux /0b5e77/7.2.12-critmem/linux\noptions root=UUID=0b5e-77 ro quiet\n",
    );
    t
}

/// A real PKCS#7 signature by a self-signed 'DKMS module signing key' (see
/// the unit tests of `module_sig`).
pub const DKMS_SIGNATURE: &[u8] = include_bytes!("../fixtures/dkms-module-signing-key.p7s");

/// A tiny stand-in for critmem.ko: an ELF magic, and with `signature` the
/// PKCS#7 blob, a `struct module_signature` for it and the trailer, laid
/// out as sign-file appends them.
pub fn module_file(signature: Option<&[u8]>) -> Vec<u8> {
    let mut m = b"\x7fELF critmem test module\n".to_vec();
    if let Some(pkcs7) = signature {
        m.extend_from_slice(pkcs7);
        // algo, hash, id_type = PKEY_ID_PKCS7, signer_len, key_id_len, pad[3]
        m.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&u32::try_from(pkcs7.len()).unwrap().to_be_bytes());
        m.extend_from_slice(b"~Module signature appended~\n");
    }
    m
}

/// Where DKMS installs critmem.ko for the fake running kernel.
pub const DKMS_MODULE: &str = "/lib/modules/7.2.12-critmem/updates/dkms/critmem.ko";

/// `/proc/keys` as root reads it on a Secure Boot Debian host, without
/// and with DKMS's key enrolled.
pub const PROC_KEYS_DEBIAN: &str = "03b7a7b3 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: 1\n1e8a5a59 I------     1 perm 1f010000     0     0 asymmetri Debian Secure Boot CA: 6ccece7e4c6c0d1f6149f3dd27dfcc5cbb419ea1: X509.rsa 4c6c0d1f []\n0b14c499 I--Q---     1 perm 1f3f0000     0 65534 keyring   _uid_ses.0: 1\n";
pub const PROC_KEYS_DKMS: &str = "03b7a7b3 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: 1\n1e8a5a59 I------     1 perm 1f010000     0     0 asymmetri Debian Secure Boot CA: 6ccece7e4c6c0d1f6149f3dd27dfcc5cbb419ea1: X509.rsa 4c6c0d1f []\n2a1b3c4d I------     1 perm 1f010000     0     0 asymmetri DKMS module signing key: acaf41fdbf778753040e358438671bf07361cc50: X509.rsa 7361cc50 []\n";
