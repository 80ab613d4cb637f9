//! Whether install.yml is written, and with which passwords: the given
//! ones, else those the file on disk already holds. Once the admin has used
//! and deleted it, it is never written again and its passwords are never
//! needed.

use crate::error::Error;
use crate::render::{paths, InstallSecrets};
use crate::root::{inspect, under_root, Found};
use crate::secrets::{GivenSecrets, Secret, SecretKind};
use crate::state::State;
use std::path::Path;

/// What happens to install.yml in this run.
pub enum InstallPlan {
    /// Written (first time, or its site fields updated) with these passwords.
    Write(InstallSecrets),
    /// Used and deleted by the admin: never re-created.
    Consumed,
    /// Left as it is in this run (it cannot be read).
    Untouched,
}

impl InstallPlan {
    pub fn secrets(&self) -> Option<&InstallSecrets> {
        match self {
            InstallPlan::Write(s) => Some(s),
            InstallPlan::Consumed | InstallPlan::Untouched => None,
        }
    }
}

/// Whether the admin and database passwords are needed in this run:
/// install.yml was never written and is not on disk.
pub fn needs_secrets(root: &Path, saved: Option<&State>) -> bool {
    let recorded = saved.is_some_and(|s| s.files.contains_key(paths::INSTALL_YML));
    !recorded && !under_root(root, paths::INSTALL_YML).exists()
}

/// install.yml is about 1 KiB, and at most about 8 KiB with the longest
/// passwords and paths cellsctl accepts. It belongs to the Cells user, who
/// could make it anything: only this much is read, which also bounds the
/// YAML parser's work (deep nesting costs it quadratic time).
const INSTALL_YML_LIMIT: u64 = 16 << 10;

/// install.yml's text, `None` when it is not there; an error naming it when
/// it is something else than the small file cellsctl wrote.
fn read_install_yml(path: &Path) -> Result<Option<String>, Error> {
    let unreadable = |why: String| Error::InstallUnreadable {
        path: path.display().to_string(),
        why,
    };
    let bytes = match inspect(path, INSTALL_YML_LIMIT)? {
        Found::Missing => return Ok(None),
        Found::Unusual(what) => return Err(unreadable(format!("it is {what}"))),
        Found::Regular(r) => r.bytes,
    };
    let text = String::from_utf8(bytes).map_err(|_| unreadable("it is not UTF-8 text".into()))?;
    Ok(Some(text))
}

pub fn plan(
    root: &Path,
    given: &GivenSecrets,
    saved: Option<&State>,
) -> Result<InstallPlan, Error> {
    let admin = given.read(SecretKind::Admin)?;
    let db = given.read(SecretKind::Database)?;
    let path = under_root(root, paths::INSTALL_YML);
    let recorded = saved.is_some_and(|s| s.files.contains_key(paths::INSTALL_YML));
    match read_install_yml(&path)? {
        Some(text) => {
            let (on_disk_admin, on_disk_db) =
                match crate::render::cells_install::secrets_from_existing(&text) {
                    Ok(s) => (Some(s.admin_password), Some(s.db_password)),
                    Err(_) => (None, None),
                };
            let pick = |given: Option<Secret>, on_disk: Option<Secret>, kind: SecretKind| {
                given.or(on_disk).ok_or_else(|| {
                    Error::usage(format!(
                        "{} exists but its passwords cannot be read back; give {}",
                        path.display(),
                        kind.how()
                    ))
                })
            };
            Ok(InstallPlan::Write(InstallSecrets {
                admin_password: pick(admin, on_disk_admin, SecretKind::Admin)?,
                db_password: pick(db, on_disk_db, SecretKind::Database)?,
            }))
        }
        None if recorded => Ok(InstallPlan::Consumed),
        None => match (admin, db) {
            (Some(admin_password), Some(db_password)) => Ok(InstallPlan::Write(InstallSecrets {
                admin_password,
                db_password,
            })),
            (admin, db) => Err(Error::Missing(
                [(admin, SecretKind::Admin), (db, SecretKind::Database)]
                    .into_iter()
                    .filter(|(given, _)| given.is_none())
                    .map(|(_, kind)| kind.how())
                    .collect(),
            )),
        },
    }
}
