//! Byte sizes and addresses as people and the kernel write them.
//!
//! Parsing accepts what the kernel's `memparse()` accepts for the sizes this
//! tool handles: a decimal or `0x` hexadecimal number, optionally followed by
//! one of the binary suffixes `K`, `M`, `G`, `T` (either case, each a power
//! of 1024), optionally followed by `iB` or `B` (`16G`, `16GiB`, `16GB` are
//! all 16 × 2³⁰ bytes). Formatting produces the shortest exact kernel form
//! (`16G`, `1536M`, `4K`), which `memparse()` reads back to the same number.

use thiserror::Error;

/// 1 KiB.
pub const KIB: u64 = 1 << 10;
/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// 1 GiB.
pub const GIB: u64 = 1 << 30;
/// 1 TiB.
pub const TIB: u64 = 1 << 40;

/// Why a size or address could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SizeError {
    /// The text was empty.
    #[error("empty {what}: expected a number such as 16G, 512M or 0x40000000")]
    Empty {
        /// What was being parsed ("size", "alignment", "base address").
        what: &'static str,
    },
    /// The text is not a number with an optional K/M/G/T suffix.
    #[error("malformed {what} '{text}': expected a number with an optional K, M, G or T suffix, such as 16G, 512M or 0x40000000")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// The text as given.
        text: String,
    },
    /// The number does not fit in 64 bits.
    #[error("{what} '{text}' is too large")]
    Overflow {
        /// What was being parsed.
        what: &'static str,
        /// The text as given.
        text: String,
    },
}

/// Parses a byte count such as `16G`, `512M`, `4096`, `0x1000` or `16GiB`.
/// `what` names the value in error messages.
pub fn parse_bytes(text: &str, what: &'static str) -> Result<u64, SizeError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(SizeError::Empty { what });
    }
    let malformed = || SizeError::Malformed {
        what,
        text: text.to_string(),
    };
    let overflow = || SizeError::Overflow {
        what,
        text: text.to_string(),
    };
    let (digits, radix, rest) =
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            let end = hex
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(hex.len());
            (&hex[..end], 16, &hex[end..])
        } else {
            let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            (&t[..end], 10, &t[end..])
        };
    if digits.is_empty() {
        return Err(malformed());
    }
    let number = u64::from_str_radix(digits, radix).map_err(|_| overflow())?;
    let (mult, tail) = match rest.chars().next() {
        None => (1, ""),
        Some(c) => {
            let m = match c.to_ascii_uppercase() {
                'K' => KIB,
                'M' => MIB,
                'G' => GIB,
                'T' => TIB,
                _ => return Err(malformed()),
            };
            (m, &rest[1..])
        }
    };
    if !matches!(tail, "" | "iB" | "ib" | "B" | "b") || (mult == 1 && !tail.is_empty()) {
        return Err(malformed());
    }
    number.checked_mul(mult).ok_or_else(overflow)
}

/// Formats a byte count in the shortest exact form `memparse()` reads back:
/// `16G`, `1536M`, `4K`, or plain bytes.
pub fn kernel_size(bytes: u64) -> String {
    for (unit, suffix) in [(TIB, 'T'), (GIB, 'G'), (MIB, 'M'), (KIB, 'K')] {
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{}", bytes / unit, suffix);
        }
    }
    bytes.to_string()
}

/// Formats a byte count for people: `16 GiB`, `1.5 GiB`, `512 MiB`, `123 B`.
pub fn human(bytes: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit {
            if bytes % unit == 0 {
                return format!("{} {}", bytes / unit, name);
            }
            return format!("{:.2} {}", bytes as f64 / unit as f64, name);
        }
    }
    format!("{bytes} B")
}

/// Formats a physical address as the kernel and this tool write it: `0x`
/// and lowercase hexadecimal.
pub fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_bytes("16G", "size"), Ok(16 * GIB));
        assert_eq!(parse_bytes("16g", "size"), Ok(16 * GIB));
        assert_eq!(parse_bytes("16GiB", "size"), Ok(16 * GIB));
        assert_eq!(parse_bytes("512M", "size"), Ok(512 * MIB));
        assert_eq!(parse_bytes("4K", "size"), Ok(4096));
        assert_eq!(parse_bytes("2T", "size"), Ok(2 * TIB));
        assert_eq!(parse_bytes("4096", "size"), Ok(4096));
        assert_eq!(parse_bytes("0x40000000", "size"), Ok(GIB));
        assert_eq!(parse_bytes("0x1G", "size"), Ok(GIB));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "G", "16Q", "16 G", "1.5G", "-1G", "16GG", "0x", "16iB", "abc",
        ] {
            assert!(parse_bytes(bad, "size").is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            parse_bytes("99999999999T", "size"),
            Err(SizeError::Overflow { .. })
        ));
    }

    #[test]
    fn formats_for_kernel() {
        assert_eq!(kernel_size(16 * GIB), "16G");
        assert_eq!(kernel_size(1536 * MIB), "1536M");
        assert_eq!(kernel_size(4096), "4K");
        assert_eq!(kernel_size(1000), "1000");
        assert_eq!(kernel_size(TIB), "1T");
        for v in [16 * GIB, 1536 * MIB, 4096, 1000, TIB] {
            assert_eq!(parse_bytes(&kernel_size(v), "size"), Ok(v));
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human(16 * GIB), "16 GiB");
        assert_eq!(human(1536 * MIB), "1.50 GiB");
        assert_eq!(human(12), "12 B");
    }
}
