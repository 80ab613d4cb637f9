//! Apply a plan below a root, in two steps. `decide` reads what is on disk
//! and says what would happen to each file (and refuses, as a typed error,
//! before anything is written); the preview, `--dry-run`, `check` and the
//! real run all use it. `execute` then only writes what was decided, each
//! file atomically with its planned mode and owner. Knows `Plan` and the
//! filesystem, nothing about Caddy or Cells.

mod decide;
mod diff;
mod execute;

pub use decide::{
    decide, unsafe_dirs, Action, Conflict, Decision, Entry, Known, Refusal, UnsafeDir,
};
pub use diff::diff_text;
#[cfg(test)]
pub(crate) use diff::shown;
pub use execute::{execute, Fault};

use std::path::Path;

/// How to decide, and (for `execute`) how to write.
#[derive(Clone, Copy)]
pub struct ApplyOptions<'a> {
    pub root: &'a Path,
    pub force: bool,
    /// Re-create managed files the admin deleted.
    pub restore: bool,
    /// For backup names, e.g. `20261127T054603Z`.
    pub timestamp: &'a str,
    /// Deployment path of the intent record: the hashes about to be written,
    /// saved before the first write and removed after the last, so the next
    /// run can tell an interrupted run's files from an admin's edits.
    pub intent: &'a str,
    /// Testing hook: fail (or pause) after this many files were written.
    pub fault: Option<Fault>,
}
