//! The plan: every file cellsctl wants on disk, as bytes with a mode and an
//! owner. Renderers produce it; `apply` consumes it and knows nothing else
//! about Caddy or Cells.

use std::fmt;

/// A service that must be told about a changed file, in restart order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// `systemctl daemon-reload` (a unit or drop-in changed).
    SystemdDaemon,
    Cells,
    Caddy,
    Prometheus,
}

impl Service {
    /// The command to run for this service after its files changed.
    pub fn command(self) -> &'static str {
        match self {
            Service::SystemdDaemon => "systemctl daemon-reload",
            Service::Cells => "systemctl restart cells",
            Service::Caddy => "systemctl reload caddy",
            Service::Prometheus => "systemctl restart prometheus",
        }
    }
}

/// Who owns a file or directory. `None` means root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub user: Option<String>,
    pub group: Option<String>,
}

impl Owner {
    pub fn root() -> Owner {
        Owner::default()
    }
}

/// How much of a file may be shown in diffs and messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Shown in full.
    Public,
    /// Shown with the value of every `KEY:` line for these keys (and the
    /// indented lines that continue it) replaced by `<redacted>`. Masking by
    /// key, not by value: a value search would leak the rest of a password
    /// that contains another, and reveal which other text equals a password.
    Redacted(Vec<&'static str>),
    /// Never shown, only named: private keys (secret), certificates (noise).
    NotShown(&'static str),
}

/// One file cellsctl wants on disk.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// Deployment path, absolute (e.g. `/etc/caddy/Caddyfile`); written below the root.
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
    pub owner: Owner,
    /// When the group cannot be resolved, use this mode instead (drops group bits).
    pub mode_without_group: Option<u32>,
    pub visibility: Visibility,
    /// Services to reload or restart when this file changes.
    pub affects: Vec<Service>,
    /// The state record: never drift-checked, written last.
    pub is_state: bool,
}

/// One directory cellsctl makes sure exists (existing ones keep their mode).
#[derive(Clone, Debug)]
pub struct PlannedDir {
    pub path: String,
    pub mode: u32,
    pub owner: Owner,
}

/// A file cellsctl may have written before but does not want now.
#[derive(Clone, Debug)]
pub struct AbsentFile {
    pub path: String,
    /// Services to reload or restart when it is removed.
    pub affects: Vec<Service>,
}

/// Everything the renderers want on disk.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub dirs: Vec<PlannedDir>,
    pub files: Vec<PlannedFile>,
    /// Removed when cellsctl wrote them and they are unedited.
    pub absent: Vec<AbsentFile>,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.command())
    }
}
