//! The state record `etc/cellsctl/cellsctl.yaml`: every answer (hashes,
//! never plaintext), the targeted Caddy, and the sha256 of each managed file.

use crate::answers::{Answers, CaddyVersion};
use crate::error::Error;
use crate::plan::{Owner, Plan, PlannedFile, Visibility};
use crate::render::paths;
use crate::root::{read_optional_text, under_root};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA_VERSION: u32 = 1;

/// How the targeted Caddy version was chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "source")]
pub enum CaddyTarget {
    /// Given with `--caddy-version`: kept until another is given. The Caddy
    /// on PATH is still watched (`seen`), so a mismatch is said, not silent.
    Flag {
        version: CaddyVersion,
        #[serde(default)]
        seen: Option<SeenCaddy>,
    },
    /// Read from `caddy version`; re-read when the binary changes.
    Detected(SeenCaddy),
}

impl CaddyTarget {
    pub fn version(&self) -> CaddyVersion {
        match self {
            CaddyTarget::Flag { version, .. } => *version,
            CaddyTarget::Detected(seen) => seen.version,
        }
    }
}

/// The Caddy found on PATH and the version it reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenCaddy {
    pub binary: BinaryStat,
    pub version: CaddyVersion,
}

/// Enough about the Caddy binary to notice an upgrade without running it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryStat {
    pub path: String,
    pub size: u64,
    pub mtime_secs: i64,
    pub mtime_nanos: i64,
}

/// A file cellsctl wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub schema_version: u32,
    pub answers: Answers,
    pub caddy: CaddyTarget,
    /// Deployment path -> record. install.yml stays listed after the admin
    /// deletes it: that is how cellsctl knows never to re-create it.
    pub files: BTreeMap<String, FileRecord>,
}

impl State {
    pub fn to_yaml(&self) -> Result<String, Error> {
        let body = serde_yaml::to_string(self)
            .map_err(|e| Error::runtime(format!("serializing the state: {e}")))?;
        Ok(format!(
            "# Managed by cellsctl: the answers and what it wrote. Change answers with\n# `cellsctl regenerate --FLAG VALUE`, not here.\n{body}"
        ))
    }

    pub fn from_yaml(text: &str, shown_path: &str) -> Result<State, Error> {
        let state: State = serde_yaml::from_str(text).map_err(|e| {
            Error::runtime(format!("{shown_path} is not a valid cellsctl state: {e}"))
        })?;
        if state.schema_version != SCHEMA_VERSION {
            return Err(Error::runtime(format!(
                "{shown_path} has schema version {}, this cellsctl understands {SCHEMA_VERSION}",
                state.schema_version
            )));
        }
        Ok(state)
    }
}

/// sha256 of some bytes, lower-case hex: how the state records a file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The saved state below `root`, if there is one.
pub fn load(root: &Path) -> Result<Option<State>, Error> {
    let path = under_root(root, paths::STATE);
    crate::ui::step(format!("reading the saved state {}", path.display()));
    read_optional_text(&path)?
        .map(|text| State::from_yaml(&text, &path.display().to_string()))
        .transpose()
}

/// The saved state, for commands that cannot run without one.
pub fn require(root: &Path) -> Result<State, Error> {
    load(root)?.ok_or_else(|| {
        Error::usage(format!(
            "no saved state at {}: run `cellsctl init` first",
            under_root(root, paths::STATE).display()
        ))
    })
}

impl State {
    /// The record of a run: every answer and the hash of each planned file.
    /// A consumed install.yml keeps its old record, which is how later runs
    /// know never to write it again.
    pub fn record(
        answers: &Answers,
        caddy: &CaddyTarget,
        plan: &Plan,
        saved: Option<&State>,
        install_consumed: bool,
    ) -> State {
        let mut files: BTreeMap<String, FileRecord> = plan
            .files
            .iter()
            .map(|f| {
                let sha256 = sha256_hex(&f.contents);
                (f.path.clone(), FileRecord { sha256 })
            })
            .collect();
        let consumed = saved.and_then(|s| s.files.get(paths::INSTALL_YML));
        match (install_consumed, consumed) {
            (true, Some(rec)) => {
                files.insert(paths::INSTALL_YML.to_string(), rec.clone());
            }
            // Adopted: Cells was installed by hand; cellsctl never writes install.yml.
            (true, None) if saved.is_none() => {
                files.insert(
                    paths::INSTALL_YML.to_string(),
                    FileRecord {
                        sha256: sha256_hex(b""),
                    },
                );
            }
            _ => {}
        }
        State {
            schema_version: SCHEMA_VERSION,
            answers: answers.clone(),
            caddy: caddy.clone(),
            files,
        }
    }

    /// The state as the last file of the plan: private, written after the others.
    pub fn planned_file(&self) -> Result<PlannedFile, Error> {
        Ok(PlannedFile {
            path: paths::STATE.to_string(),
            contents: self.to_yaml()?.into_bytes(),
            mode: 0o600,
            owner: Owner::root(),
            mode_without_group: None,
            visibility: Visibility::Public,
            affects: vec![],
            is_state: true,
            force_keeps: false,
        })
    }
}
