//! Deployment paths below `--root`, and reading what is already there.

use crate::error::Error;
use std::path::{Path, PathBuf};

/// `root` + an absolute deployment path.
pub fn under_root(root: &Path, deployment_path: &str) -> PathBuf {
    root.join(deployment_path.trim_start_matches('/'))
}

/// The bytes of a file, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The text of a file, or `None` when it does not exist.
pub fn read_optional_text(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}
