//! What would happen to each file, read from the disk and never written:
//! the one decision behind the preview, `--dry-run`, `check`'s drift and the
//! real run.

use super::diff::diff_text;
use super::ApplyOptions;
use crate::error::Error;
use crate::plan::{Owner, Plan, PlannedFile, Service};
use crate::root::{read_optional, read_optional_text, under_root};
use crate::state::{sha256_hex, FileRecord};
use md5::Md5;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file cannot simply be written or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Edited by hand since cellsctl wrote it.
    HandEdited,
    /// Exists, but cellsctl never wrote it.
    Unknown,
    /// cellsctl wrote it, the admin deleted it; only `--restore` re-creates it.
    Deleted,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conflict::HandEdited => "edited by hand",
            Conflict::Unknown => "not written by cellsctl",
            Conflict::Deleted => "deleted by hand",
        })
    }
}

/// What happens to one file. Its one name (`Display`) is also its name in
/// `--json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Content unchanged; mode or owner corrected.
    FixPermissions,
    /// A distro's untouched default, backed up and replaced.
    ReplaceDefault {
        package: String,
    },
    /// A managed file no longer planned (e.g. Prometheus turned off).
    Remove,
    /// Deleted by the admin and re-created because of `--restore`.
    Restore,
    /// Written (or removed) over this conflict because of `--force`, after a backup.
    Overwrite(Conflict),
    /// Not written because of this conflict; the run stops before any write.
    Refused(Conflict),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::FixPermissions => "fix-permissions",
            Action::ReplaceDefault { .. } => "replace-default",
            Action::Remove => "remove",
            Action::Restore => "restore",
            Action::Overwrite(_) => "overwrite",
            Action::Refused(_) => "refused",
        })
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Action {
    /// The planned content goes to disk.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Update
                | Action::ReplaceDefault { .. }
                | Action::Overwrite(_)
                | Action::Restore
        )
    }

    pub fn conflict(&self) -> Option<Conflict> {
        match self {
            Action::Overwrite(c) | Action::Refused(c) => Some(*c),
            _ => None,
        }
    }
}

/// One file's decision.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub action: Action,
    pub mode: u32,
    /// Unified diff (redacted) from the disk to the plan; empty when the content stays.
    pub diff: String,
    /// Where the previous content was saved, once `execute` saved it.
    pub backup: Option<String>,
    pub affects: Vec<Service>,
    pub is_state: bool,
    /// sha256 of the content written (or that would be); `None` for removals.
    pub sha256: Option<String>,
}

/// What would happen, file by file; `execute` fills in backups and cleanup.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// One entry per planned file, in plan order.
    pub files: Vec<Entry>,
    /// Managed files no longer planned that are on disk.
    pub removals: Vec<Entry>,
    /// An interrupted run's intent record was found and is honoured.
    pub resumed: bool,
    /// Temporary files left by an interrupted run, removed by `execute`.
    pub cleaned_up: Vec<String>,
}

impl Decision {
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.files.iter().chain(&self.removals)
    }

    /// Services to reload or restart, in order, for what changes.
    pub fn services(&self) -> BTreeSet<Service> {
        self.entries()
            .filter(|e| e.action.writes() || e.action == Action::Remove)
            .flat_map(|e| e.affects.iter().copied())
            .collect()
    }

    /// Whether anything but the state changes.
    pub fn changes(&self) -> bool {
        self.entries()
            .any(|e| !e.is_state && e.action != Action::Unchanged)
    }

    /// Why nothing may be written, if a conflict stops the run.
    pub fn refusal(&self, root: &Path) -> Option<Refusal> {
        let conflicts: Vec<Entry> = self
            .entries()
            .filter(|e| e.action.conflict().is_some())
            .cloned()
            .collect();
        conflicts
            .iter()
            .any(|e| matches!(e.action, Action::Refused(_)))
            .then(|| Refusal {
                root: root.to_path_buf(),
                conflicts,
            })
    }
}

/// Files changed outside cellsctl, which stop the run before its first
/// write: each with what cellsctl would write instead.
#[derive(Debug)]
pub struct Refusal {
    pub root: PathBuf,
    pub conflicts: Vec<Entry>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let is = |e: &Entry, c: Conflict| e.action.conflict() == Some(c);
        writeln!(
            f,
            "refusing to overwrite files changed outside cellsctl (nothing was written):"
        )?;
        for e in &self.conflicts {
            if let Some(c) = e.action.conflict() {
                writeln!(f, "  {}: {c}", under_root(&self.root, &e.path).display())?;
            }
        }
        writeln!(f, "What cellsctl would write instead:")?;
        for e in self.conflicts.iter().filter(|e| !is(e, Conflict::Deleted)) {
            f.write_str(&e.diff)?;
        }
        if self.conflicts.iter().any(|e| is(e, Conflict::Deleted)) {
            writeln!(f, "Re-run with --restore to re-create deleted files.")?;
        }
        if self.conflicts.iter().any(|e| !is(e, Conflict::Deleted)) {
            f.write_str("Re-run with --force to overwrite edited or unknown files (each is first backed up as FILE.cellsctl-bak.TIMESTAMP), or undo the edits.")?;
        }
        Ok(())
    }
}

/// Who files can be given to: resolved once per run.
pub(super) struct Ownership {
    is_root: bool,
}

impl Ownership {
    pub(super) fn detect() -> Ownership {
        Ownership {
            is_root: nix::unistd::geteuid().is_root(),
        }
    }

    /// uid/gid to set (none unless running as root), and whether the group exists.
    pub(super) fn resolve(&self, owner: &Owner) -> (Option<u32>, Option<u32>, bool) {
        if !self.is_root {
            return (None, None, false);
        }
        let uid = owner
            .user
            .as_deref()
            .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
            .map(|u| u.uid.as_raw())
            .unwrap_or(0);
        let gid = owner
            .group
            .as_deref()
            .and_then(|g| nix::unistd::Group::from_name(g).ok().flatten())
            .map(|g| g.gid.as_raw());
        (Some(uid), Some(gid.unwrap_or(0)), gid.is_some())
    }

    /// The file's mode: group bits only when its group exists.
    fn mode(&self, file: &PlannedFile) -> u32 {
        let (_, _, group_applied) = self.resolve(&file.owner);
        match file.mode_without_group {
            Some(m) if !group_applied && file.owner.group.is_some() => m,
            _ => file.mode,
        }
    }
}

/// The intent record: `sha256  path` lines, like sha256sum's output.
pub(super) fn read_intent(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    Ok(read_optional_text(path)?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, p)| (p.to_string(), hash.to_string()))
        .collect())
}

/// The package whose untouched conffile this is, per `var/lib/dpkg/status` below the root.
fn distro_default(root: &Path, deployment_path: &str, on_disk: &[u8]) -> Option<String> {
    let status = std::fs::read_to_string(under_root(root, "/var/lib/dpkg/status")).ok()?;
    let md5 = hex::encode(Md5::digest(on_disk));
    let mut package = None;
    for line in status.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            package = Some(p.trim().to_string());
        } else if line.starts_with(' ') {
            let mut parts = line.split_whitespace();
            if parts.next() == Some(deployment_path) && parts.next() == Some(md5.as_str()) {
                return package.or(Some("a Debian package".into()));
            }
        }
    }
    None
}

/// What cellsctl knows about the files it wrote: the state's records, and
/// what an interrupted run intended to write.
struct Known<'a> {
    previous: &'a BTreeMap<String, FileRecord>,
    intent: BTreeMap<String, String>,
}

impl Known<'_> {
    /// The file is cellsctl's own, as recorded or as an interrupted run left it.
    fn is_own(&self, path: &str, bytes: &[u8]) -> bool {
        let hash = sha256_hex(bytes);
        self.previous.get(path).is_some_and(|r| r.sha256 == hash)
            || self.intent.get(path) == Some(&hash)
    }
}

/// Decides every file's action from what is on disk; writes nothing.
pub fn decide(
    plan: &Plan,
    previous: &BTreeMap<String, FileRecord>,
    opts: &ApplyOptions,
) -> Result<Decision, Error> {
    let ownership = Ownership::detect();
    let known = Known {
        previous,
        intent: read_intent(&under_root(opts.root, opts.intent))?,
    };
    let mut decision = Decision {
        resumed: !known.intent.is_empty(),
        ..Decision::default()
    };
    for file in &plan.files {
        decision
            .files
            .push(decide_file(file, &known, &ownership, opts)?);
    }
    for gone in &plan.absent {
        if !previous.contains_key(&gone.path) {
            continue;
        }
        let target = under_root(opts.root, &gone.path);
        if let Some(old) = read_optional(&target)? {
            let action = if known.is_own(&gone.path, &old) {
                Action::Remove
            } else {
                Action::Refused(Conflict::HandEdited)
            };
            let mode = std::fs::metadata(&target)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0);
            decision.removals.push(Entry {
                path: gone.path.clone(),
                action,
                mode,
                diff: String::new(),
                backup: None,
                affects: gone.affects.clone(),
                is_state: false,
                sha256: None,
            });
        }
    }
    settle_conflicts(&mut decision, opts.force);
    Ok(decision)
}

/// A conflict is overwritten with `--force`, unless any conflict is a
/// deleted file (only `--restore` brings those back): then all are refused.
fn settle_conflicts(decision: &mut Decision, force: bool) {
    let deleted = decision
        .entries()
        .any(|e| e.action.conflict() == Some(Conflict::Deleted));
    let blocking = deleted || !force;
    for e in decision.files.iter_mut().chain(&mut decision.removals) {
        if let Some(c) = e.action.conflict() {
            e.action = if blocking {
                Action::Refused(c)
            } else {
                Action::Overwrite(c)
            };
        }
    }
}

fn decide_file(
    file: &PlannedFile,
    known: &Known,
    ownership: &Ownership,
    opts: &ApplyOptions,
) -> Result<Entry, Error> {
    let target = under_root(opts.root, &file.path);
    let existing = read_optional(&target)?;
    let mode = ownership.mode(file);
    let recorded = known.previous.contains_key(&file.path);
    let action = match &existing {
        None if file.is_state || !recorded => Action::Create,
        None if opts.restore => Action::Restore,
        None => Action::Refused(Conflict::Deleted),
        Some(old) if *old == file.contents => {
            let meta = std::fs::metadata(&target).map_err(|e| Error::io("inspect", &target, e))?;
            let (uid, gid, _) = ownership.resolve(&file.owner);
            let mode_ok = meta.permissions().mode() & 0o7777 == mode;
            let owner_ok =
                uid.is_none_or(|u| u == meta.uid()) && gid.is_none_or(|g| g == meta.gid());
            if mode_ok && owner_ok {
                Action::Unchanged
            } else {
                Action::FixPermissions
            }
        }
        Some(_) if file.is_state => Action::Update,
        Some(old) if known.is_own(&file.path, old) => Action::Update,
        Some(_) if recorded => Action::Refused(Conflict::HandEdited),
        Some(old) => match distro_default(opts.root, &file.path, old) {
            Some(package) => Action::ReplaceDefault { package },
            None => Action::Refused(Conflict::Unknown),
        },
    };
    let content_changes = !matches!(action, Action::Unchanged | Action::FixPermissions);
    let diff = if content_changes && !file.is_state {
        diff_text(
            &file.path,
            existing.as_deref(),
            &file.contents,
            &file.visibility,
        )
    } else {
        String::new()
    };
    Ok(Entry {
        path: file.path.clone(),
        action,
        mode,
        diff,
        backup: None,
        affects: file.affects.clone(),
        is_state: file.is_state,
        sha256: Some(sha256_hex(&file.contents)),
    })
}
