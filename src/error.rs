//! The one error type; it knows its exit code.

use std::fmt;

/// What went wrong, and so which exit code the process returns.
#[derive(Debug)]
pub enum Error {
    /// Invalid input or usage: exit 2. The message names the flag and what is accepted.
    Usage(String),
    /// Refused to touch hand-edited or unknown files: exit 3.
    Refused(String),
    /// Anything else that failed at run time: exit 1.
    Runtime(String),
    /// The person declined, pressed Ctrl-C or closed the input: exit 1, nothing written.
    Cancelled(String),
    /// Answers nobody gave, each as the flag (or variable) that gives it: exit 2.
    Missing(Vec<String>),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn runtime(msg: impl Into<String>) -> Error {
        Error::Runtime(msg.into())
    }

    /// An I/O failure on `path`.
    pub fn io(action: &str, path: &std::path::Path, e: std::io::Error) -> Error {
        Error::Runtime(format!("cannot {action} {}: {e}", path.display()))
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Missing(_) => 2,
            Error::Refused(_) => 3,
            Error::Runtime(_) | Error::Cancelled(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Refused(m) | Error::Runtime(m) => f.write_str(m),
            Error::Cancelled(why) => write!(f, "cancelled ({why}); nothing was written"),
            Error::Missing(flags) => write!(
                f,
                "missing answers (no prompting with --non-interactive or without a terminal):\n  {}",
                flags.join("\n  ")
            ),
        }
    }
}

impl std::error::Error for Error {}
