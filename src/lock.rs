//! One writing run at a time: a run that writes holds an exclusive `flock`
//! on `etc/cellsctl/cellsctl.lock` from before it reads the state until it
//! ends. The file is created empty and private, and never removed (removing
//! a lock file races with the next run opening it). `check` and `--dry-run`
//! take no lock.

use crate::error::Error;
use crate::render::paths;
use crate::root::{create_dirs, under_root};
use nix::fcntl::{Flock, FlockArg};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Held until dropped.
pub struct Lock {
    _held: Flock<std::fs::File>,
}

/// How long a second run waits for the first.
fn patience() -> Duration {
    // Testing hook, in debug builds only: a shorter wait.
    #[cfg(debug_assertions)]
    if let Some(secs) = std::env::var("CELLSCTL_TEST_LOCK_WAIT")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return Duration::from_secs(secs);
    }
    Duration::from_secs(60)
}

/// Whether the root already has cellsctl's directory (and so a place for the lock).
pub fn has_place(root: &Path) -> bool {
    under_root(root, paths::LOCK)
        .parent()
        .is_some_and(|dir| dir.is_dir())
}

/// The lock file, opened read-only when it exists (a run with nothing to
/// change opens nothing for writing), created 0600 when it does not.
fn open_or_create(path: &Path) -> Result<std::fs::File, Error> {
    // Not through a link, not waiting on a FIFO: a regular file or nothing.
    let existing = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    match existing {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("open the lock", path, e)),
        Ok(file) => {
            let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
            if !meta.is_file() {
                return Err(Error::runtime(format!(
                    "{} is not a regular file, so not cellsctl's lock; remove it and run again",
                    path.display()
                )));
            }
            return Ok(file);
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.is_dir()) {
        create_dirs(dir, 0o755)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io("create the lock", path, e))
}

/// Takes the lock, creating the file (and its directory, 0755) if needed;
/// waits for another run to finish, up to a minute.
pub fn acquire(root: &Path) -> Result<Lock, Error> {
    let path = under_root(root, paths::LOCK);
    let mut file = open_or_create(&path)?;
    let deadline = Instant::now() + patience();
    let mut said = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => return Ok(Lock { _held: held }),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                if !said {
                    crate::ui::say(&format!(
                        "waiting for another cellsctl run to finish (up to {} s)",
                        patience().as_secs()
                    ));
                    said = true;
                }
                file = back;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(Error::runtime(format!(
                    "another cellsctl is running on this root (it holds {}); waited {} s. Run again once it has finished.",
                    path.display(),
                    patience().as_secs()
                )))
            }
            Err((_, e)) => return Err(Error::io("lock", &path, e.into())),
        }
    }
}
