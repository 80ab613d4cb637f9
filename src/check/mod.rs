//! `cellsctl check`: offline findings about a rendered deployment. The
//! files agree with the state (drift is exit 3), certificates parse, chain
//! and cover the names, nothing secret is readable by others, and every
//! validator found on PATH accepts what was written.

mod validators;

pub use validators::validators;

use crate::answers::{Answers, PublicTls, UpstreamTls};
use crate::error::Error;
use crate::pki;
use crate::render::paths;
use crate::root::{inspect, read_optional_text, under_root, Found, MANAGED_FILE_LIMIT};
use crate::state::{sha256_hex, State};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use time::OffsetDateTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// A validator that is not installed here.
    Skipped,
}

/// One check's result. `check`, `status` and `detail` are the `--json` schema.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub detail: String,
    /// What the finding is about, for the code that acts on it.
    #[serde(skip)]
    pub about: About,
}

/// What a finding is about, beyond its printed name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum About {
    /// This managed file differs from what cellsctl wrote (or is gone).
    Drift { path: String },
    #[default]
    Other,
}

pub(crate) fn finding(
    check: impl Into<String>,
    status: Status,
    detail: impl Into<String>,
) -> Finding {
    Finding {
        check: check.into(),
        status,
        detail: detail.into(),
        about: About::Other,
    }
}

fn drifted(path: &str, detail: impl Into<String>) -> Finding {
    Finding {
        about: About::Drift {
            path: path.to_string(),
        },
        ..finding(format!("drift {path}"), Status::Fail, detail)
    }
}

/// How a set of findings ends: the exit status of `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing failed (warnings allowed): exit 0.
    Passed,
    /// A check failed: exit 1.
    Failed,
    /// A managed file drifted: exit 3.
    Drifted,
}

impl Outcome {
    pub fn of(findings: &[Finding]) -> Outcome {
        let failed = |f: &&Finding| f.status == Status::Fail;
        if findings
            .iter()
            .filter(failed)
            .any(|f| matches!(f.about, About::Drift { .. }))
        {
            Outcome::Drifted
        } else if findings.iter().any(|f| failed(&f)) {
            Outcome::Failed
        } else {
            Outcome::Passed
        }
    }

    pub fn into_result(self) -> Result<(), Error> {
        match self {
            Outcome::Passed => Ok(()),
            Outcome::Failed => Err(Error::CheckFailed),
            Outcome::Drifted => Err(Error::Drifted),
        }
    }
}

/// Every file the state records, against the disk. Only paths cellsctl
/// manages count: a state naming another (say `/../../etc/shadow`) is not
/// followed there.
pub fn drift(root: &Path, state: &State) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut any_drift = false;
    let managed = state
        .files
        .iter()
        .filter(|(path, _)| paths::MANAGED.contains(&path.as_str()));
    for (path, rec) in managed {
        let target = under_root(root, path);
        // Read as decide reads: no link followed, no FIFO waited on, capped
        // (install.yml is the Cells user's to make anything of).
        match inspect(&target, MANAGED_FILE_LIMIT) {
            Ok(Found::Regular(r)) if sha256_hex(&r.bytes) == rec.sha256 => {}
            Ok(Found::Regular(_)) => {
                any_drift = true;
                out.push(drifted(path, "edited since cellsctl wrote it"));
            }
            Ok(Found::Missing) if path == paths::INSTALL_YML => {
                out.push(finding(
                    "install.yml",
                    Status::Pass,
                    "used and deleted, as it should be",
                ));
            }
            Ok(Found::Missing) => {
                any_drift = true;
                let e = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
                out.push(drifted(
                    path,
                    format!("missing ({e}); `cellsctl regenerate --restore` re-creates it"),
                ));
            }
            Ok(Found::Unusual(what)) => {
                any_drift = true;
                out.push(drifted(
                    path,
                    format!("{what}, not the file cellsctl wrote"),
                ));
            }
            Err(e) => {
                any_drift = true;
                out.push(drifted(path, e.to_string()));
            }
        }
    }
    if !any_drift {
        out.push(finding(
            "drift",
            Status::Pass,
            format!("{} files match the state", state.files.len()),
        ));
    }
    out
}

/// Certificates: parse, chain to the CA, cover the names, expiry. In
/// cluster mode, each node's certificate kept on this host.
pub fn certificates(root: &Path, a: &Answers, now: OffsetDateTime) -> Vec<Finding> {
    if a.upstream_tls != UpstreamTls::Ca {
        return vec![finding(
            "certificates",
            Status::Pass,
            "skip-verify mode: Cells makes its own certificate",
        )];
    }
    let read = |p: &str| read_optional_text(&under_root(root, p));
    let leaves: Vec<(String, String, std::collections::BTreeSet<String>)> = match &a.cluster {
        None => vec![(
            String::new(),
            paths::CELLS_CERT.to_string(),
            pki::wanted_sans(a),
        )],
        Some(c) => c
            .nodes
            .iter()
            .map(|n| {
                (
                    format!("{}: ", n.name),
                    crate::render::node_paths(&n.name).0,
                    pki::node_sans(n.ip(), &a.external_url.host),
                )
            })
            .collect(),
    };
    let Ok(Some(ca)) = read(paths::CA_CERT) else {
        return vec![finding(
            "certificates",
            Status::Fail,
            "ca.crt cannot be read",
        )];
    };
    let mut out = Vec::new();
    match pki::cert_facts(&ca, None) {
        Ok(f) => out.push(expiry("CA", f.not_after, now)),
        Err(e) => out.push(finding("CA", Status::Fail, format!("does not parse: {e}"))),
    }
    for (prefix, path, wanted) in leaves {
        match read(&path) {
            Ok(Some(leaf)) => out.extend(leaf_findings(&prefix, &leaf, &ca, &wanted, now)),
            _ => out.push(finding(
                format!("{prefix}cells.crt"),
                Status::Fail,
                format!("{path} cannot be read"),
            )),
        }
    }
    out
}

fn expiry(name: &str, not_after: OffsetDateTime, now: OffsetDateTime) -> Finding {
    let days = (not_after - now).whole_days();
    let (status, what) = if not_after <= now {
        (Status::Fail, "expired".to_string())
    } else if days < 30 {
        (
            Status::Warn,
            format!("expires in {days} days; `cellsctl regenerate` renews it"),
        )
    } else {
        (Status::Pass, format!("valid for {days} more days"))
    };
    finding(format!("{name} expiry"), status, what)
}

/// One Cells certificate: chained to the CA, its names, its expiry.
fn leaf_findings(
    prefix: &str,
    leaf: &str,
    ca: &str,
    wanted: &std::collections::BTreeSet<String>,
    now: OffsetDateTime,
) -> Vec<Finding> {
    let f = match pki::cert_facts(leaf, Some(ca)) {
        Ok(f) => f,
        Err(e) => {
            return vec![finding(
                format!("{prefix}cells.crt"),
                Status::Fail,
                format!("does not parse: {e}"),
            )]
        }
    };
    let chain = if f.signed_by_ca {
        finding(
            format!("{prefix}chain"),
            Status::Pass,
            "cells.crt is signed by the cellsctl CA",
        )
    } else {
        finding(
            format!("{prefix}chain"),
            Status::Fail,
            "cells.crt is not signed by the cellsctl CA",
        )
    };
    let missing: Vec<&String> = wanted.iter().filter(|n| !f.sans.contains(*n)).collect();
    let names = if missing.is_empty() {
        finding(
            format!("{prefix}names"),
            Status::Pass,
            format!(
                "cells.crt covers {}",
                wanted.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    } else {
        finding(
            format!("{prefix}names"),
            Status::Fail,
            format!("cells.crt does not cover {missing:?}"),
        )
    };
    vec![
        chain,
        names,
        expiry(&format!("{prefix}cells.crt"), f.not_after, now),
    ]
}

/// Key and secret files must not be readable by others (or group-writable).
pub fn permissions(root: &Path, state: &State) -> Vec<Finding> {
    let mut private: Vec<String> = [
        paths::STATE,
        paths::CA_KEY,
        paths::CELLS_KEY,
        paths::INSTALL_YML,
    ]
    .map(String::from)
    .to_vec();
    // Cluster mode: every node's certificate and key, 0600 root.
    private.extend(
        state
            .files
            .keys()
            .filter(|p| p.starts_with(crate::render::NODES_DIR))
            .cloned(),
    );
    let mut out = Vec::new();
    for path in private
        .iter()
        .filter(|p| state.files.contains_key(p.as_str()))
    {
        let Ok(meta) = std::fs::symlink_metadata(under_root(root, path)) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        // cells.key may be group-readable (root:CELLS_GROUP 0640); nothing more.
        let allowed = if path == paths::CELLS_KEY {
            0o640
        } else {
            0o600
        };
        if mode & !allowed != 0 {
            out.push(finding(format!("permissions {path}"), Status::Fail, format!("mode {mode:04o}, expected {allowed:04o} at most; `cellsctl regenerate` fixes it")));
        }
    }
    if out.is_empty() {
        out.push(finding(
            "permissions",
            Status::Pass,
            "keys and secret files are private",
        ));
    }
    out
}

/// Prometheus must reach the targets file Cells writes: with Debian's
/// `PrivateUsers=true`, only the "other" execute bits of each directory count.
pub fn prometheus_targets(root: &Path, a: &Answers) -> Vec<Finding> {
    let Some(p) = &a.prometheus else {
        return vec![];
    };
    let file = a.prometheus_targets_file(p);
    let on_disk = under_root(root, file.as_str());
    let mut blocked = Vec::new();
    let mut missing = Vec::new();
    let mut dir = on_disk.parent();
    while let Some(d) = dir {
        match std::fs::metadata(d) {
            Ok(meta) if meta.permissions().mode() & 0o001 == 0 => {
                blocked.push(d.display().to_string())
            }
            Ok(_) => {}
            Err(_) => missing.push(d.display().to_string()),
        }
        if d == root {
            break;
        }
        dir = d.parent();
    }
    let mut out = vec![if !blocked.is_empty() {
        finding(
            "prometheus reach",
            Status::Fail,
            format!(
                "Prometheus (PrivateUsers=true) cannot traverse {}: chmod o+x",
                blocked.join(", ")
            ),
        )
    } else if let Some(first) = missing.last() {
        finding(
            "prometheus reach",
            Status::Warn,
            format!("{first} not created yet (Cells creates it when it runs); the directories above it are traversable; check again once Cells runs"),
        )
    } else {
        finding(
            "prometheus reach",
            Status::Pass,
            "every directory to the targets file is traversable by others",
        )
    }];
    let cells_ran = under_root(root, a.cells.working_dir.as_str())
        .join("services")
        .is_dir();
    if cells_ran && !on_disk.exists() {
        out.push(finding("prometheus targets", Status::Warn, format!("{file} does not exist although Cells has run; check --prometheus-targets-file for this Cells version")));
    }
    out
}

/// The directories of the managed files, and their parents below the root,
/// can be changed by root alone.
pub fn directories(root: &Path, state: &State) -> Vec<Finding> {
    let managed = state
        .files
        .keys()
        .map(String::as_str)
        .filter(|p| paths::MANAGED.contains(p))
        .chain([paths::STATE]);
    let found = crate::apply::unsafe_dirs(root, managed);
    if found.is_empty() {
        return vec![finding(
            "directories",
            Status::Pass,
            "only their owner (root, or the user running cellsctl) can change the directories of the managed files",
        )];
    }
    found
        .into_iter()
        .map(|d| {
            finding(
                format!("directory {}", d.path.display()),
                Status::Fail,
                format!(
                    "{}; cellsctl refuses to write there: chown root:root, chmod go-w",
                    d.why
                ),
            )
        })
        .collect()
}

/// Backups `--force` left of files that hold secrets.
pub fn secret_backups(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for path in [paths::INSTALL_YML, paths::CA_KEY, paths::CELLS_KEY] {
        let file = under_root(root, path);
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            continue;
        };
        let prefix = format!("{}.cellsctl-bak.", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let backup = entry.path();
                out.push(finding(
                    format!("backup {}", backup.display()),
                    Status::Warn,
                    format!(
                        "a copy of a file that holds secrets (passwords or a private key); delete it once you no longer need it: rm {}",
                        backup.display()
                    ),
                ));
            }
        }
    }
    out
}

/// `--public-tls custom`: Caddy can serve the admin's certificate and key.
pub fn public_certificate(root: &Path, a: &Answers) -> Vec<Finding> {
    let PublicTls::Custom { cert, key } = &a.public_tls else {
        return vec![];
    };
    let problems = crate::public_cert::problems(root, cert, key, &a.external_url.host);
    vec![if problems.is_empty() {
        finding(
            "public certificate",
            Status::Pass,
            format!(
                "{cert} and {key} belong together, cover {} and can be read by Caddy",
                a.external_url.host
            ),
        )
    } else {
        finding("public certificate", Status::Fail, problems.join("; "))
    }]
}

/// Every offline finding, drift first.
pub fn run_all(root: &Path, state: &State, now: OffsetDateTime) -> Vec<Finding> {
    let mut findings = drift(root, state);
    findings.extend(certificates(root, &state.answers, now));
    findings.extend(public_certificate(root, &state.answers));
    findings.extend(permissions(root, state));
    findings.extend(directories(root, state));
    findings.extend(secret_backups(root));
    findings.extend(prometheus_targets(root, &state.answers));
    findings.extend(validators(root, state));
    findings
}

/// Human-readable findings, one a line.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let mark = match f.status {
            Status::Pass => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        };
        let detail = f.detail.replace('\n', "\n        ");
        out.push_str(&format!("{mark}  {}: {detail}\n", f.check));
    }
    out
}

#[cfg(test)]
mod certificate_tests {
    use super::*;
    use crate::answers::parsed;
    use crate::pki::{ensure, wanted_sans};

    /// Writes a CA and leaf issued at `issued` below a temp root.
    fn root_with_certs(a: &Answers, issued: OffsetDateTime) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let p = ensure(
            None,
            None,
            &a.external_url.host,
            &wanted_sans(a),
            a.cert_days,
            issued,
        )
        .unwrap();
        for (path, text) in [
            (paths::CA_CERT, &p.ca.cert_pem),
            (paths::CELLS_CERT, &p.leaf.cert_pem),
        ] {
            let target = under_root(root.path(), path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, text).unwrap();
        }
        root
    }

    fn answers() -> Answers {
        let mut a: Answers =
            serde_yaml::from_str(include_str!("../../tests/fixtures/answers.yaml")).unwrap();
        a.cert_days = parsed("825");
        a
    }

    #[test]
    fn certificate_expiry_is_warned_then_failed() {
        let a = answers();
        let issued = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let root = root_with_certs(&a, issued);
        let status = |days: i64| {
            certificates(root.path(), &a, issued + time::Duration::days(days))
                .into_iter()
                .find(|f| f.check == "cells.crt expiry")
                .map(|f| f.status)
        };
        assert_eq!(status(1), Some(Status::Pass));
        assert_eq!(status(810), Some(Status::Warn));
        assert_eq!(status(830), Some(Status::Fail));
        let names = certificates(root.path(), &a, issued);
        assert!(names.iter().all(|f| f.status == Status::Pass), "{names:?}");
    }

    #[test]
    fn names_not_covered_fail() {
        let a = answers();
        let issued = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let root = root_with_certs(&a, issued);
        let mut moved = a.clone();
        moved.external_url = parsed("https://files.example.org");
        let f = certificates(root.path(), &moved, issued);
        assert!(
            f.iter().any(|f| f.check == "names"
                && f.status == Status::Fail
                && f.detail.contains("files.example.org")),
            "{f:?}"
        );
    }
}
