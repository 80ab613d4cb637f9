//! Inputs -> `Answers`: the one place where defaults, the saved state,
//! environment variables and flags are layered (defaults < saved state <
//! env < flags; clap already put env under flags). Also finds the Caddy
//! version and reads secrets. Every missing answer is collected and reported
//! at once, by its flag.

use crate::answers::{
    default_of, Answers, CaddyVersion, CellsRuntime, Database, Prometheus, PublicTls, Scheme,
};
use crate::cli::{AnswerArgs, PublicTlsMode};
use crate::error::Error;
use crate::secrets::{bcrypt_hash, SecretRules, SecretSource};
use crate::state::{BinaryStat, CaddyTarget, SeenCaddy, State};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Secret values from the environment (never from flags).
#[derive(Default)]
pub struct SecretEnv {
    pub prometheus_password: Option<String>,
    pub admin_password: Option<String>,
    pub db_password: Option<String>,
}

impl SecretEnv {
    pub fn from_process() -> SecretEnv {
        SecretEnv {
            prometheus_password: std::env::var("CELLSCTL_PROMETHEUS_PASSWORD").ok(),
            admin_password: std::env::var("CELLSCTL_ADMIN_PASSWORD").ok(),
            db_password: std::env::var("CELLSCTL_DB_PASSWORD").ok(),
        }
    }
}

/// The resolved answers and how the Caddy version was found.
pub struct Resolved {
    pub answers: Answers,
    pub caddy: CaddyTarget,
    /// Said to the user, e.g. "Caddy moved from 2.6.2 to 2.11.7".
    pub notes: Vec<String>,
}

pub fn resolve(
    flags: &AnswerArgs,
    secret_env: &SecretEnv,
    saved: Option<&State>,
) -> Result<Resolved, Error> {
    let prev = saved.map(|s| &s.answers);
    let mut missing: Vec<String> = Vec::new();
    let mut notes = Vec::new();

    let external_url = flags
        .external_url
        .clone()
        .or_else(|| prev.map(|p| p.external_url.clone()));
    if external_url.is_none() {
        missing.push("--external-url URL".into());
    }

    let mode = flags
        .public_tls
        .unwrap_or(match prev.map(|p| &p.public_tls) {
            Some(PublicTls::Acme { .. }) | None => PublicTlsMode::Acme,
            Some(PublicTls::Internal) => PublicTlsMode::Internal,
            Some(PublicTls::Custom { .. }) => PublicTlsMode::Custom,
            Some(PublicTls::Off) => PublicTlsMode::Off,
        });
    if flags.acme_email.is_some() && mode != PublicTlsMode::Acme {
        return Err(Error::usage(
            "--acme-email: only used with --public-tls acme",
        ));
    }
    if (flags.public_cert.is_some() || flags.public_key.is_some()) && mode != PublicTlsMode::Custom
    {
        return Err(Error::usage(
            "--public-cert/--public-key: only used with --public-tls custom",
        ));
    }
    let public_tls = match mode {
        PublicTlsMode::Acme => PublicTls::Acme {
            email: flags
                .acme_email
                .clone()
                .or_else(|| match prev.map(|p| &p.public_tls) {
                    Some(PublicTls::Acme { email }) => email.clone(),
                    _ => None,
                }),
        },
        PublicTlsMode::Internal => PublicTls::Internal,
        PublicTlsMode::Off => PublicTls::Off,
        PublicTlsMode::Custom => {
            let (saved_cert, saved_key) = match prev.map(|p| &p.public_tls) {
                Some(PublicTls::Custom { cert, key }) => (Some(cert.clone()), Some(key.clone())),
                _ => (None, None),
            };
            let cert = flags.public_cert.clone().or(saved_cert);
            let key = flags.public_key.clone().or(saved_key);
            if cert.is_none() {
                missing.push("--public-cert PATH".into());
            }
            if key.is_none() {
                missing.push("--public-key PATH".into());
            }
            match (cert, key) {
                (Some(cert), Some(key)) => PublicTls::Custom { cert, key },
                _ => PublicTls::Off, // placeholder; `missing` makes this an error below
            }
        }
    };
    if let Some(url) = &external_url {
        match (url.scheme, &public_tls) {
            (Scheme::Http, PublicTls::Off) | (Scheme::Https, PublicTls::Acme { .. } | PublicTls::Internal | PublicTls::Custom { .. }) => {}
            (Scheme::Http, _) => {
                return Err(Error::usage(
                    "--external-url: an http:// URL needs --public-tls off (plain HTTP); use https:// with acme, internal or custom",
                ))
            }
            (Scheme::Https, PublicTls::Off) if missing.is_empty() || mode == PublicTlsMode::Off => {
                return Err(Error::usage(
                    "--external-url: with --public-tls off the URL must start with http:// (Caddy serves plain HTTP)",
                ))
            }
            _ => {}
        }
    }

    let prometheus_on = if flags.prometheus {
        true
    } else if flags.no_prometheus {
        false
    } else {
        prev.is_some_and(|p| p.prometheus.is_some())
    };
    let prev_prom = prev.and_then(|p| p.prometheus.as_ref());
    let prometheus = if prometheus_on {
        let bcrypt_cost = flags
            .bcrypt_cost
            .or(prev_prom.map(|p| p.bcrypt_cost))
            .unwrap_or_default();
        let user = flags
            .prometheus_user
            .clone()
            .or_else(|| prev_prom.map(|p| p.user.clone()));
        if user.is_none() {
            missing.push("--prometheus-user NAME".into());
        }
        let source = SecretSource {
            file_flag: "--prometheus-password-file",
            file: flags.prometheus_password_file.as_deref(),
            env_var: "CELLSCTL_PROMETHEUS_PASSWORD",
            env_value: secret_env.prometheus_password.clone(),
            rules: SecretRules::BasicAuth,
        };
        let password_hash = match (&flags.prometheus_password_hash, source.read()?) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    "--prometheus-password-hash: give either a hash or a password (--prometheus-password-file / CELLSCTL_PROMETHEUS_PASSWORD), not both",
                ))
            }
            (Some(hash), None) => Some(hash.clone()),
            (None, Some(password)) => match prev_prom {
                // Same password as before: keep its hash, so a re-run with the
                // same input changes nothing (a new salt would rewrite the Caddyfile).
                Some(p) if bcrypt::verify(password.expose(), p.password_hash.as_str()).unwrap_or(false) => {
                    Some(p.password_hash.clone())
                }
                _ => Some(crate::ui::with_spinner(
                    &format!("Hashing the Prometheus password (bcrypt cost {bcrypt_cost})"),
                    || bcrypt_hash(password.expose(), bcrypt_cost),
                )?),
            },
            (None, None) => prev_prom.map(|p| p.password_hash.clone()),
        };
        if password_hash.is_none() {
            missing.push(format!(
                "{} or --prometheus-password-hash BCRYPT",
                source.how()
            ));
        }
        let listen = flags
            .prometheus_listen
            .or(prev_prom.map(|p| p.listen))
            .unwrap_or_else(|| default_of("127.0.0.1:9090"));
        match (user, password_hash) {
            (Some(user), Some(password_hash)) => Some(Prometheus {
                listen,
                path: flags
                    .prometheus_path
                    .clone()
                    .or_else(|| prev_prom.map(|p| p.path.clone()))
                    .unwrap_or_else(|| default_of("/prometheus")),
                user,
                password_hash,
                bcrypt_cost,
                targets_file: flags
                    .prometheus_targets_file
                    .clone()
                    .or_else(|| prev_prom.and_then(|p| p.targets_file.clone())),
            }),
            _ => None,
        }
    } else {
        let given: Vec<&str> = [
            (flags.prometheus_user.is_some(), "--prometheus-user"),
            (flags.prometheus_listen.is_some(), "--prometheus-listen"),
            (flags.prometheus_path.is_some(), "--prometheus-path"),
            (
                flags.prometheus_password_file.is_some(),
                "--prometheus-password-file",
            ),
            (
                flags.prometheus_password_hash.is_some(),
                "--prometheus-password-hash",
            ),
            (
                flags.prometheus_targets_file.is_some(),
                "--prometheus-targets-file",
            ),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if !given.is_empty() {
            return Err(Error::usage(format!(
                "{}: Prometheus is off; add --prometheus to turn it on",
                given.join(", ")
            )));
        }
        None
    };

    let (caddy, caddy_note) = match flags.caddy_version {
        Some(version) => {
            let (target, note) = pinned_target(version, saved.map(|s| &s.caddy))?;
            (Some(target), note)
        }
        None => caddy_target(saved.map(|s| &s.caddy))?,
    };
    notes.extend(caddy_note);
    if caddy.is_none() {
        missing.push("--caddy-version X.Y.Z (no `caddy` found on PATH: install Caddy first, or pass --caddy-version)".into());
    }

    if !missing.is_empty() {
        return Err(Error::Missing(missing));
    }
    let (Some(external_url), Some(caddy)) = (external_url, caddy) else {
        return Err(Error::runtime(
            "internal: answers missing after the missing-answer check",
        ));
    };
    let prev_db = prev.map(|p| &p.database);
    let prev_cells = prev.map(|p| &p.cells);
    let answers = Answers {
        external_url,
        bind: flags
            .bind
            .or(prev.map(|p| p.bind))
            .unwrap_or_else(|| default_of("127.0.0.1:8080")),
        public_tls,
        upstream_tls: flags
            .upstream_tls
            .or(prev.map(|p| p.upstream_tls))
            .unwrap_or(crate::answers::UpstreamTls::Ca),
        cert_days: flags
            .cert_days
            .or(prev.map(|p| p.cert_days))
            .unwrap_or_else(|| default_of("825")),
        prometheus,
        admin_login: flags
            .admin_login
            .clone()
            .or_else(|| prev.map(|p| p.admin_login.clone()))
            .unwrap_or_else(|| default_of("admin")),
        database: Database {
            host: flags
                .db_host
                .clone()
                .or_else(|| prev_db.map(|d| d.host.clone()))
                .unwrap_or_else(|| default_of("127.0.0.1")),
            port: flags
                .db_port
                .or(prev_db.map(|d| d.port))
                .unwrap_or_else(|| default_of("3306")),
            name: flags
                .db_name
                .clone()
                .or_else(|| prev_db.map(|d| d.name.clone()))
                .unwrap_or_else(|| default_of("cells")),
            user: flags
                .db_user
                .clone()
                .or_else(|| prev_db.map(|d| d.user.clone()))
                .unwrap_or_else(|| default_of("pydio")),
        },
        cells: CellsRuntime {
            binary: flags
                .cells_binary
                .clone()
                .or_else(|| prev_cells.map(|c| c.binary.clone()))
                .unwrap_or_else(|| default_of("/opt/pydio/bin/cells")),
            user: flags
                .cells_user
                .clone()
                .or_else(|| prev_cells.map(|c| c.user.clone()))
                .unwrap_or_else(|| default_of("pydio")),
            working_dir: flags
                .cells_working_dir
                .clone()
                .or_else(|| prev_cells.map(|c| c.working_dir.clone()))
                .unwrap_or_else(|| default_of("/var/cells")),
        },
        caddy_version: caddy.version(),
        cellsctl_binary: flags
            .cellsctl_binary
            .clone()
            .or_else(|| prev.map(|p| p.cellsctl_binary.clone()))
            .unwrap_or_else(|| default_of("/usr/bin/cellsctl")),
    };
    if answers.prometheus.is_some() && answers.public_tls == PublicTls::Off {
        notes.push("with --public-tls off, the Prometheus password crosses the network in clear text (basic auth over plain HTTP); prefer acme, internal or custom".to_string());
    }
    Ok(Resolved {
        answers,
        caddy,
        notes,
    })
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
    let Some(path) = crate::ui::which("caddy") else {
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
