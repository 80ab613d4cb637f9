//! What would happen to each file, read from the disk and never written:
//! the one decision behind the preview, `--dry-run`, `check`'s drift and the
//! real run.

use super::diff::diff_text;
use super::ApplyOptions;
use crate::error::Error;
use crate::plan::{Owner, Plan, PlannedFile, Service};
use crate::root::{
    inspect, inspect_following, read_optional_text, under_root, Found, Identity, MANAGED_FILE_LIMIT,
};
use crate::state::{sha256_hex, FileRecord};
use md5::Md5;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a file cannot simply be written or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Edited by hand since cellsctl wrote it.
    HandEdited,
    /// Exists, but cellsctl never wrote it.
    Unknown,
    /// cellsctl wrote it, the admin deleted it; only `--restore` re-creates it.
    Deleted,
    /// Something that is not a file cellsctl reads (a symbolic link, a
    /// FIFO, a directory, a file over the size cap): this says what.
    NotAFile(String),
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::HandEdited => f.write_str("edited by hand"),
            Conflict::Unknown => f.write_str("not written by cellsctl"),
            Conflict::Deleted => f.write_str("deleted by hand"),
            Conflict::NotAFile(what) => write!(f, "{what}, not a file cellsctl wrote"),
        }
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

    pub fn conflict(&self) -> Option<&Conflict> {
        match self {
            Action::Overwrite(c) | Action::Refused(c) => Some(c),
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
    /// The file holds secrets: its hash is not told, its backups stay private.
    pub secret: bool,
    /// The inode read from disk: owner, mode and backups go to it and no other.
    pub(super) read: Option<Identity>,
    /// A backup's mode: the file's, at most the mode cellsctl gives it.
    pub(super) backup_mode: u32,
    /// `--force` keeps this file as it is on disk (see `PlannedFile`).
    pub force_keeps: bool,
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
    /// Managed directories (or their parents below the root) that someone
    /// other than root could change: nothing is written into them.
    pub unsafe_dirs: Vec<UnsafeDir>,
}

/// A directory cellsctl will not write into, and why.
#[derive(Clone, Debug)]
pub struct UnsafeDir {
    pub path: PathBuf,
    pub why: String,
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

    /// Why nothing may be written, if a conflict or a directory stops the run.
    pub fn refusal(&self, root: &Path) -> Option<Refusal> {
        let conflicts: Vec<Entry> = self
            .entries()
            .filter(|e| e.action.conflict().is_some())
            .cloned()
            .collect();
        let refused = conflicts
            .iter()
            .any(|e| matches!(e.action, Action::Refused(_)));
        (refused || !self.unsafe_dirs.is_empty()).then(|| Refusal {
            root: root.to_path_buf(),
            conflicts,
            dirs: self.unsafe_dirs.clone(),
        })
    }
}

/// Files changed outside cellsctl (each with what cellsctl would write
/// instead), or directories others could change: the run stops before its
/// first write.
#[derive(Debug)]
pub struct Refusal {
    pub root: PathBuf,
    pub conflicts: Vec<Entry>,
    pub dirs: Vec<UnsafeDir>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.dirs.is_empty() {
            writeln!(
                f,
                "refusing to write into directories that someone other than root can change (nothing was written):"
            )?;
            for d in &self.dirs {
                writeln!(f, "  {}: {}", d.path.display(), d.why)?;
            }
            f.write_str("Give each to root and let only root write it (chown root:root DIR; chmod go-w DIR), then re-run.")?;
            if self.conflicts.is_empty() {
                return Ok(());
            }
            writeln!(f)?;
        }
        let is = |e: &Entry, c: Conflict| e.action.conflict() == Some(&c);
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
        let (kept, overwritten): (Vec<&Entry>, Vec<&Entry>) = self
            .conflicts
            .iter()
            .filter(|e| !is(e, Conflict::Deleted))
            .partition(|e| e.force_keeps);
        if !kept.is_empty() {
            let names: Vec<String> = kept
                .iter()
                .map(|e| under_root(&self.root, &e.path).display().to_string())
                .collect();
            writeln!(
                f,
                "--force would keep {} as they are and build on them: do that only if you put them there yourself. To have cellsctl issue new ones instead, delete them and re-run with --restore.",
                names.join(", ")
            )?;
        }
        if !overwritten.is_empty() {
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
    pub(super) fn mode(&self, file: &PlannedFile) -> u32 {
        let (_, _, group_applied) = self.resolve(&file.owner);
        match file.mode_without_group {
            Some(m) if !group_applied && file.owner.group.is_some() => m,
            _ => file.mode,
        }
    }
}

/// The intent record: `sha256  path` lines, like sha256sum's output.
fn read_intent(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    Ok(read_optional_text(path)?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, p)| (p.to_string(), hash.to_string()))
        .collect())
}

/// dpkg's record of every package: large, but root's own file.
const DPKG_STATUS_LIMIT: u64 = 64 << 20;

/// The package whose untouched conffile this is, per `var/lib/dpkg/status` below the root.
fn distro_default(root: &Path, deployment_path: &str, on_disk: &[u8]) -> Option<String> {
    let status =
        match inspect_following(&under_root(root, "/var/lib/dpkg/status"), DPKG_STATUS_LIMIT) {
            Ok(Found::Regular(r)) => String::from_utf8(r.bytes).ok()?,
            _ => return None,
        };
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

/// The directories that hold these deployment paths and their parents below
/// the root, where someone other than root (or the user cellsctl runs as)
/// could change them: owned by another user, writable by group or others,
/// or not a plain directory. One that does not exist yet is created by
/// cellsctl, as it should be.
pub fn unsafe_dirs<'a>(root: &Path, paths: impl Iterator<Item = &'a str>) -> Vec<UnsafeDir> {
    let me = nix::unistd::geteuid().as_raw();
    let dirs: BTreeSet<&Path> = paths
        .flat_map(|p| Path::new(p).ancestors().skip(1))
        .filter(|d| *d != Path::new("/") && !d.as_os_str().is_empty())
        .collect();
    dirs.into_iter()
        .filter_map(|d| {
            let on_disk = under_root(root, &d.to_string_lossy());
            let link = std::fs::symlink_metadata(&on_disk).ok()?;
            // A link is the layout its owner chose: it must be root's (or
            // the user's) too, and what it leads to is what is checked.
            let meta = match link.file_type().is_symlink() {
                true => std::fs::metadata(&on_disk).ok()?,
                false => link.clone(),
            };
            let foreign = |uid: u32| uid != 0 && uid != me;
            let name = |uid: u32| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map_or(format!("uid {uid}"), |u| u.name)
            };
            let why = if link.file_type().is_symlink() && foreign(link.uid()) {
                format!("a symbolic link owned by {}", name(link.uid()))
            } else if !meta.is_dir() {
                "not a directory".to_string()
            } else if foreign(meta.uid()) {
                format!("owned by {}", name(meta.uid()))
            } else if meta.mode() & 0o022 != 0 {
                format!(
                    "writable by {} (mode {:04o})",
                    if meta.mode() & 0o002 != 0 {
                        "others"
                    } else {
                        "its group"
                    },
                    meta.mode() & 0o7777
                )
            } else {
                return None;
            };
            Some(UnsafeDir { path: on_disk, why })
        })
        .collect()
}

/// What cellsctl knows about the files it wrote: the state's records, and
/// what an interrupted run intended to write.
pub struct Known<'a> {
    previous: &'a BTreeMap<String, FileRecord>,
    intent: BTreeMap<String, String>,
}

impl<'a> Known<'a> {
    /// The records, and the intent record at `intent` below `root`.
    pub fn read(
        root: &Path,
        intent: &str,
        previous: &'a BTreeMap<String, FileRecord>,
    ) -> Result<Known<'a>, Error> {
        Ok(Known {
            previous,
            intent: read_intent(&under_root(root, intent))?,
        })
    }

    /// The file is cellsctl's own, as recorded or as an interrupted run left it.
    pub fn is_own(&self, path: &str, bytes: &[u8]) -> bool {
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
    let known = Known::read(opts.root, opts.intent, previous)?;
    let managed = plan
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(plan.absent.iter().map(|a| a.path.as_str()));
    let mut decision = Decision {
        resumed: !known.intent.is_empty(),
        unsafe_dirs: unsafe_dirs(opts.root, managed),
        ..Decision::default()
    };
    for file in &plan.files {
        decision
            .files
            .push(decide_file(file, &known, &ownership, opts)?);
    }
    for gone in &plan.absent {
        if previous.contains_key(&gone.path) {
            decision
                .removals
                .extend(decide_removal(gone, &known, opts)?);
        }
    }
    settle_conflicts(&mut decision, opts.force);
    Ok(decision)
}

/// A managed file no longer wanted: removed if cellsctl wrote it.
fn decide_removal(
    gone: &crate::plan::AbsentFile,
    known: &Known,
    opts: &ApplyOptions,
) -> Result<Option<Entry>, Error> {
    let target = under_root(opts.root, &gone.path);
    let (action, mode, read) = match inspect(&target, MANAGED_FILE_LIMIT)? {
        Found::Missing => return Ok(None),
        Found::Unusual(what) => (Action::Refused(Conflict::NotAFile(what)), 0, None),
        Found::Regular(r) if known.is_own(&gone.path, &r.bytes) => {
            (Action::Remove, r.mode, Some(r.identity))
        }
        Found::Regular(r) => (
            Action::Refused(Conflict::HandEdited),
            r.mode,
            Some(r.identity),
        ),
    };
    Ok(Some(Entry {
        path: gone.path.clone(),
        action,
        mode,
        diff: String::new(),
        backup: None,
        affects: gone.affects.clone(),
        is_state: false,
        sha256: None,
        secret: false,
        read,
        backup_mode: mode & gone.mode,
        force_keeps: false,
    }))
}

/// A conflict is overwritten with `--force`, unless any conflict is a
/// deleted file (only `--restore` brings those back): then all are refused.
fn settle_conflicts(decision: &mut Decision, force: bool) {
    let deleted = decision
        .entries()
        .any(|e| e.action.conflict() == Some(&Conflict::Deleted));
    let blocking = deleted || !force;
    for e in decision.files.iter_mut().chain(&mut decision.removals) {
        if let Some(c) = e.action.conflict().cloned() {
            e.action = if blocking {
                Action::Refused(c)
            } else {
                Action::Overwrite(c)
            };
        }
    }
}

/// What happens to a planned file, given what is on disk.
fn classify(
    file: &PlannedFile,
    found: &Found,
    known: &Known,
    ownership: &Ownership,
    opts: &ApplyOptions,
) -> Action {
    let recorded = known.previous.contains_key(&file.path);
    match found {
        Found::Missing if file.is_state || !recorded => Action::Create,
        Found::Missing if opts.restore => Action::Restore,
        Found::Missing => Action::Refused(Conflict::Deleted),
        Found::Unusual(what) => Action::Refused(Conflict::NotAFile(what.clone())),
        Found::Regular(r) if r.bytes == file.contents => {
            let (uid, gid, _) = ownership.resolve(&file.owner);
            let mode_ok = r.mode == ownership.mode(file);
            let owner_ok = uid.is_none_or(|u| u == r.uid) && gid.is_none_or(|g| g == r.gid);
            if mode_ok && owner_ok {
                Action::Unchanged
            } else {
                Action::FixPermissions
            }
        }
        Found::Regular(_) if file.is_state => Action::Update,
        Found::Regular(r) if known.is_own(&file.path, &r.bytes) => Action::Update,
        Found::Regular(_) if recorded => Action::Refused(Conflict::HandEdited),
        Found::Regular(r) => match distro_default(opts.root, &file.path, &r.bytes) {
            Some(package) => Action::ReplaceDefault { package },
            None => Action::Refused(Conflict::Unknown),
        },
    }
}

fn decide_file(
    file: &PlannedFile,
    known: &Known,
    ownership: &Ownership,
    opts: &ApplyOptions,
) -> Result<Entry, Error> {
    let found = inspect(&under_root(opts.root, &file.path), MANAGED_FILE_LIMIT)?;
    let action = classify(file, &found, known, ownership, opts);
    let content_changes = !matches!(action, Action::Unchanged | Action::FixPermissions);
    let diff = match &found {
        Found::Unusual(what) => format!("  ({}: {what}, not shown)\n", file.path),
        _ if content_changes && !file.is_state => {
            diff_text(&file.path, found.bytes(), &file.contents, &file.visibility)
        }
        _ => String::new(),
    };
    let secret = file.visibility.holds_secrets();
    let mode = ownership.mode(file);
    let (read, backup_mode) = match &found {
        Found::Regular(r) => (Some(r.identity), r.mode & mode & 0o777),
        Found::Missing | Found::Unusual(_) => (None, 0o600),
    };
    Ok(Entry {
        path: file.path.clone(),
        action,
        mode,
        diff,
        backup: None,
        affects: file.affects.clone(),
        is_state: file.is_state,
        sha256: (!secret).then(|| sha256_hex(&file.contents)),
        secret,
        read,
        backup_mode,
        force_keeps: file.force_keeps,
    })
}
