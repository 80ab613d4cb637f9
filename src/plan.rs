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
    /// Never shown, only named.
    NotShown(Hidden),
}

/// What a file that is never shown holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hidden {
    /// Public, but its text is noise in a diff.
    Certificate,
    /// Secret.
    PrivateKey,
}

impl fmt::Display for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hidden::Certificate => "certificate",
            Hidden::PrivateKey => "private key",
        })
    }
}

impl Visibility {
    /// The file holds a secret (a password, a private key): nothing about
    /// its content is shown, not even its hash, and its backups stay private.
    pub fn holds_secrets(&self) -> bool {
        matches!(
            self,
            Visibility::Redacted(_) | Visibility::NotShown(Hidden::PrivateKey)
        )
    }
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
    /// Key material others build on: `--force` keeps what is on disk rather
    /// than overwriting it (the renderer planned that very content).
    pub force_keeps: bool,
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
    /// The mode cellsctl gave it: a backup of it gets no more.
    pub mode: u32,
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
