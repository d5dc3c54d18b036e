//! `cmtool size [--in-mib] SIZE` (on the build machine): prints SIZE in
//! bytes, or with `--in-mib` in whole MiB, read with the one size grammar,
//! [`critmem_abi::units`]. `scripts/demo.sh` and `scripts/bench` read every
//! size their users give them through it, so that the scripts accept exactly
//! what `vmm`, `critmem-boot` and the kernel accept, and carry no grammar of
//! their own.
//!
//! Fails, saying how to fix it, on a malformed size and, with `--in-mib`, on
//! a size that is not a whole number of MiB (naming the nearest ones).

use critmem_abi::units::{self, MIB};

/// `size`.
#[derive(Debug, clap::Args)]
pub struct SizeArgs {
    /// Print whole MiB instead of bytes, and refuse a size that is not a
    /// whole number of MiB.
    #[arg(long)]
    in_mib: bool,
    /// The size: decimal or 0x hex, with an optional K, M, G, T, P or E
    /// suffix (e.g. 512M, 1G, 0x40000000).
    // A plain string, parsed in `run`, so that a bad size gets our message
    // alone rather than clap's usage text around it.
    size: String,
}

/// `size`.
pub fn run(args: &SizeArgs) -> Result<(), String> {
    println!("{}", convert(&args.size, args.in_mib)?);
    Ok(())
}

/// `text` in bytes, or in whole MiB when `in_mib`.
fn convert(text: &str, in_mib: bool) -> Result<u64, String> {
    let bytes = units::parse(text, "size").map_err(|e| e.to_string())?;
    if !in_mib {
        return Ok(bytes);
    }
    if bytes.is_multiple_of(MIB) {
        return Ok(bytes / MIB);
    }
    // Name the whole MiB on either side, so the fix is a copy away. The one
    // above does not exist for sizes within 1 MiB of 2^64.
    let below = bytes / MIB * MIB;
    let nearest: Vec<String> = [Some(below).filter(|&b| b > 0), below.checked_add(MIB)]
        .into_iter()
        .flatten()
        .map(units::format)
        .collect();
    Err(format!(
        "size '{text}' ({bytes} bytes) is not a whole number of MiB: use {}",
        nearest.join(" or ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_mib_in_the_one_grammar() {
        assert_eq!(convert("512M", false), Ok(512 * MIB));
        assert_eq!(convert("512M", true), Ok(512));
        assert_eq!(convert("2g", true), Ok(2048));
        assert_eq!(convert("0x40000000", true), Ok(1024));
        assert_eq!(convert("1T", true), Ok(1 << 20));
        assert_eq!(convert("2048K", true), Ok(2));
        assert_eq!(convert("1048576", true), Ok(1));
        assert_eq!(convert("0", true), Ok(0));
        assert_eq!(convert("4K", false), Ok(4096));
    }

    #[test]
    fn refusals_say_how_to_fix_them() {
        let bad = convert("12Q", true).unwrap_err();
        assert!(bad.contains("'12Q'") && bad.contains("512M"), "{bad}");
        let bad = convert("2GiB", false).unwrap_err();
        assert!(bad.contains("write 2G"), "{bad}");
        assert_eq!(
            convert("1536K", true),
            Err("size '1536K' (1572864 bytes) is not a whole number of MiB: use 1M or 2M".into())
        );
        assert_eq!(
            convert("4K", true),
            Err("size '4K' (4096 bytes) is not a whole number of MiB: use 1M".into())
        );
        assert!(convert("16E", true).is_err(), "does not fit in 64 bits");
        let top = convert(&u64::MAX.to_string(), true).unwrap_err();
        assert!(
            top.ends_with(&format!("use {}", units::format(u64::MAX / MIB * MIB))),
            "{top}"
        );
    }
}
