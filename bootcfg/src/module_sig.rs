//! Can critmem.ko load under the running kernel's module-signature policy?
//!
//! Debian's kernel has `CONFIG_MODULE_SIG=y` without `MODULE_SIG_FORCE`, so
//! signatures are enforced only by `module.sig_enforce=1` or by lockdown
//! (Secure Boot turns on `lockdown=integrity`). The kernel then loads a
//! module only if it carries a PKCS#7 signature by a key it trusts; DKMS
//! signs critmem.ko with its own key, which Secure Boot machines trust once
//! `/var/lib/dkms/mok.pub` is enrolled as a MOK.
//!
//! Reads, under the root: `/sys/module/module/parameters/sig_enforce`,
//! `/sys/kernel/security/lockdown`, the critmem.ko modprobe would load from
//! `/lib/modules/<release>/`, and `/proc/keys`.

use std::fs;
use std::io;
use std::path::Path;

use thiserror::Error;

use crate::check::Verdict;
use crate::host::{HostError, Root};

/// What the kernel's module loader looks for at the end of a signed module.
pub const SIGNATURE_TRAILER: &[u8] = b"~Module signature appended~\n";

/// `sizeof(struct module_signature)`: algo, hash, id_type, signer_len,
/// key_id_len, pad[3], `__be32 sig_len`.
pub const MODULE_SIGNATURE_LEN: usize = 12;

/// `PKEY_ID_PKCS7`, the only `id_type` the kernel accepts.
const PKEY_ID_PKCS7: u8 = 2;

/// `sig_enforce` in sysfs, present when the kernel has `CONFIG_MODULE_SIG`.
const SIG_ENFORCE: &str = "/sys/module/module/parameters/sig_enforce";
/// The lockdown LSM's mode, present when the kernel has it.
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";
/// The keys the kernel holds, as far as the reader may view them.
const PROC_KEYS: &str = "/proc/keys";

/// How to make the kernel trust DKMS's key.
const ENROLL: &str = "mokutil --import /var/lib/dkms/mok.pub, reboot, confirm the enrolment";

/// Why an appended signature is one the kernel cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The trailer is there, the struct before it is not.
    #[error("the file is too short for the struct module_signature before its trailer")]
    Truncated,
    /// `sig_len` reaches before the start of the file.
    #[error("its signature length ({0} bytes) is more than the file holds")]
    TooLong(u32),
    /// Not PKCS#7: the kernel rejects it.
    #[error("its signature is not PKCS#7 (id_type {0})")]
    NotPkcs7(u8),
    /// A PKCS#7 signature leaves these zero; the kernel rejects others.
    #[error("its struct module_signature has fields set that PKCS#7 signatures leave zero")]
    NonZeroFields,
}

/// Finds the PKCS#7 blob appended to a module file: `Ok(None)` when the
/// file does not end with [`SIGNATURE_TRAILER`] (unsigned).
pub fn appended_signature(module: &[u8]) -> Result<Option<&[u8]>, SignatureError> {
    let Some(body) = module.strip_suffix(SIGNATURE_TRAILER) else {
        return Ok(None);
    };
    let struct_start = body
        .len()
        .checked_sub(MODULE_SIGNATURE_LEN)
        .ok_or(SignatureError::Truncated)?;
    let (rest, sig) = body.split_at(struct_start);
    let [algo, hash, id_type, signer_len, key_id_len, pad0, pad1, pad2, l0, l1, l2, l3] = sig
    else {
        return Err(SignatureError::Truncated);
    };
    // Checked in the kernel's order (mod_check_sig): id_type first.
    if *id_type != PKEY_ID_PKCS7 {
        return Err(SignatureError::NotPkcs7(*id_type));
    }
    if [algo, hash, signer_len, key_id_len, pad0, pad1, pad2]
        .iter()
        .any(|b| **b != 0)
    {
        return Err(SignatureError::NonZeroFields);
    }
    let sig_len = u32::from_be_bytes([*l0, *l1, *l2, *l3]);
    let start = usize::try_from(sig_len)
        .ok()
        .and_then(|n| rest.len().checked_sub(n))
        .ok_or(SignatureError::TooLong(sig_len))?;
    Ok(Some(&rest[start..]))
}

/// The issuer CN naming the signer's certificate in a PKCS#7 signature
/// (its SignerInfo's issuerAndSerialNumber), found by scanning the DER for
/// the commonName OID followed by a short UTF8String or PrintableString.
///
/// This is a scan, not a parse. The last match is taken because the
/// SignerInfos come last in SignedData: certificates embedded before them
/// (sign-file and DKMS embed none) would name other issuers. For a
/// self-signed key such as DKMS's the issuer is also the subject, which is
/// what `/proc/keys` shows. A signer named by key identifier has no CN:
/// `None`.
pub fn signer_common_name(pkcs7: &[u8]) -> Option<String> {
    const CN_OID: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    const UTF8_STRING: u8 = 0x0c;
    const PRINTABLE_STRING: u8 = 0x13;
    (0..pkcs7.len()).rev().find_map(|at| {
        let after = pkcs7[at..].strip_prefix(CN_OID)?;
        let [tag, len, value @ ..] = after else {
            return None;
        };
        // Short-form lengths only: a CN is at most 64 characters.
        if !matches!(*tag, UTF8_STRING | PRINTABLE_STRING) || *len >= 0x80 {
            return None;
        }
        let name = value.get(..usize::from(*len))?;
        std::str::from_utf8(name).ok().map(str::to_string)
    })
}

/// The active lockdown mode: the bracketed word of
/// `none [integrity] confidentiality`.
pub fn active_lockdown(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
}

/// `sig_enforce` as sysfs prints a bool: `Y` or `N`.
pub fn parse_sig_enforce(text: &str) -> Option<bool> {
    match text.trim() {
        "Y" => Some(true),
        "N" => Some(false),
        _ => None,
    }
}

/// The descriptions of the asymmetric keys in `/proc/keys`, such as
/// `DKMS module signing key: acaf41fd…: X509.rsa 7361cc50 []`.
///
/// Each line is `ID FLAGS USAGE EXPIRY PERM UID GID TYPE DESCRIPTION`; the
/// kernel prints TYPE in nine columns, so `asymmetric` appears as
/// `asymmetri`.
pub fn asymmetric_key_descriptions(proc_keys: &str) -> Vec<&str> {
    proc_keys
        .lines()
        .filter_map(|line| {
            let mut rest = line;
            let mut fields = Vec::with_capacity(8);
            for _ in 0..8 {
                rest = rest.trim_start();
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            (fields[7] == "asymmetri").then(|| rest.trim())
        })
        .collect()
}

/// The kernel's signature policy, as read from sysfs and securityfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `sig_enforce`; `None` when the kernel lacks `CONFIG_MODULE_SIG`.
    pub sig_enforce: Option<bool>,
    /// The active lockdown mode; `None` without the lockdown LSM.
    pub lockdown: Option<String>,
}

impl Policy {
    /// Whether only modules signed by a trusted key load. Without
    /// `CONFIG_MODULE_SIG` the kernel checks no signature, and lockdown
    /// has nothing to refuse (module_sig_check is where it is asked).
    pub fn enforced(&self) -> bool {
        match self.sig_enforce {
            None => false,
            Some(on) => on || self.locked_down(),
        }
    }

    fn locked_down(&self) -> bool {
        matches!(
            self.lockdown.as_deref(),
            Some("integrity") | Some("confidentiality")
        )
    }

    /// What enforces signatures, for messages: `module.sig_enforce=Y`,
    /// `lockdown=integrity`, or both.
    fn reason(&self) -> String {
        let mut why = Vec::new();
        if self.sig_enforce == Some(true) {
            why.push("module.sig_enforce=Y".to_string());
        }
        if self.locked_down() {
            why.push(format!(
                "lockdown={}",
                self.lockdown.as_deref().unwrap_or("")
            ));
        }
        why.join(" and ")
    }

    /// The error modprobe prints when the kernel refuses the module:
    /// sig_enforce refuses with EKEYREJECTED, lockdown with EPERM.
    fn refusal(&self) -> &'static str {
        if self.sig_enforce == Some(true) {
            "Key was rejected by service"
        } else {
            "Operation not permitted"
        }
    }
}

/// Reads the policy under `root`.
pub fn read_policy(root: &Root) -> Result<Policy, HostError> {
    let sig_enforce = match root.read(SIG_ENFORCE)? {
        None => None,
        Some(text) => Some(parse_sig_enforce(&text).ok_or_else(|| HostError::Parse {
            path: root.path(SIG_ENFORCE),
            line: text.trim_end().to_string(),
            reason: "expected Y or N",
        })?),
    };
    let lockdown = match root.read(LOCKDOWN)? {
        None => None,
        Some(text) => Some(
            active_lockdown(&text)
                .ok_or_else(|| HostError::Parse {
                    path: root.path(LOCKDOWN),
                    line: text.trim_end().to_string(),
                    reason: "expected the active mode in brackets, as in 'none [integrity] confidentiality'",
                })?
                .to_string(),
        ),
    };
    Ok(Policy {
        sig_enforce,
        lockdown,
    })
}

/// File names modprobe loads critmem from, uncompressed first.
const MODULE_NAMES: &[&str] = &[
    "critmem.ko",
    "critmem.ko.xz",
    "critmem.ko.zst",
    "critmem.ko.gz",
];

/// The critmem.ko modprobe would load for `release`, as a path inside the
/// root: depmod's default search order puts `updates/` (where DKMS
/// installs) before every other directory; ties go to the first path in
/// sorted order, so the answer does not depend on directory order.
pub fn find_module(root: &Root, release: &str) -> Result<Option<String>, HostError> {
    let base = format!("/lib/modules/{release}");
    let mut found = Vec::new();
    collect_modules(&root.path(&base), &base, &mut found)?;
    let updates = format!("{base}/updates/");
    found.sort_by_key(|p| (!p.starts_with(&updates), p.clone()));
    Ok(found.into_iter().next())
}

fn collect_modules(dir: &Path, abs: &str, found: &mut Vec<String>) -> Result<(), HostError> {
    let read_error = |source| HostError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(read_error(e)),
    };
    for entry in entries {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = format!("{abs}/{name}");
        // file_type does not follow symlinks: build/ and source/ point at
        // kernel headers, which hold no installed modules.
        let kind = entry.file_type().map_err(read_error)?;
        if kind.is_dir() {
            collect_modules(&entry.path(), &child, found)?;
        } else if MODULE_NAMES.contains(&name.as_str()) {
            found.push(child);
        }
    }
    Ok(())
}

/// The outcome for critmem.ko.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleSigCheck {
    /// Ok, Warn when it cannot be told, Fail when the module certainly
    /// cannot load.
    pub verdict: Verdict,
    /// What was found, and the fix.
    pub message: String,
}

/// Checks critmem.ko for the kernel `release` under `root` against the
/// kernel's signature policy.
pub fn check(root: &Root, release: &str) -> Result<ModuleSigCheck, HostError> {
    let policy = read_policy(root)?;
    let item = |verdict, message| Ok(ModuleSigCheck { verdict, message });
    if !policy.enforced() {
        return item(Verdict::Ok, not_enforced(&policy));
    }
    let why = policy.reason();
    let if_refused = format!(
        "if `modprobe critmem` fails with '{}', enroll /var/lib/dkms/mok.pub ({ENROLL} in the MOK manager)",
        policy.refusal()
    );
    let Some(path) = find_module(root, release)? else {
        return item(
            Verdict::Warn,
            format!("this kernel ({why}) loads only signed modules and no critmem.ko is installed for it (searched /lib/modules/{release}): install critmem-dkms, which builds and signs critmem.ko for this kernel"),
        );
    };
    if !path.ends_with(".ko") {
        return item(
            Verdict::Warn,
            format!("critmem.ko ({path}) is compressed, so its signature was not inspected; this kernel ({why}) loads it only if it is signed by a key the kernel trusts: {if_refused}"),
        );
    }
    let bytes = root.read_bytes(&path)?.unwrap_or_default();
    let pkcs7 = match appended_signature(&bytes) {
        Ok(Some(pkcs7)) => pkcs7,
        Ok(None) => {
            return item(
                Verdict::Fail,
                format!("critmem.ko ({path}) is not signed, and this kernel ({why}) loads only signed modules: install it through critmem-dkms, which signs it with DKMS's key, and enroll that key ({ENROLL})"),
            )
        }
        Err(e) => {
            return item(
                Verdict::Fail,
                format!("critmem.ko ({path}) carries a module signature this kernel cannot use ({e}), and this kernel ({why}) loads only signed modules: reinstall critmem-dkms (apt-get install --reinstall critmem-dkms), which builds and signs it again"),
            )
        }
    };
    let Some(signer) = signer_common_name(pkcs7) else {
        return item(
            Verdict::Warn,
            format!("critmem.ko ({path}) is signed, but its signature names its key by identifier only, so whether this kernel ({why}) trusts it cannot be told: {if_refused}"),
        );
    };
    let keys_text = root.read(PROC_KEYS)?.unwrap_or_default();
    let keys = asymmetric_key_descriptions(&keys_text);
    // A name match, not a verification: the key is taken as trusted when an
    // asymmetric key's description starts with the signer's CN. It can be
    // wrong both ways: every DKMS installation names its key "DKMS module
    // signing key", so an enrolled key from an earlier installation matches
    // a module signed by a regenerated one; and the match does not look at
    // which keyring holds the key (a key of the .platform keyring matches
    // but is not used for modules). The kernel's own verdict is the load
    // itself.
    let prefix = format!("{signer}: ");
    if keys.iter().any(|d| d.starts_with(&prefix)) {
        return item(
            Verdict::Ok,
            format!("critmem.ko ({path}) is signed by '{signer}', a key this kernel has ({PROC_KEYS}), as {why} requires"),
        );
    }
    if keys.is_empty() {
        // /proc/keys lists only keys the reader may view: the kernel's
        // keyrings are root's.
        return item(
            Verdict::Warn,
            format!("critmem.ko ({path}) is signed by '{signer}', but {PROC_KEYS} shows no asymmetric keys (run check as root to see the kernel's), so whether this kernel ({why}) trusts it cannot be told: {if_refused}"),
        );
    }
    item(
        Verdict::Fail,
        format!("critmem.ko ({path}) is signed by '{signer}', which this kernel ({why}) does not trust (no such key in {PROC_KEYS}): enroll /var/lib/dkms/mok.pub ({ENROLL} in the MOK manager)"),
    )
}

fn not_enforced(policy: &Policy) -> String {
    let Some(on) = policy.sig_enforce else {
        return format!(
            "module signatures are not checked (the kernel has no CONFIG_MODULE_SIG: no {SIG_ENFORCE})"
        );
    };
    let lockdown = match &policy.lockdown {
        Some(mode) => format!("lockdown {mode}"),
        None => "no lockdown LSM".to_string(),
    };
    format!(
        "module signatures are not enforced (module.sig_enforce={}, {lockdown})",
        if on { "Y" } else { "N" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PKCS#7 signature by a self-signed 'DKMS module signing key' made
    /// with `openssl req -new -x509 -newkey rsa:2048 -nodes -subj
    /// '/CN=DKMS module signing key'` and `openssl cms -sign -binary
    /// -noattr -outform DER -nocerts -md sha256`, as sign-file makes them.
    const DKMS_SIGNATURE: &[u8] = include_bytes!("../tests/fixtures/dkms-module-signing-key.p7s");

    fn signed(body: &[u8], pkcs7: &[u8], id_type: u8) -> Vec<u8> {
        let mut m = body.to_vec();
        m.extend_from_slice(pkcs7);
        m.extend_from_slice(&[0, 0, id_type, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&u32::try_from(pkcs7.len()).unwrap().to_be_bytes());
        m.extend_from_slice(SIGNATURE_TRAILER);
        m
    }

    #[test]
    fn trailer_and_struct() {
        assert_eq!(SIGNATURE_TRAILER.len(), 28);
        let m = signed(b"\x7fELF", DKMS_SIGNATURE, PKEY_ID_PKCS7);
        assert_eq!(appended_signature(&m), Ok(Some(DKMS_SIGNATURE)));
        // A signature filling the whole file in front of the struct.
        let m = signed(b"", DKMS_SIGNATURE, PKEY_ID_PKCS7);
        assert_eq!(appended_signature(&m), Ok(Some(DKMS_SIGNATURE)));
        assert_eq!(appended_signature(b"\x7fELF unsigned"), Ok(None));
        assert_eq!(appended_signature(b""), Ok(None));
    }

    #[test]
    fn unusable_signatures() {
        let mut short = b"\x7fELF".to_vec();
        short.extend_from_slice(SIGNATURE_TRAILER);
        assert_eq!(appended_signature(&short), Err(SignatureError::Truncated));
        let m = signed(b"\x7fELF", DKMS_SIGNATURE, 1);
        assert_eq!(appended_signature(&m), Err(SignatureError::NotPkcs7(1)));
        let mut m = signed(b"\x7fELF", DKMS_SIGNATURE, PKEY_ID_PKCS7);
        let len_at = m.len() - SIGNATURE_TRAILER.len() - 4;
        m[len_at..len_at + 4].copy_from_slice(&0x1000u32.to_be_bytes());
        assert_eq!(appended_signature(&m), Err(SignatureError::TooLong(0x1000)));
        let mut m = signed(b"\x7fELF", DKMS_SIGNATURE, PKEY_ID_PKCS7);
        let algo_at = m.len() - SIGNATURE_TRAILER.len() - MODULE_SIGNATURE_LEN;
        m[algo_at] = 4;
        assert_eq!(appended_signature(&m), Err(SignatureError::NonZeroFields));
    }

    #[test]
    fn signer_cn_of_real_signature() {
        assert_eq!(
            signer_common_name(DKMS_SIGNATURE).as_deref(),
            Some("DKMS module signing key")
        );
    }

    #[test]
    fn signer_cn_scan_edges() {
        let printable = [
            &[0x30, 0x00][..],
            &[0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x03],
            b"abc",
        ]
        .concat();
        assert_eq!(signer_common_name(&printable).as_deref(), Some("abc"));
        // The last CN wins: SignerInfos follow embedded certificates.
        let two = [
            &[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02][..],
            b"ca",
            &[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06],
            b"signer",
        ]
        .concat();
        assert_eq!(signer_common_name(&two).as_deref(), Some("signer"));
        // Cut short, another string type, a long-form length, no CN.
        assert_eq!(
            signer_common_name(&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x09, b'a']),
            None
        );
        assert_eq!(
            signer_common_name(&[0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x01, b'a']),
            None
        );
        assert_eq!(
            signer_common_name(&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x81, 0x01, b'a']),
            None
        );
        assert_eq!(signer_common_name(&[0x06, 0x03, 0x55, 0x04, 0x03]), None);
        assert_eq!(signer_common_name(b"\x7fELF"), None);
    }

    #[test]
    fn lockdown_and_sig_enforce() {
        assert_eq!(
            active_lockdown("none [integrity] confidentiality\n"),
            Some("integrity")
        );
        assert_eq!(
            active_lockdown("[none] integrity confidentiality\n"),
            Some("none")
        );
        assert_eq!(
            active_lockdown("none integrity [confidentiality]"),
            Some("confidentiality")
        );
        assert_eq!(active_lockdown("none integrity confidentiality"), None);
        assert_eq!(active_lockdown(""), None);
        assert_eq!(parse_sig_enforce("Y\n"), Some(true));
        assert_eq!(parse_sig_enforce("N\n"), Some(false));
        assert_eq!(parse_sig_enforce("1\n"), None);
    }

    #[test]
    fn policy_enforcement() {
        let p = |sig_enforce, lockdown: Option<&str>| Policy {
            sig_enforce,
            lockdown: lockdown.map(str::to_string),
        };
        assert!(!p(Some(false), Some("none")).enforced());
        assert!(!p(Some(false), None).enforced());
        assert!(p(Some(true), None).enforced());
        assert!(p(Some(false), Some("integrity")).enforced());
        assert!(p(Some(false), Some("confidentiality")).enforced());
        // Without CONFIG_MODULE_SIG no signature is asked for.
        assert!(!p(None, Some("integrity")).enforced());
        assert_eq!(
            p(Some(true), Some("integrity")).reason(),
            "module.sig_enforce=Y and lockdown=integrity"
        );
        assert_eq!(p(Some(true), None).refusal(), "Key was rejected by service");
        assert_eq!(
            p(Some(false), Some("integrity")).refusal(),
            "Operation not permitted"
        );
    }

    #[test]
    fn proc_keys_asymmetric_descriptions() {
        let keys = "03b7a7b3 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: 1\n\
                    1e8a5a59 I------     1 perm 1f010000     0     0 asymmetri Debian Secure Boot CA: 6ccece7e4c6c0d1f6149f3dd27dfcc5cbb419ea1: X509.rsa 4c6c0d1f []\n\
                    2a1b3c4d I------     1 perm 1f010000     0     0 asymmetri DKMS module signing key: acaf41fdbf778753040e358438671bf07361cc50: X509.rsa 7361cc50 []\n\
                    0b14c499 I--Q---     1 perm 1f3f0000     0 65534 keyring   _uid_ses.0: 1\n\
                    short line\n";
        assert_eq!(
            asymmetric_key_descriptions(keys),
            vec![
                "Debian Secure Boot CA: 6ccece7e4c6c0d1f6149f3dd27dfcc5cbb419ea1: X509.rsa 4c6c0d1f []",
                "DKMS module signing key: acaf41fdbf778753040e358438671bf07361cc50: X509.rsa 7361cc50 []",
            ]
        );
    }
}
