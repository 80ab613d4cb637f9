//! Apply a plan below a root: decide each file's action, refuse on hand
//! edits before touching anything, then write atomically with the planned
//! mode and owner. Knows `Plan` and the filesystem, nothing about Caddy or Cells.

use crate::error::Error;
use crate::plan::{Owner, Plan, PlannedDir, PlannedFile, Service, Visibility};
use crate::state::FileRecord;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// sha256 of some bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `root` + an absolute deployment path.
pub fn under_root(root: &Path, deployment_path: &str) -> PathBuf {
    root.join(deployment_path.trim_start_matches('/'))
}

/// What happens to one file.
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
    /// Edited by hand since cellsctl wrote it.
    HandEdited,
    /// Exists, but cellsctl never wrote it.
    Unknown,
    /// cellsctl wrote it, the admin deleted it; only `--restore` re-creates it.
    Deleted,
    /// Deleted by the admin and re-created because of `--restore`.
    Restore,
}

impl Action {
    pub fn label(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::FixPermissions => "fix permissions",
            Action::ReplaceDefault { .. } => "replace default",
            Action::Remove => "remove",
            Action::HandEdited => "edited by hand",
            Action::Unknown => "not written by cellsctl",
            Action::Deleted => "deleted by hand",
            Action::Restore => "restore",
        }
    }

    fn is_conflict(&self) -> bool {
        matches!(self, Action::HandEdited | Action::Unknown | Action::Deleted)
    }

    fn writes(&self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Update
                | Action::ReplaceDefault { .. }
                | Action::HandEdited
                | Action::Unknown
                | Action::Restore
        )
    }
}

/// One line of the result.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub action: Action,
    pub mode: u32,
    /// Unified diff (redacted) for changed files; empty otherwise.
    pub diff: String,
    /// Where the previous content was saved, when it was.
    pub backup: Option<String>,
    pub affects: Vec<Service>,
    pub is_state: bool,
    /// sha256 of the content written (or that would be); `None` for removals.
    pub sha256: Option<String>,
}

/// What apply did (or, in a dry run, would do).
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub entries: Vec<Entry>,
    pub created_dirs: Vec<String>,
    /// Temporary files left by an interrupted run, removed.
    pub cleaned_up: Vec<String>,
    /// An interrupted run's intent record was found and honoured.
    pub resumed: bool,
    /// Why nothing was written: hand-edited, unknown or deleted files (exit 3).
    pub refused: Option<String>,
}

impl Report {
    /// Services to reload or restart, in order, for the files that changed.
    pub fn services(&self) -> BTreeSet<Service> {
        self.entries
            .iter()
            .filter(|e| e.action.writes() || e.action == Action::Remove)
            .flat_map(|e| e.affects.iter().copied())
            .collect()
    }

    pub fn changed_paths(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| !e.is_state && e.action != Action::Unchanged)
            .map(|e| e.path.as_str())
            .collect()
    }
}

#[derive(Clone, Copy)]
pub struct ApplyOptions<'a> {
    pub root: &'a Path,
    pub dry_run: bool,
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

/// An injected failure, to prove that an interrupted apply loses nothing.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    FailAfter(usize),
    PauseAfter(usize, std::time::Duration),
}

/// The intent record: `sha256  path` lines, like sha256sum's output.
fn read_intent(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(hash, p)| (p.to_string(), hash.to_string()))
        .collect())
}

/// Removes `.cellsctl-*` temporary files an interrupted run left in these directories.
fn clean_temp_files(dirs: &BTreeSet<PathBuf>) -> Result<Vec<String>, Error> {
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_temp = entry
                .file_name()
                .to_string_lossy()
                .starts_with(".cellsctl-")
                && entry.file_type().is_ok_and(|t| t.is_file());
            if is_temp {
                fs::remove_file(&path).map_err(|e| Error::io("remove the leftover", &path, e))?;
                removed.push(path.display().to_string());
            }
        }
    }
    Ok(removed)
}

/// Who we can make own files: resolved once.
struct Ownership {
    is_root: bool,
}

impl Ownership {
    fn detect() -> Ownership {
        Ownership {
            is_root: nix::unistd::geteuid().is_root(),
        }
    }

    /// uid/gid to set, and whether the group was applied.
    fn resolve(&self, owner: &Owner) -> (Option<u32>, Option<u32>, bool) {
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
        let group_applied = gid.is_some();
        (Some(uid), Some(gid.unwrap_or(0)), group_applied)
    }
}

fn effective_mode(file: &PlannedFile, group_applied: bool) -> u32 {
    match file.mode_without_group {
        Some(m) if !group_applied && file.owner.group.is_some() => m,
        _ => file.mode,
    }
}

/// Masks what a file's visibility says must not be shown.
fn shown(text: &str, visibility: &Visibility) -> String {
    match visibility {
        Visibility::Public => text.to_string(),
        Visibility::Redacted(keys) => {
            let mut out = String::new();
            let mut in_secret = false;
            for line in text.split_inclusive('\n') {
                if in_secret && line.starts_with([' ', '\t']) {
                    continue;
                }
                in_secret = false;
                let trimmed = line.trim_start();
                let key = keys.iter().find(|k| {
                    trimmed
                        .trim_start_matches(['"', '\''])
                        .strip_prefix(**k)
                        .is_some_and(|rest| rest.trim_start_matches(['"', '\'']).starts_with(':'))
                });
                match key {
                    Some(k) => {
                        let indent = &line[..line.len() - trimmed.len()];
                        out.push_str(&format!("{indent}{k}: <redacted>\n"));
                        in_secret = true;
                    }
                    None => out.push_str(line),
                }
            }
            out
        }
        Visibility::NotShown(_) => String::new(),
    }
}

#[cfg(test)]
pub(crate) fn shown_for_test(text: &str, visibility: &Visibility) -> String {
    shown(text, visibility)
}

pub(crate) fn diff_text(
    path: &str,
    old: Option<&[u8]>,
    new: &[u8],
    visibility: &Visibility,
) -> String {
    if let Visibility::NotShown(what) = visibility {
        return format!("  ({path}: {what}, contents not shown)\n");
    }
    let old_text = old
        .map(|b| shown(&String::from_utf8_lossy(b), visibility))
        .unwrap_or_default();
    let new_text = shown(&String::from_utf8_lossy(new), visibility);
    let a = if old.is_some() {
        format!("a{path}")
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header(&a, &format!("b{path}"))
        .to_string()
}

/// The package whose untouched conffile this is, per `var/lib/dpkg/status` below the root.
fn distro_default(root: &Path, deployment_path: &str, on_disk: &[u8]) -> Option<String> {
    let status = fs::read_to_string(under_root(root, "/var/lib/dpkg/status")).ok()?;
    let md5 = hex(&Md5::digest(on_disk));
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

fn read_existing(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Decides every action, refuses on conflicts (before any write), then writes.
pub fn apply(
    plan: &Plan,
    previous: &BTreeMap<String, FileRecord>,
    opts: &ApplyOptions,
) -> Result<Report, Error> {
    let ownership = Ownership::detect();
    let mut report = Report::default();
    let mut old_contents: Vec<Option<Vec<u8>>> = Vec::new();
    let intent_path = under_root(opts.root, opts.intent);
    let intent = read_intent(&intent_path)?;
    report.resumed = !intent.is_empty();
    // A file is cellsctl's own if it matches what was recorded, or what an
    // interrupted run intended to write.
    let is_own = |path: &str, bytes: &[u8]| {
        let hash = sha256_hex(bytes);
        previous.get(path).is_some_and(|r| r.sha256 == hash) || intent.get(path) == Some(&hash)
    };

    for file in &plan.files {
        let target = under_root(opts.root, &file.path);
        let existing = read_existing(&target)?;
        let (uid, gid, group_applied) = ownership.resolve(&file.owner);
        let mode = effective_mode(file, group_applied);
        let action = match &existing {
            None if file.is_state || !previous.contains_key(&file.path) => Action::Create,
            None if opts.restore => Action::Restore,
            None => Action::Deleted,
            Some(old) if *old == file.contents => {
                let meta = fs::metadata(&target).map_err(|e| Error::io("inspect", &target, e))?;
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
            Some(old) if is_own(&file.path, old) => Action::Update,
            Some(_) if previous.contains_key(&file.path) => Action::HandEdited,
            Some(old) => match distro_default(opts.root, &file.path, old) {
                Some(package) => Action::ReplaceDefault { package },
                None => Action::Unknown,
            },
        };
        let diff = if action.writes() && !file.is_state {
            diff_text(
                &file.path,
                existing.as_deref(),
                &file.contents,
                &file.visibility,
            )
        } else {
            String::new()
        };
        report.entries.push(Entry {
            path: file.path.clone(),
            action,
            mode,
            diff,
            backup: None,
            affects: file.affects.clone(),
            is_state: file.is_state,
            sha256: Some(sha256_hex(&file.contents)),
        });
        old_contents.push(existing);
    }

    // Managed files no longer wanted (e.g. Prometheus turned off): remove
    // them if cellsctl wrote them, unless edited by hand.
    let mut removals = Vec::new();
    for gone in &plan.absent {
        if !previous.contains_key(&gone.path) {
            continue;
        }
        let target = under_root(opts.root, &gone.path);
        if let Some(old) = read_existing(&target)? {
            let action = if is_own(&gone.path, &old) {
                Action::Remove
            } else {
                Action::HandEdited
            };
            let mode = fs::metadata(&target)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0);
            removals.push(report.entries.len());
            report.entries.push(Entry {
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

    let conflicts: Vec<&Entry> = report
        .entries
        .iter()
        .filter(|e| e.action.is_conflict())
        .collect();
    let blocking = conflicts
        .iter()
        .any(|c| c.action == Action::Deleted || !opts.force);
    if blocking {
        let mut msg = String::from(
            "refusing to overwrite files changed outside cellsctl (nothing was written):\n",
        );
        for c in &conflicts {
            msg.push_str(&format!(
                "  {}: {}\n",
                under_root(opts.root, &c.path).display(),
                c.action.label()
            ));
        }
        msg.push_str("What cellsctl would write instead:\n");
        for c in &conflicts {
            msg.push_str(&c.diff);
        }
        if conflicts.iter().any(|c| c.action == Action::Deleted) {
            msg.push_str("Re-run with --restore to re-create deleted files.\n");
        }
        if conflicts.iter().any(|c| c.action != Action::Deleted) {
            msg.push_str("Re-run with --force to overwrite edited or unknown files (each is first backed up as FILE.cellsctl-bak.TIMESTAMP), or undo the edits.");
        }
        report.refused = Some(msg);
        return Ok(report);
    }

    if opts.dry_run {
        return Ok(report);
    }
    // Nothing to do at all: touch nothing (not even the intent record), so a
    // no-change run in a provisioning loop or timer performs zero writes.
    let any_work = report.entries.iter().any(|e| e.action != Action::Unchanged)
        || plan
            .dirs
            .iter()
            .any(|d| !under_root(opts.root, &d.path).is_dir())
        || !intent.is_empty();
    if !any_work {
        return Ok(report);
    }

    for d in &plan.dirs {
        if ensure_dir(opts.root, d, &ownership)? {
            report.created_dirs.push(d.path.clone());
        }
    }
    let dirs: BTreeSet<PathBuf> = plan
        .files
        .iter()
        .filter_map(|f| {
            under_root(opts.root, &f.path)
                .parent()
                .map(Path::to_path_buf)
        })
        .collect();
    report.cleaned_up = clean_temp_files(&dirs)?;

    // The intent record first: every hash about to be written.
    let intent_text: String = plan
        .files
        .iter()
        .zip(&report.entries)
        .filter(|(_, e)| e.action.writes())
        .map(|(f, _)| format!("{}  {}\n", sha256_hex(&f.contents), f.path))
        .collect();
    write_atomic(&intent_path, intent_text.as_bytes(), 0o600, None, None)?;

    // Files in plan order, then removals, then the state record last.
    let mut written = 0usize;
    let state_index = plan.files.iter().position(|f| f.is_state);
    for (i, file) in plan.files.iter().enumerate() {
        if Some(i) == state_index {
            continue;
        }
        if apply_file(
            file,
            &mut report.entries[i],
            old_contents[i].is_some(),
            opts,
            &ownership,
        )? {
            written += 1;
            inject_fault(opts.fault, written)?;
        }
    }
    for i in removals {
        let entry = &mut report.entries[i];
        let target = under_root(opts.root, &entry.path);
        if entry.action == Action::HandEdited {
            entry.backup = Some(backup(&target, opts.timestamp)?);
        }
        fs::remove_file(&target).map_err(|e| Error::io("remove", &target, e))?;
    }
    if let Some(i) = state_index {
        apply_file(
            &plan.files[i],
            &mut report.entries[i],
            old_contents[i].is_some(),
            opts,
            &ownership,
        )?;
    }
    match fs::remove_file(&intent_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", &intent_path, e)),
    }
    Ok(report)
}

/// Writes one file as its entry says; true when its content was written.
fn apply_file(
    file: &PlannedFile,
    entry: &mut Entry,
    existed: bool,
    opts: &ApplyOptions,
    ownership: &Ownership,
) -> Result<bool, Error> {
    let target = under_root(opts.root, &file.path);
    let (uid, gid, _) = ownership.resolve(&file.owner);
    let backup_needed = matches!(
        entry.action,
        Action::ReplaceDefault { .. } | Action::HandEdited | Action::Unknown
    );
    if backup_needed && existed {
        entry.backup = Some(backup(&target, opts.timestamp)?);
    }
    match entry.action {
        Action::Unchanged => Ok(false),
        Action::FixPermissions => set_meta(&target, entry.mode, uid, gid).map(|()| false),
        _ => write_atomic(&target, &file.contents, entry.mode, uid, gid).map(|()| true),
    }
}

fn inject_fault(fault: Option<Fault>, written: usize) -> Result<(), Error> {
    match fault {
        Some(Fault::FailAfter(n)) if n == written => Err(Error::runtime(format!(
            "injected failure after {n} written files"
        ))),
        Some(Fault::PauseAfter(n, pause)) if n == written => {
            std::thread::sleep(pause);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Creates a missing directory (parents too) with the planned mode and owner; existing ones are left alone.
fn ensure_dir(root: &Path, d: &PlannedDir, ownership: &Ownership) -> Result<bool, Error> {
    let target = under_root(root, &d.path);
    if target.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(&target).map_err(|e| Error::io("create directory", &target, e))?;
    let (uid, gid, _) = ownership.resolve(&d.owner);
    set_meta(&target, d.mode, uid, gid)?;
    Ok(true)
}

fn set_meta(path: &Path, mode: u32, uid: Option<u32>, gid: Option<u32>) -> Result<(), Error> {
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)
            .map_err(|e| Error::io("change the owner of", path, e))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set the mode of", path, e))
}

/// Temp file in the same directory (created 0600), owner and mode set, fsync, rename, fsync the directory.
fn write_atomic(
    target: &Path,
    contents: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Error> {
    let dir = target
        .parent()
        .ok_or_else(|| Error::runtime(format!("{} has no parent directory", target.display())))?;
    let mut tmp = create_private_temp(dir)?;
    tmp.write_all(contents)
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    set_meta(tmp.path(), mode, uid, gid)?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("sync", tmp.path(), e))?;
    tmp.persist(target)
        .map_err(|e| Error::io("replace", target, e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

/// A temp file in `dir`, created 0600 whatever the umask: a secret written
/// into it is never readable by others, even before its final mode is set.
fn create_private_temp(dir: &Path) -> Result<tempfile::NamedTempFile, Error> {
    tempfile::Builder::new()
        .prefix(".cellsctl-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))
}

/// Copies `target` to `target.cellsctl-bak.TIMESTAMP` (mode kept), returning the backup's path.
fn backup(target: &Path, timestamp: &str) -> Result<String, Error> {
    // Never overwrite an earlier backup (two runs in one second).
    let mut n = 0u32;
    let dest = loop {
        let mut name = target.as_os_str().to_owned();
        name.push(format!(".cellsctl-bak.{timestamp}"));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let candidate = PathBuf::from(name);
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    fs::copy(target, &dest).map_err(|e| Error::io("back up", target, e))?;
    Ok(dest.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_are_private_from_creation() {
        let dir = tempfile::tempdir().expect("dir");
        // Even with a permissive umask the file starts 0600.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let tmp = create_private_temp(dir.path());
        nix::sys::stat::umask(old);
        let tmp = tmp.expect("temp file");
        let mode = fs::metadata(tmp.path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn masking_by_key_hides_whole_values() {
        let text = "frontendlogin: admin\nfrontendpassword: 'a''b'\ndbtcppassword: |\n  line1\n  line2\ndbtcpname: cells\n";
        let shown = shown(
            text,
            &Visibility::Redacted(vec!["frontendpassword", "dbtcppassword"]),
        );
        assert_eq!(
            shown,
            "frontendlogin: admin\nfrontendpassword: <redacted>\ndbtcppassword: <redacted>\ndbtcpname: cells\n"
        );
    }
}
