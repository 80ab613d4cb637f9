//! Writes what `decide` decided: directories, the intent record, each file
//! atomically (temp file created 0600 in the same directory, owner and mode
//! set, fsync, rename, fsync of the directory), removals, the state last.

use super::decide::{Action, Decision, Entry, Ownership};
use super::ApplyOptions;
use crate::error::Error;
use crate::plan::{Plan, PlannedDir, PlannedFile};
use crate::root::under_root;
use crate::state::sha256_hex;
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An injected failure, to prove that an interrupted run loses nothing.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    FailAfter(usize),
    PauseAfter(usize, std::time::Duration),
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

/// Writes a decision that refused nothing. A decision with nothing to do
/// touches nothing (not even the intent record), so a no-change run in a
/// provisioning loop or timer performs zero writes.
pub fn execute(plan: &Plan, decision: &mut Decision, opts: &ApplyOptions) -> Result<(), Error> {
    if decision.refusal(opts.root).is_some() {
        return Err(Error::runtime(
            "internal: execute called on a refused decision",
        ));
    }
    let any_work = decision.entries().any(|e| e.action != Action::Unchanged)
        || plan
            .dirs
            .iter()
            .any(|d| !under_root(opts.root, &d.path).is_dir())
        || decision.resumed;
    if !any_work {
        return Ok(());
    }
    let ownership = Ownership::detect();
    for d in &plan.dirs {
        ensure_dir(opts.root, d, &ownership)?;
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
    decision.cleaned_up = clean_temp_files(&dirs)?;

    // The intent record first: every hash about to be written.
    let intent_path = under_root(opts.root, opts.intent);
    let intent_text: String = plan
        .files
        .iter()
        .zip(&decision.files)
        .filter(|(_, e)| e.action.writes())
        .map(|(f, _)| format!("{}  {}\n", sha256_hex(&f.contents), f.path))
        .collect();
    write_atomic(&intent_path, intent_text.as_bytes(), 0o600, None, None)?;

    // Files in plan order, then removals, then the state record last.
    let mut written = 0usize;
    let mut state = None;
    for (file, entry) in plan.files.iter().zip(decision.files.iter_mut()) {
        if file.is_state {
            state = Some((file, entry));
            continue;
        }
        if apply_file(file, entry, opts, &ownership)? {
            written += 1;
            inject_fault(opts.fault, written)?;
        }
    }
    for entry in &mut decision.removals {
        let target = under_root(opts.root, &entry.path);
        if entry.action.conflict().is_some() {
            entry.backup = Some(backup(&target, opts.timestamp)?);
        }
        fs::remove_file(&target).map_err(|e| Error::io("remove", &target, e))?;
    }
    if let Some((file, entry)) = state {
        apply_file(file, entry, opts, &ownership)?;
    }
    match fs::remove_file(&intent_path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &intent_path, e)),
    }
}

/// Writes one file as its entry says; true when its content was written.
fn apply_file(
    file: &PlannedFile,
    entry: &mut Entry,
    opts: &ApplyOptions,
    ownership: &Ownership,
) -> Result<bool, Error> {
    let target = under_root(opts.root, &file.path);
    let (uid, gid, _) = ownership.resolve(&file.owner);
    // What is replaced without being cellsctl's own is kept as a backup.
    if matches!(
        entry.action,
        Action::ReplaceDefault { .. } | Action::Overwrite(_)
    ) {
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
fn ensure_dir(root: &Path, d: &PlannedDir, ownership: &Ownership) -> Result<(), Error> {
    let target = under_root(root, &d.path);
    if target.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(&target).map_err(|e| Error::io("create directory", &target, e))?;
    let (uid, gid, _) = ownership.resolve(&d.owner);
    set_meta(&target, d.mode, uid, gid)
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
mod temp_file_tests {
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
}
