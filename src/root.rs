//! Deployment paths below `--root`, and the filesystem as a careful root
//! process sees it: files other users may control are read without
//! following a symbolic link, without blocking on a FIFO and up to a size
//! cap; what is changed later is the inode that was read; directories are
//! created with an explicit mode whatever the umask.

use crate::error::Error;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `root` + an absolute deployment path.
pub fn under_root(root: &Path, deployment_path: &str) -> PathBuf {
    root.join(deployment_path.trim_start_matches('/'))
}

/// Managed files are small text; anything larger is not one cellsctl wrote.
pub const MANAGED_FILE_LIMIT: u64 = 1 << 20;

/// Which inode a path led to when it was read, and its last change: a file
/// put in its place later (even on a reused inode number) differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl Identity {
    pub fn of(meta: &std::fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A regular file, read through one open descriptor.
#[derive(Clone, Debug)]
pub struct Regular {
    pub bytes: Vec<u8>,
    pub identity: Identity,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What is at a path.
#[derive(Clone, Debug)]
pub enum Found {
    Missing,
    Regular(Regular),
    /// Something cellsctl will not read: a symbolic link, a FIFO, a
    /// directory, a device, or a file over the size cap. Says what it is.
    Unusual(String),
}

impl Found {
    /// The regular file's bytes, if that is what is there.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Found::Regular(r) => Some(&r.bytes),
            Found::Missing | Found::Unusual(_) => None,
        }
    }
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens without following a final symbolic link and without blocking.
fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
}

/// What is at `path`: a regular file of at most `limit` bytes is read; a
/// symbolic link is not followed.
pub fn inspect(path: &Path, limit: u64) -> Result<Found, Error> {
    inspect_opened(path, limit, open_nofollow(path))
}

/// Like `inspect`, following links: for root's own system files (dpkg's
/// status, `/etc/default`), which an admin may have laid out with links.
pub fn inspect_following(path: &Path, limit: u64) -> Result<Found, Error> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path);
    inspect_opened(path, limit, opened)
}

fn inspect_opened(
    path: &Path,
    limit: u64,
    opened: std::io::Result<std::fs::File>,
) -> Result<Found, Error> {
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Ok(Found::Unusual("a symbolic link".into()))
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
            return Ok(Found::Unusual("a socket".into()))
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    if !meta.file_type().is_file() {
        return Ok(Found::Unusual(kind_of(meta.file_type()).into()));
    }
    if meta.len() > limit {
        return Ok(Found::Unusual(format!(
            "a file of {} bytes, more than the {limit} cellsctl reads",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > limit {
        return Ok(Found::Unusual(format!(
            "a file growing past the {limit} bytes cellsctl reads"
        )));
    }
    Ok(Found::Regular(Regular {
        bytes,
        identity: Identity::of(&meta),
        mode: meta.permissions().mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

/// The bytes of a managed file, `None` when there is none; anything but a
/// small regular file is an error naming what it is.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match inspect(path, MANAGED_FILE_LIMIT)? {
        Found::Missing => Ok(None),
        Found::Regular(r) => Ok(Some(r.bytes)),
        Found::Unusual(what) => Err(Error::runtime(format!(
            "{} is {what}, not a file cellsctl can read",
            path.display()
        ))),
    }
}

/// Like `read_optional`, as UTF-8 text.
pub fn read_optional_text(path: &Path) -> Result<Option<String>, Error> {
    read_optional(path)?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| Error::runtime(format!("{} is not UTF-8 text", path.display())))
        })
        .transpose()
}

/// Opens the inode `expected` for changing its owner or mode: `None` when
/// the path now leads elsewhere (swapped since it was read).
pub fn reopen(path: &Path, expected: Identity) -> Result<Option<std::fs::File>, Error> {
    let file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    Ok((Identity::of(&meta) == expected).then_some(file))
}

/// Sets owner (when given) and mode through an open descriptor.
pub fn set_owner_and_mode(
    file: &std::fs::File,
    path: &Path,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Error> {
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(file, uid, gid)
            .map_err(|e| Error::io("change the owner of", path, e))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set the mode of", path, e))
}

/// Creates `dir` and every missing parent with `mode` (not the umask's);
/// returns the directories created, outermost first. The existing part of
/// the path is taken as the system has it (links followed: `/srv` may lead
/// to a data disk); each missing level is made inside the one just made,
/// through its descriptor, so no link swapped in meanwhile is followed.
pub fn create_dirs(dir: &Path, mode: u32) -> Result<Vec<PathBuf>, Error> {
    make_dirs(dir, mode, mode, None, None)
}

/// Like `create_dirs`, the missing parents 0755, and `dir` itself, when
/// created, given `mode` and this owner through its descriptor.
pub fn create_dir_owned(
    dir: &Path,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Vec<PathBuf>, Error> {
    make_dirs(dir, 0o755, mode, uid, gid)
}

fn make_dirs(
    dir: &Path,
    parents_mode: u32,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Vec<PathBuf>, Error> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    let mut existing = dir;
    let mut missing = Vec::new();
    while !existing.is_dir() {
        if let Ok(meta) = std::fs::symlink_metadata(existing) {
            return Err(Error::runtime(format!(
                "{} is {}, where a directory should be",
                existing.display(),
                kind_of(meta.file_type())
            )));
        }
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            return Err(Error::runtime(format!(
                "{} cannot be created",
                dir.display()
            )));
        };
        missing.push(name);
        existing = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
    }
    let mut parent: std::os::fd::OwnedFd = std::fs::File::open(existing)
        .map_err(|e| Error::io("open", existing, e))?
        .into();
    let mut path = existing.to_path_buf();
    let mut created = Vec::new();
    for name in missing.into_iter().rev() {
        path.push(name);
        match mkdirat(&parent, name, Mode::S_IRWXU) {
            Ok(()) => created.push(path.clone()),
            Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::io("create directory", &path, e.into())),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let child = openat(&parent, name, flags, Mode::empty()).map_err(|e| {
            Error::runtime(format!(
                "{} is not a directory cellsctl can use ({e})",
                path.display()
            ))
        })?;
        if created.last() == Some(&path) {
            let file =
                std::fs::File::from(child.try_clone().map_err(|e| Error::io("open", &path, e))?);
            if path == dir {
                set_owner_and_mode(&file, &path, mode, uid, gid)?;
            } else {
                set_owner_and_mode(&file, &path, parents_mode, None, None)?;
            }
        }
        parent = child;
    }
    Ok(created)
}

/// The umask is the process's: tests that change it take turns.
#[cfg(test)]
pub(crate) static UMASK_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod careful_fs_tests {
    use super::*;

    #[test]
    fn links_fifos_and_big_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("file"), "hello").unwrap();
        std::os::unix::fs::symlink(p("file"), p("link")).unwrap();
        nix::unistd::mkfifo(&p("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::File::create(p("big"))
            .unwrap()
            .set_len(10_000)
            .unwrap();
        assert_eq!(
            inspect(&p("file"), 100).unwrap().bytes(),
            Some(&b"hello"[..])
        );
        for (name, what) in [
            ("link", "a symbolic link"),
            ("fifo", "a FIFO"),
            ("big", "a file of 10000 bytes"),
        ] {
            match inspect(&p(name), 100).unwrap() {
                Found::Unusual(found) => assert!(found.starts_with(what), "{name}: {found}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(inspect(&p("none"), 100).unwrap(), Found::Missing));
    }

    /// The owner and mode go to the inode that was read, never to what a
    /// path swapped in its place leads to.
    #[test]
    fn a_swapped_path_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (target, other) = (dir.path().join("install.yml"), dir.path().join("shadow"));
        std::fs::write(&target, "mine").unwrap();
        std::fs::write(&other, "secret").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        let Found::Regular(read) = inspect(&target, 100).unwrap() else {
            panic!("a regular file")
        };
        std::fs::remove_file(&target).unwrap();
        std::os::unix::fs::symlink(&other, &target).unwrap();
        assert!(reopen(&target, read.identity).unwrap().is_none());
        // Replaced by another file rather than a link (later than the
        // clock's tick, as any real swap is): also refused.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::remove_file(&target).unwrap();
        std::fs::write(&target, "theirs").unwrap();
        assert!(reopen(&target, read.identity).unwrap().is_none());
        let mode = std::fs::metadata(&other).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the other file is untouched");
    }

    #[test]
    fn directories_get_their_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        let _turn = UMASK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let created = create_dirs(&deep, 0o755);
        nix::sys::stat::umask(old);
        assert_eq!(created.unwrap().len(), 3);
        for d in ["a", "a/b", "a/b/c"] {
            let mode = std::fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755, "{d}");
        }
        // An existing link is the system's layout (a data disk): followed.
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).unwrap();
        assert_eq!(
            create_dirs(&dir.path().join("link/x"), 0o755)
                .unwrap()
                .len(),
            1
        );
        assert!(dir.path().join("a/x").is_dir());
        // A file where a directory should be is not.
        std::fs::write(dir.path().join("file"), "").unwrap();
        assert!(create_dirs(&dir.path().join("file/x"), 0o755).is_err());
    }
}
