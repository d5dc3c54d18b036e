//! Carries out a [`Plan`]: directories, files (written atomically: a
//! temporary file in the same directory, then rename), then bootloader
//! commands. Validation and planning happen before, so a refused request
//! never gets here and no file is touched.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use thiserror::Error;

use crate::host::Root;
use crate::plan::{Cmd, Plan};

/// Why carrying out a plan failed part way.
#[derive(Debug, Error)]
pub enum ExecError {
    /// A directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    Mkdir {
        /// The directory on this machine.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file on this machine.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file could not be deleted.
    #[error("cannot delete {path}: {source}")]
    Delete {
        /// The file on this machine.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A command could not be started.
    #[error("cannot run {cmd}: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A command failed.
    #[error("{cmd} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// The end of its error output.
        stderr: String,
    },
}

fn write_atomic(path: &PathBuf, content: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.critmem-boot.tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn run(cmd: &Cmd, log: &mut dyn FnMut(String)) -> Result<(), ExecError> {
    log(format!("running: {}", cmd.display()));
    let out = Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|source| ExecError::Spawn {
            cmd: cmd.display(),
            source,
        })?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        log(format!("  {line}"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(ExecError::Failed {
            cmd: cmd.display(),
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    for line in stderr.lines() {
        log(format!("  {line}"));
    }
    Ok(())
}

/// Carries out the plan, reporting each step through `log`.
pub fn execute(root: &Root, plan: &Plan, log: &mut dyn FnMut(String)) -> Result<(), ExecError> {
    for d in &plan.mkdirs {
        let path = root.path(d);
        fs::create_dir(&path).or_else(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(ExecError::Mkdir { path, source: e })
            }
        })?;
        log(format!("created directory {d}"));
    }
    for f in plan.files.iter().filter(|f| f.changes()) {
        let path = root.path(&f.path);
        match &f.new {
            Some(content) => {
                write_atomic(&path, content).map_err(|source| ExecError::Write { path, source })?;
                log(format!(
                    "{} {}",
                    if f.old.is_some() { "updated" } else { "wrote" },
                    f.path
                ));
            }
            None => {
                fs::remove_file(&path).or_else(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(ExecError::Delete { path, source: e })
                    }
                })?;
                log(format!("deleted {}", f.path));
            }
        }
    }
    for d in &plan.rmdirs {
        match fs::remove_dir(root.path(d)) {
            Ok(()) => log(format!("removed directory {d}")),
            Err(e) => log(format!("kept directory {d}: {e}")),
        }
    }
    for c in &plan.commands {
        run(c, log)?;
    }
    Ok(())
}
