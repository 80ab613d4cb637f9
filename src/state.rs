//! The state record `etc/cellsctl/cellsctl.yaml`: every answer (hashes,
//! never plaintext), the targeted Caddy, and the sha256 of each managed file.

use crate::answers::{Answers, CaddyVersion};
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
