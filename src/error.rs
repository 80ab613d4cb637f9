//! The one error type. Each variant knows its exit code, and its wording is
//! written once, here.

use crate::apply::Refusal;
use std::path::PathBuf;

/// What went wrong, and so which exit code the process returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid input or usage: exit 2. The message names the flag and what is accepted.
    #[error("{0}")]
    Usage(String),
    /// Answers nobody gave, each as the flag (or variable) that gives it: exit 2.
    #[error(
        "missing answers (no prompting with --non-interactive or without a terminal):\n  {}",
        .0.join("\n  ")
    )]
    Missing(Vec<String>),
    /// Hand-edited, unknown or deleted files stopped the run before any write: exit 3.
    #[error("{0}")]
    Refused(Refusal),
    /// `adopt`: the Caddyfile holds what cellsctl's rendering would drop: exit 3.
    #[error(
        "adopt: the Caddyfile holds what cellsctl's rendering would drop; nothing was written:\n  {}\nmove these elsewhere (or drop them), or adopt with --force (the original is kept as a backup)",
        .0.join("\n  ")
    )]
    WouldDrop(Vec<String>),
    /// `check`: files differ from what cellsctl wrote: exit 3.
    #[error("check: files differ from what cellsctl wrote (see above)")]
    Drifted,
    /// `check`: a check failed: exit 1.
    #[error("check: at least one check failed (see above)")]
    CheckFailed,
    /// `verify`: these live checks failed: exit 1.
    #[error("verify: failed: {}", .0.join(", "))]
    VerifyFailed(Vec<String>),
    /// A file or directory could not be read, written or inspected: exit 1.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// install.yml is not the small file cellsctl wrote (its owner, the
    /// Cells user, can make it anything): exit 1, nothing written but a
    /// certificate due for renewal.
    #[error("{path}: {why}; cellsctl reads it only as the small YAML file it wrote, so it wrote nothing else (a certificate due for renewal excepted). Put back the file cellsctl wrote, or remove it once `cells configure` has used it, and run again.")]
    InstallUnreadable { path: String, why: String },
    /// Anything else that failed at run time: exit 1.
    #[error("{0}")]
    Runtime(String),
    /// The person declined or closed the input: exit 1, nothing written.
    #[error("cancelled ({0}); nothing was written")]
    Cancelled(String),
    /// Ctrl-C at a question: exit 130, as for SIGINT, nothing written.
    #[error("interrupted; nothing was written")]
    Interrupted,
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn runtime(msg: impl Into<String>) -> Error {
        Error::Runtime(msg.into())
    }

    /// An I/O failure on `path`.
    pub fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Missing(_) => 2,
            Error::Refused(_) | Error::Drifted | Error::WouldDrop(_) => 3,
            Error::Interrupted => 130,
            Error::CheckFailed
            | Error::VerifyFailed(_)
            | Error::InstallUnreadable { .. }
            | Error::Io { .. }
            | Error::Runtime(_)
            | Error::Cancelled(_) => 1,
        }
    }
}
