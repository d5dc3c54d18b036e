//! Sizes as the kernel's `memparse()` reads them: the one size grammar of
//! `vmm --memory`, `critmem-boot --size` and cmtool's numbers, so that a
//! size means the same in every tool and on the kernel command line.
//!
//! A size is a decimal number, or a hexadecimal one after `0x` or `0X`,
//! followed by at most one binary suffix: `K`, `M`, `G`, `T`, `P` or `E`, in
//! either case, each a power of 1024. As in `memparse()`, hexadecimal digits
//! are read first, so `0x2E` is 46 bytes, not 2 EiB. Three things
//! `memparse()` would read differently are refused instead of guessed:
//! anything after the suffix (`2GiB`, `512MB`: the kernel stops at the
//! letter and `reserve_mem=` then fails), a decimal number with a leading
//! zero (`010M`: the kernel reads octal), and a number that does not fit in
//! 64 bits (the kernel wraps).
//!
//! [`format()`] writes the shortest exact form, which [`parse`] and the
//! kernel read back to the same number; [`human`] writes sizes for people.

/// 1 KiB.
pub const KIB: u64 = 1 << 10;
/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// 1 GiB.
pub const GIB: u64 = 1 << 30;

/// The suffixes, largest first, with the power of two each stands for.
const SUFFIXES: [(char, u32); 6] = [
    ('E', 60),
    ('P', 50),
    ('T', 40),
    ('G', 30),
    ('M', 20),
    ('K', 10),
];

/// Why a size could not be parsed. `what` names the value in the message
/// ("size", "alignment", "base address", ...).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    /// The text is empty.
    #[error("empty {what}: expected a number such as 16G, 512M or 0x40000000")]
    Empty {
        /// What was being parsed.
        what: &'static str,
    },
    /// The text is not a number with an optional suffix.
    #[error(
        "malformed {what} '{text}': expected a number with an optional K, M, G or T suffix \
         (or P, E), such as 16G, 512M or 0x40000000"
    )]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// The text as given.
        text: String,
    },
    /// A unit spelled out after the suffix, such as `2GiB` or `512MB`.
    #[error(
        "malformed {what} '{text}': write {suggestion}; the suffixes K, M, G, T, P and E \
         already mean KiB, MiB, GiB, TiB, PiB and EiB, as the kernel reads them"
    )]
    UnitAfterSuffix {
        /// What was being parsed.
        what: &'static str,
        /// The text as given.
        text: String,
        /// The text without what follows the suffix.
        suggestion: String,
    },
    /// A decimal number with a leading zero, which the kernel reads as
    /// octal.
    #[error(
        "malformed {what} '{text}': the kernel reads a number with a leading 0 as octal; \
         drop the leading zeros, or write hexadecimal with 0x"
    )]
    LeadingZero {
        /// What was being parsed.
        what: &'static str,
        /// The text as given.
        text: String,
    },
    /// The size does not fit in 64 bits.
    #[error("{what} '{text}' is too large: it does not fit in 64 bits")]
    Overflow {
        /// What was being parsed.
        what: &'static str,
        /// The text as given.
        text: String,
    },
}

/// The power of two that the suffix letter `c` stands for.
fn suffix_shift(c: char) -> Option<u32> {
    let upper = c.to_ascii_uppercase();
    SUFFIXES
        .iter()
        .find(|&&(letter, _)| letter == upper)
        .map(|&(_, shift)| shift)
}

/// Parses a size such as `16G`, `512m`, `4096` or `0x40000000` (see the
/// module docs). `what` names the value in error messages.
pub fn parse(text: &str, what: &'static str) -> Result<u64, SizeError> {
    if text.is_empty() {
        return Err(SizeError::Empty { what });
    }
    let given = || text.to_string();
    let (radix, body) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (16, hex),
        None => (10, text),
    };
    let digits_end = body
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(body.len());
    let (digits, rest) = body.split_at(digits_end);
    if digits.is_empty() {
        return Err(SizeError::Malformed {
            what,
            text: given(),
        });
    }
    if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
        return Err(SizeError::LeadingZero {
            what,
            text: given(),
        });
    }
    let mut rest_chars = rest.chars();
    let shift = match rest_chars.next() {
        None => 0,
        Some(letter) => {
            let shift = suffix_shift(letter).ok_or_else(|| SizeError::Malformed {
                what,
                text: given(),
            })?;
            let after = rest_chars.as_str();
            if !after.is_empty() {
                return Err(if matches!(after, "B" | "b" | "iB" | "ib") {
                    SizeError::UnitAfterSuffix {
                        what,
                        text: given(),
                        suggestion: text[..text.len() - after.len()].to_string(),
                    }
                } else {
                    SizeError::Malformed {
                        what,
                        text: given(),
                    }
                });
            }
            shift
        }
    };
    let overflow = || SizeError::Overflow {
        what,
        text: given(),
    };
    // The digits are all of the radix, so the only possible error is that
    // the number does not fit.
    let number = u64::from_str_radix(digits, radix).map_err(|_| overflow())?;
    number.checked_mul(1 << shift).ok_or_else(overflow)
}

/// Formats a byte count in the shortest exact form that [`parse`] and the
/// kernel's `memparse()` read back: `16G`, `1536M`, `4K`, or plain bytes.
pub fn format(bytes: u64) -> String {
    for (letter, shift) in SUFFIXES {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{letter}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Formats a byte count for people, in the largest binary unit it reaches:
/// `16 GiB`, `1.50 GiB`, `512 MiB`, `123 B`.
pub fn human(bytes: u64) -> String {
    for (letter, shift) in SUFFIXES {
        let unit = 1u64 << shift;
        if bytes >= unit {
            if bytes.is_multiple_of(unit) {
                return format!("{} {letter}iB", bytes >> shift);
            }
            return format!("{:.2} {letter}iB", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIB: u64 = 1 << 40;

    fn size(text: &str) -> Result<u64, SizeError> {
        parse(text, "size")
    }

    #[test]
    fn every_suffix_in_either_case() {
        for (text, bytes) in [
            ("4096", 4096),
            ("0", 0),
            ("4k", 4 * KIB),
            ("4K", 4 * KIB),
            ("512m", 512 * MIB),
            ("512M", 512 * MIB),
            ("16g", 16 * GIB),
            ("16G", 16 * GIB),
            ("2t", 2 * TIB),
            ("2T", 2 * TIB),
            ("3p", 3 << 50),
            ("3P", 3 << 50),
            ("1e", 1 << 60),
            ("15E", 15 << 60),
        ] {
            assert_eq!(size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn hexadecimal_reads_its_digits_first() {
        assert_eq!(size("0x40000000"), Ok(GIB));
        assert_eq!(size("0X40000000"), Ok(GIB));
        assert_eq!(size("0xc008ce01"), Ok(0xc008_ce01));
        assert_eq!(size("0x0000abcd"), Ok(0xabcd));
        assert_eq!(size("0x1G"), Ok(GIB));
        assert_eq!(size("0x3000"), Ok(0x3000));
        // As memparse(): E and B are hex digits, not a suffix.
        assert_eq!(size("0x2E"), Ok(0x2e));
        assert_eq!(size("0xAB"), Ok(0xab));
    }

    #[test]
    fn overflow_is_an_error_never_a_wrap() {
        for text in [
            "18446744073709551616",
            "99999999999T",
            "16E",
            "17179869184G",
            "0x10000000000000000",
            "0x10000000000000P",
        ] {
            assert!(
                matches!(size(text), Err(SizeError::Overflow { .. })),
                "{text}: {:?}",
                size(text)
            );
        }
        assert_eq!(size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(size("16777215T"), Ok(16_777_215 * TIB));
    }

    #[test]
    fn empty_junk_and_negative_are_refused() {
        assert_eq!(size(""), Err(SizeError::Empty { what: "size" }));
        for text in [
            "G", "16Q", "16 G", " 16G", "16G ", "1.5G", "-1G", "-1", "+1G", "16GG", "0x", "0xG",
            "abc", "lots", "iB", "16iB", "1_000",
        ] {
            assert!(
                matches!(size(text), Err(SizeError::Malformed { .. })),
                "{text:?}: {:?}",
                size(text)
            );
        }
    }

    #[test]
    fn what_the_kernel_would_read_differently_is_refused() {
        for (text, suggestion) in [("2GiB", "2G"), ("512MB", "512M"), ("4kb", "4k")] {
            assert_eq!(
                size(text),
                Err(SizeError::UnitAfterSuffix {
                    what: "size",
                    text: text.into(),
                    suggestion: suggestion.into()
                })
            );
        }
        for text in ["010M", "00", "0755"] {
            assert!(
                matches!(size(text), Err(SizeError::LeadingZero { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn messages_name_the_value_and_the_fix() {
        assert_eq!(
            parse("16Q", "alignment").unwrap_err().to_string(),
            "malformed alignment '16Q': expected a number with an optional K, M, G or T suffix \
             (or P, E), such as 16G, 512M or 0x40000000"
        );
        assert_eq!(
            size("").unwrap_err().to_string(),
            "empty size: expected a number such as 16G, 512M or 0x40000000"
        );
        assert_eq!(
            size("99999999999T").unwrap_err().to_string(),
            "size '99999999999T' is too large: it does not fit in 64 bits"
        );
        assert!(size("2GiB").unwrap_err().to_string().contains("write 2G;"));
        assert!(size("010M").unwrap_err().to_string().contains("octal"));
    }

    #[test]
    fn format_is_the_shortest_exact_form_and_reads_back() {
        for (bytes, text) in [
            (16 * GIB, "16G"),
            (1536 * MIB, "1536M"),
            (4096, "4K"),
            (1000, "1000"),
            (0, "0"),
            (TIB, "1T"),
            (1 << 50, "1P"),
            (8 << 60, "8E"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(format(bytes), text);
            assert_eq!(size(text), Ok(bytes), "{text} reads back");
        }
    }

    #[test]
    fn human_uses_the_largest_unit_reached() {
        assert_eq!(human(16 * GIB), "16 GiB");
        assert_eq!(human(1536 * MIB), "1.50 GiB");
        assert_eq!(human(512 * MIB), "512 MiB");
        assert_eq!(human(4 * KIB), "4 KiB");
        assert_eq!(human(12), "12 B");
        assert_eq!(human(0), "0 B");
        assert_eq!(human(2 << 50), "2 PiB");
    }
}
