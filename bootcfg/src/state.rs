//! The state file, `/etc/critmem/boot.state`: what `apply` changed, so
//! `remove` undoes exactly that and `status` knows what is configured.
//!
//! Plain `key=value` lines, one item per line, after a marker comment:
//! - `flavour=` the bootloader flavour apply configured;
//! - `param=` each kernel parameter apply added (in order);
//! - `created=` each file apply created (remove deletes it);
//! - `edited=` each pre-existing file apply added the parameters to (remove
//!   takes the parameters out again and leaves the rest);
//! - `dir=` each directory apply created (remove deletes it if empty);
//! - `grubby=yes` when the parameters were added to the BLS entries with
//!   grubby (remove runs `grubby --remove-args`).

use thiserror::Error;

use crate::files::MARKER;
use crate::layout::Flavour;

/// Where the state file lives, inside the root.
pub const STATE_PATH: &str = "/etc/critmem/boot.state";

/// Why the state file could not be understood.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StateError {
    /// A line is not `key=value` with a known key.
    #[error("{STATE_PATH}: line {line}: unknown entry {text:?}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// The flavour is not one this tool knows.
    #[error("{STATE_PATH}: unknown flavour {0:?}")]
    BadFlavour(String),
    /// No `flavour=` line.
    #[error("{STATE_PATH}: no flavour= line")]
    NoFlavour,
}

/// What apply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The flavour configured.
    pub flavour: Flavour,
    /// The kernel parameters added.
    pub params: Vec<String>,
    /// Files created.
    pub created: Vec<String>,
    /// Files edited.
    pub edited: Vec<String>,
    /// Directories created.
    pub dirs: Vec<String>,
    /// Whether grubby added the parameters to the BLS entries.
    pub grubby: bool,
}

impl State {
    /// An empty state for a flavour.
    pub fn new(flavour: Flavour) -> Self {
        State {
            flavour,
            params: Vec::new(),
            created: Vec::new(),
            edited: Vec::new(),
            dirs: Vec::new(),
            grubby: false,
        }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{MARKER}, do not edit. `critmem-boot remove` reads it to undo exactly what `critmem-boot apply` did.\n"
        );
        s += &format!("flavour={}\n", self.flavour);
        for (key, list) in [
            ("param", &self.params),
            ("created", &self.created),
            ("edited", &self.edited),
            ("dir", &self.dirs),
        ] {
            for item in list {
                s += &format!("{key}={item}\n");
            }
        }
        if self.grubby {
            s += "grubby=yes\n";
        }
        s
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<State, StateError> {
        let mut flavour = None;
        let mut st = State::new(Flavour::DebianGrub);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || StateError::BadLine {
                line: i + 1,
                text: line.to_string(),
            };
            let (k, v) = line.split_once('=').ok_or_else(bad)?;
            let v = v.to_string();
            match k {
                "flavour" => {
                    flavour = Some(Flavour::from_name(&v).ok_or(StateError::BadFlavour(v))?)
                }
                "param" => st.params.push(v),
                "created" => st.created.push(v),
                "edited" => st.edited.push(v),
                "dir" => st.dirs.push(v),
                "grubby" if v == "yes" => st.grubby = true,
                _ => return Err(bad()),
            }
        }
        st.flavour = flavour.ok_or(StateError::NoFlavour)?;
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut st = State::new(Flavour::RhelGrubby);
        st.params = vec![
            "memmap=1G$0x40000000".into(),
            "critmem.base=0x40000000".into(),
        ];
        st.created = vec!["/etc/modprobe.d/critmem.conf".into()];
        st.edited = vec!["/etc/kernel/cmdline".into()];
        st.dirs = vec!["/etc/critmem".into()];
        st.grubby = true;
        assert_eq!(State::parse(&st.render()), Ok(st));
        assert!(State::parse("flavour=lilo\n").is_err());
        assert!(State::parse("param=x\n").is_err());
    }
}
