//! The number grammar of cmtool's options: decimal, `0x` hex, or with a
//! K/M/G suffix.

/// Parses `123`, `0x7b`, `4K`, `2M`, `1G` (clap value parser).
pub fn num(s: &str) -> Result<u64, String> {
    parse_num(s)
}

/// Parses `123`, `0x7b`, `4K`, `2M`, `1G`.
pub fn parse_num(s: &str) -> Result<u64, String> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(h, 16)
    } else {
        digits.parse()
    }
    .map_err(|e| format!("bad number '{s}': {e}"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("number '{s}' overflows"))
}
