//! The Caddy release to render for: pinned with `--caddy-version` (kept on
//! later runs, with the Caddy on PATH still watched), or detected from
//! `caddy version` on PATH (re-run only when the binary changed).

use crate::answers::CaddyVersion;
use crate::error::Error;
use crate::state::{BinaryStat, CaddyTarget, SeenCaddy};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The target for this run and, when it changed or disagrees with PATH, a
/// note for the admin. `None` when there is nothing to go on.
pub fn target(
    flag: Option<CaddyVersion>,
    saved: Option<&CaddyTarget>,
) -> Result<(Option<CaddyTarget>, Option<String>), Error> {
    match flag {
        Some(version) => {
            let (target, note) = pinned_target(version, saved)?;
            Ok((Some(target), note))
        }
        None => caddy_target(saved),
    }
}

fn stat(path: &Path) -> Option<BinaryStat> {
    let m = path.metadata().ok()?;
    Some(BinaryStat {
        path: path.display().to_string(),
        size: m.len(),
        mtime_secs: m.mtime(),
        mtime_nanos: m.mtime_nsec(),
    })
}

/// Runs `caddy version` and parses its first token.
fn caddy_version_of(binary: &Path) -> Result<CaddyVersion, Error> {
    // A clean environment: the child is whatever `caddy` PATH finds, and
    // must not see CELLSCTL_*_PASSWORD.
    let out = crate::ui::tool(binary)
        .arg("version")
        .output()
        .map_err(|e| Error::runtime(format!("cannot run {} version: {e}", binary.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.split_whitespace().next().unwrap_or("");
    first.parse().map_err(|e| {
        Error::usage(format!(
            "{} version printed {first:?}: {e}; pass --caddy-version to choose the release to render for",
            binary.display()
        ))
    })
}

/// The Caddy on PATH: its stat, and its version (re-run only when the stat
/// differs from what was seen before: a cheap stat, not a process start).
fn caddy_on_path(seen_before: Option<&SeenCaddy>) -> Result<Option<(PathBuf, SeenCaddy)>, Error> {
    let Some(path) = which::which("caddy").ok() else {
        return Ok(None);
    };
    let Some(binary) = stat(&path) else {
        return Ok(None);
    };
    let version = match seen_before {
        Some(s) if s.binary == binary => s.version,
        _ => {
            crate::ui::step(format!("running {} version", path.display()));
            caddy_version_of(&path)?
        }
    };
    Ok(Some((path, SeenCaddy { binary, version })))
}

/// A version pinned with `--caddy-version` is kept; a different Caddy on PATH is said.
fn pinned_target(
    version: CaddyVersion,
    saved: Option<&CaddyTarget>,
) -> Result<(CaddyTarget, Option<String>), Error> {
    let before = match saved {
        Some(CaddyTarget::Flag { seen, .. }) => seen.as_ref(),
        _ => None,
    };
    // A Caddy on PATH that cannot tell its version does not stop a pinned render.
    let on_path = caddy_on_path(before).unwrap_or(None);
    let note = on_path.as_ref().and_then(|(path, seen)| {
        (seen.version != version).then(|| {
            format!(
                "the Caddy on PATH ({}) is {}, but this renders for {version} as pinned with --caddy-version; pass --caddy-version {} if this host runs that one",
                path.display(),
                seen.version,
                seen.version
            )
        })
    });
    Ok((
        CaddyTarget::Flag {
            version,
            seen: on_path.map(|(_, s)| s),
        },
        note,
    ))
}

/// The Caddy to render for when no `--caddy-version` is given: a pinned
/// version is kept; a detected one is re-read only when the binary changed.
fn caddy_target(
    saved: Option<&CaddyTarget>,
) -> Result<(Option<CaddyTarget>, Option<String>), Error> {
    if let Some(CaddyTarget::Flag { version, .. }) = saved {
        let (target, note) = pinned_target(*version, saved)?;
        return Ok((Some(target), note));
    }
    let before = match saved {
        Some(CaddyTarget::Detected(seen)) => Some(seen),
        _ => None,
    };
    match (before, caddy_on_path(before)?) {
        (before, Some((path, seen))) => {
            let note = match before {
                Some(old) if old.version != seen.version => Some(format!(
                    "Caddy changed from {} to {} ({}): rendering for {}",
                    old.version,
                    seen.version,
                    path.display(),
                    seen.version
                )),
                _ => None,
            };
            Ok((Some(CaddyTarget::Detected(seen)), note))
        }
        (Some(old), None) => Ok((
            Some(CaddyTarget::Detected(old.clone())),
            Some(format!(
                "no `caddy` on PATH now; still rendering for Caddy {} as before",
                old.version
            )),
        )),
        _ => Ok((None, None)),
    }
}
