//! One file per command. Each takes its parsed arguments and returns the
//! one error type, which knows its exit code.

pub mod check;
pub mod generate;
pub mod hash_password;
pub mod man;
pub mod node_bundle;
pub mod verify;

use crate::error::Error;
use std::io::Write;

/// Writes a command's output to stdout.
fn print(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::runtime(format!("cannot write to stdout: {e}")))
}

/// Findings as pretty JSON, one document.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value)
        .map(|t| t + "\n")
        .unwrap_or_default()
}
