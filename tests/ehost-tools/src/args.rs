//! A tiny `--flag [value]` parser shared by the critmem subcommands.

use std::collections::HashMap;

/// Parsed `--name value` options and bare `--name` switches.
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

/// Switches that never take a value.
const SWITCHES: &[&str] = &[
    "--hold",
    "--map",
    "--verify-zero",
    "--private",
    "--write",
    "--no-alloc",
    "--readonly",
    "--natural",
    "--forge",
];

impl Args {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut switches = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if SWITCHES.contains(&a.as_str()) {
                switches.push(a.clone());
            } else if a.starts_with("--") {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                values.insert(a.clone(), v.clone());
            } else {
                return Err(format!("unexpected argument '{a}'"));
            }
        }
        Ok(Self { values, switches })
    }

    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A number option: decimal, `0x` hex, or with a K/M/G suffix.
    pub fn num(&self, name: &str) -> Result<Option<u64>, String> {
        self.str(name).map(parse_num).transpose()
    }
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
