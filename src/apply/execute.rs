//! Writes what `decide` decided: directories, the intent record, each file
//! atomically (temp file created 0600 in the same directory, owner and mode
//! set, fsync, rename, fsync of the directory), removals, the state last.

use super::decide::{Action, Decision, Entry, Ownership};
use super::ApplyOptions;
use crate::error::Error;
use crate::plan::{Plan, PlannedDir, PlannedFile};
use crate::root::{
    create_dir_owned, reopen, set_owner_and_mode, under_root, Identity, MANAGED_FILE_LIMIT,
};
use crate::state::sha256_hex;
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An injected failure, to prove that an interrupted run loses nothing.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    FailAfter(usize),
    PauseAfter(usize, std::time::Duration),
}

/// How cellsctl's temporary files start.
const TEMP_PREFIX: &str = ".cellsctl-";

/// Removes the temporary files an interrupted run left in these directories:
/// regular files of this user named like cellsctl's own (the lock keeps
/// every other run away meanwhile).
fn clean_temp_files(dirs: &BTreeSet<PathBuf>) -> Result<Vec<String>, Error> {
    let me = nix::unistd::geteuid().as_raw();
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_temp = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.uid() == me);
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
        if let (Some(_), Some(read)) = (entry.action.conflict(), entry.read) {
            entry.backup = Some(backup(&target, read, entry.backup_mode, opts.timestamp)?);
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
    // What is replaced without being cellsctl's own is kept as a backup
    // (a link or FIFO in the file's place has nothing to keep).
    if let (Action::ReplaceDefault { .. } | Action::Overwrite(_), Some(read)) =
        (&entry.action, entry.read)
    {
        entry.backup = Some(backup(&target, read, entry.backup_mode, opts.timestamp)?);
    }
    match entry.action {
        Action::Unchanged => Ok(false),
        Action::FixPermissions => {
            // The inode that was read, or nothing: never what a swapped path leads to.
            let same = match entry.read {
                Some(read) => reopen(&target, read)?,
                None => None,
            };
            let file = same.ok_or_else(|| changed_meanwhile(&target))?;
            set_owner_and_mode(&file, &target, entry.mode, uid, gid).map(|()| false)
        }
        _ => write_atomic(&target, &file.contents, entry.mode, uid, gid).map(|()| true),
    }
}

fn changed_meanwhile(path: &Path) -> Error {
    Error::runtime(format!(
        "{} changed while cellsctl was running; nothing was done to it, run cellsctl again",
        path.display()
    ))
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

/// Creates a missing directory with the planned mode and owner (missing
/// parents 0755, whatever the umask); existing ones are left alone.
fn ensure_dir(root: &Path, d: &PlannedDir, ownership: &Ownership) -> Result<(), Error> {
    let target = under_root(root, &d.path);
    if target.is_dir() {
        return Ok(());
    }
    let (uid, gid, _) = ownership.resolve(&d.owner);
    create_dir_owned(&target, d.mode, uid, gid).map(|_| ())
}

/// Temp file in the same directory (created 0600), owner and mode set
/// through its descriptor, fsync, rename, fsync the directory.
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
    set_owner_and_mode(tmp.as_file(), tmp.path(), mode, uid, gid)?;
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
        .prefix(TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))
}

/// Copies the inode `read` at `target` to a new file
/// `target.cellsctl-bak.TIMESTAMP[.N]` with `mode`, returning its path. The
/// backup is always a new file: an existing name (a file, or a link, even
/// dangling) is skipped, never written through.
fn backup(target: &Path, read: Identity, mode: u32, timestamp: &str) -> Result<String, Error> {
    let mut source = reopen(target, read)?.ok_or_else(|| changed_meanwhile(target))?;
    for n in 0..1000u32 {
        let mut name = target.as_os_str().to_owned();
        name.push(format!(".cellsctl-bak.{timestamp}"));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let candidate = PathBuf::from(name);
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&candidate);
        let mut copy = match created {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("back up", target, e)),
        };
        // Exactly `mode`: the umask may only have narrowed it.
        copy.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set the mode of", &candidate, e))?;
        std::io::copy(&mut (&mut source).take(MANAGED_FILE_LIMIT), &mut copy)
            .and_then(|_| copy.sync_all())
            .map_err(|e| Error::io("back up", target, e))?;
        return Ok(candidate.display().to_string());
    }
    Err(Error::runtime(format!(
        "no free backup name next to {}",
        target.display()
    )))
}

#[cfg(test)]
mod temp_file_tests {
    use super::*;

    /// A backup is always a new file: a name taken by a dangling link is
    /// skipped, and nothing is written where the link points.
    #[test]
    fn a_backup_never_writes_through_a_link() {
        let dir = tempfile::tempdir().expect("dir");
        let target = dir.path().join("Caddyfile");
        fs::write(&target, "edited\n").expect("write");
        let victim = dir.path().join("cron-entry");
        let taken = dir.path().join("Caddyfile.cellsctl-bak.20261130T000000Z");
        std::os::unix::fs::symlink(&victim, &taken).expect("symlink");
        let read = crate::root::Identity::of(&fs::metadata(&target).expect("meta"));
        let made = backup(&target, read, 0o640, "20261130T000000Z").expect("backup");
        assert!(made.ends_with(".cellsctl-bak.20261130T000000Z.1"), "{made}");
        assert!(!victim.exists(), "written through the link");
        assert_eq!(fs::read_to_string(&made).expect("read"), "edited\n");
        let mode = fs::metadata(&made).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn temp_files_are_private_from_creation() {
        let dir = tempfile::tempdir().expect("dir");
        // Even with a permissive umask the file starts 0600.
        let _turn = crate::root::UMASK_TESTS
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let tmp = create_private_temp(dir.path());
        nix::sys::stat::umask(old);
        let tmp = tmp.expect("temp file");
        let mode = fs::metadata(tmp.path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
