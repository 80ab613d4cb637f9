//! Inputs -> `Answers`. The layers (flags over the saved state over the
//! defaults, see `layer`) are merged in one place, `resolve`; what layering
//! cannot say (which flags go with which mode, how a password becomes a
//! hash) is a small named rule below. Every missing answer is collected and
//! reported at once, by its flag.

pub mod caddy;
pub mod cluster;
pub mod install;
pub mod layer;

pub use layer::{Combine, Fallback, Field, Layer};

use crate::answers::{
    AbsPath, Answers, CellsRuntime, Database, ExternalUrl, Prometheus, PublicTls, PublicTlsMode,
    Scheme, Toggle,
};
use crate::cli::AnswerArgs;
use crate::error::Error;
use crate::secrets::{bcrypt_hash, GivenSecrets, Secret, SecretKind};
use crate::state::{CaddyTarget, State};
use std::path::Path;

/// What this run was given: answer flags (over their `CELLSCTL_*`
/// variables) and secrets. The wizard adds to both.
#[derive(Clone, Debug, Default)]
pub struct Given {
    pub answers: Layer,
    pub secrets: GivenSecrets,
    /// `--provision`: a used install.yml may be written again for a Cells
    /// that lost its configuration.
    pub reconfigure: bool,
    /// `adopt`: Cells is installed already; install.yml counts as used.
    pub adopting: bool,
}

impl Given {
    pub fn from_args(a: &AnswerArgs) -> Given {
        Given {
            answers: Layer::from_flags(a),
            secrets: GivenSecrets::new(
                a.prometheus_password_file.as_deref(),
                a.admin_password_file.as_deref(),
                a.db_password_file.as_deref(),
                [
                    a.vault_token_file.as_deref(),
                    a.mongodb_dsn_file.as_deref(),
                    a.s3_secret_key_file.as_deref(),
                ],
            ),
            reconfigure: false,
            adopting: false,
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

/// The answers nobody gave, in the order they are asked about.
#[derive(Default)]
struct Missing(Vec<String>);

impl Missing {
    fn need<T>(&mut self, value: Option<T>, field: Field) -> Option<T> {
        if value.is_none() {
            self.0.push(field.usage());
        }
        value
    }

    fn into_result(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Missing(self.0))
        }
    }
}

/// An answer that has a built-in default, so some layer always gives it.
fn defaulted<T>(value: Option<T>, field: Field) -> Result<T, Error> {
    value.ok_or_else(|| Error::runtime(format!("internal: no default for {}", field.flag())))
}

/// Layers the given answers over the saved ones and the defaults.
pub fn resolve(root: &Path, given: &Given, saved: Option<&State>) -> Result<Resolved, Error> {
    let flags = &given.answers;
    let merged = flags
        .clone()
        .combine(
            saved
                .map(|s| Layer::from_answers(&s.answers))
                .unwrap_or_default(),
        )
        .combine(Layer::defaults().clone());
    let mode = defaulted(merged.public_tls, Field::PublicTls)?;
    flags_fit_the_tls_mode(flags, mode)?;
    let mut missing = Missing::default();
    let external_url = missing.need(merged.external_url.clone(), Field::ExternalUrl);
    let public_tls = public_tls(&merged, mode, &mut missing);
    if let (Some(url), Some(tls)) = (&external_url, &public_tls) {
        scheme_fits_the_tls_mode(url, tls)?;
    }
    let prometheus = if merged.prometheus == Some(Toggle::On) {
        prometheus(
            flags,
            &merged,
            &given.secrets,
            saved.and_then(|s| s.answers.prometheus.as_ref()),
            &mut missing,
        )?
    } else {
        prometheus_flags_need_prometheus(flags, &given.secrets)?;
        None
    };
    let cluster = cluster::resolve(
        flags,
        &merged,
        &given.secrets,
        saved.and_then(|s| s.answers.cluster.as_ref()),
        merged.prometheus == Some(Toggle::On),
        &mut missing,
    )?;
    let (caddy, caddy_note) = caddy::target(flags.caddy_version, saved.map(|s| &s.caddy))?;
    if caddy.is_none() {
        missing.0.push(format!(
            "{} (no `caddy` found on PATH: install Caddy first, or pass --caddy-version)",
            Field::CaddyVersion.usage()
        ));
    }
    missing.into_result()?;
    let (Some(external_url), Some(public_tls), Some(caddy)) = (external_url, public_tls, caddy)
    else {
        return Err(Error::runtime(
            "internal: answers missing after the missing-answer check",
        ));
    };
    let answers = Answers {
        external_url,
        bind: defaulted(merged.bind, Field::Bind)?,
        public_tls,
        upstream_tls: defaulted(merged.upstream_tls, Field::UpstreamTls)?,
        cert_days: defaulted(merged.cert_days, Field::CertDays)?,
        prometheus,
        admin_login: defaulted(merged.admin_login.clone(), Field::AdminLogin)?,
        database: database(&merged)?,
        cells: cells_runtime(&merged)?,
        caddy_version: caddy.version(),
        cellsctl_binary: defaulted(merged.cellsctl_binary.clone(), Field::CellsctlBinary)?,
        cluster,
    };
    working_dir_is_its_own(&answers.cells.working_dir)?;
    let mut notes: Vec<String> = caddy_note.into_iter().collect();
    notes.extend(plain_http_prometheus(&answers));
    notes.extend(weak_bcrypt(&answers));
    notes.extend(crate::public_cert::warning(root, &answers));
    Ok(Resolved {
        answers,
        caddy,
        notes,
    })
}

fn public_tls(merged: &Layer, mode: PublicTlsMode, missing: &mut Missing) -> Option<PublicTls> {
    match mode {
        PublicTlsMode::Acme => Some(PublicTls::Acme {
            email: merged.acme_email.clone(),
        }),
        PublicTlsMode::Internal => Some(PublicTls::Internal),
        PublicTlsMode::Off => Some(PublicTls::Off),
        PublicTlsMode::Custom => {
            let cert = missing.need(merged.public_cert.clone(), Field::PublicCert);
            let key = missing.need(merged.public_key.clone(), Field::PublicKey);
            Some(PublicTls::Custom {
                cert: cert?,
                key: key?,
            })
        }
    }
}

fn prometheus(
    flags: &Layer,
    merged: &Layer,
    secrets: &GivenSecrets,
    saved: Option<&Prometheus>,
    missing: &mut Missing,
) -> Result<Option<Prometheus>, Error> {
    let bcrypt_cost = defaulted(merged.bcrypt_cost, Field::BcryptCost)?;
    let user = missing.need(merged.prometheus_user.clone(), Field::PrometheusUser);
    let password_hash = match (&flags.prometheus_password_hash, secrets.read(SecretKind::Prometheus)?) {
        (Some(_), Some(_)) => return Err(Error::usage(
            "--prometheus-password-hash: give either a hash or a password (--prometheus-password-file / CELLSCTL_PROMETHEUS_PASSWORD), not both",
        )),
        (Some(hash), None) => Some(hash.clone()),
        (None, Some(password)) => Some(hash_unless_unchanged(&password, saved, bcrypt_cost)?),
        // The saved hash, if any.
        (None, None) => merged.prometheus_password_hash.clone(),
    };
    if password_hash.is_none() {
        missing.0.push(format!(
            "{} or {}",
            SecretKind::Prometheus.how(),
            Field::PrometheusPasswordHash.usage()
        ));
    }
    let (Some(user), Some(password_hash)) = (user, password_hash) else {
        return Ok(None);
    };
    Ok(Some(Prometheus {
        listen: defaulted(merged.prometheus_listen, Field::PrometheusListen)?,
        path: defaulted(merged.prometheus_path.clone(), Field::PrometheusPath)?,
        user,
        password_hash,
        bcrypt_cost,
        targets_file: merged.prometheus_targets_file.clone(),
    }))
}

/// The same password as before keeps its hash, so a re-run with the same
/// input changes nothing (a new salt would rewrite the Caddyfile).
fn hash_unless_unchanged(
    password: &Secret,
    saved: Option<&Prometheus>,
    cost: crate::answers::BcryptCost,
) -> Result<crate::answers::BcryptHash, Error> {
    match saved {
        Some(p) if bcrypt::verify(password.expose(), p.password_hash.as_str()).unwrap_or(false) => {
            Ok(p.password_hash.clone())
        }
        _ => crate::ui::with_spinner(
            &format!("Hashing the Prometheus password (bcrypt cost {cost})"),
            || bcrypt_hash(password.expose(), cost),
        ),
    }
}

fn database(merged: &Layer) -> Result<Database, Error> {
    Ok(Database {
        host: defaulted(merged.db_host.clone(), Field::DbHost)?,
        port: defaulted(merged.db_port, Field::DbPort)?,
        name: defaulted(merged.db_name.clone(), Field::DbName)?,
        user: defaulted(merged.db_user.clone(), Field::DbUser)?,
    })
}

fn cells_runtime(merged: &Layer) -> Result<CellsRuntime, Error> {
    Ok(CellsRuntime {
        binary: defaulted(merged.cells_binary.clone(), Field::CellsBinary)?,
        user: defaulted(merged.cells_user.clone(), Field::CellsUser)?,
        working_dir: defaulted(merged.cells_working_dir.clone(), Field::CellsWorkingDir)?,
    })
}

/// `--acme-email` goes with acme, `--public-cert`/`--public-key` with custom.
fn flags_fit_the_tls_mode(flags: &Layer, mode: PublicTlsMode) -> Result<(), Error> {
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
    Ok(())
}

/// `http://` goes with `--public-tls off`, `https://` with the other modes.
fn scheme_fits_the_tls_mode(url: &ExternalUrl, tls: &PublicTls) -> Result<(), Error> {
    match (url.scheme, tls) {
        (Scheme::Http, PublicTls::Off) => Ok(()),
        (Scheme::Http, _) => Err(Error::usage(
            "--external-url: an http:// URL needs --public-tls off (plain HTTP); use https:// with acme, internal or custom",
        )),
        (Scheme::Https, PublicTls::Off) => Err(Error::usage(
            "--external-url: with --public-tls off the URL must start with http:// (Caddy serves plain HTTP)",
        )),
        (Scheme::Https, _) => Ok(()),
    }
}

/// With Prometheus off, its flags have nothing to set: say so rather than ignore them.
fn prometheus_flags_need_prometheus(flags: &Layer, secrets: &GivenSecrets) -> Result<(), Error> {
    let field = |f: Field| (flags.is_set(f), f.flag());
    let given: Vec<&str> = [
        field(Field::PrometheusUser),
        field(Field::PrometheusListen),
        field(Field::PrometheusPath),
        (
            secrets.prometheus.file.is_some(),
            SecretKind::Prometheus.file_flag(),
        ),
        field(Field::PrometheusPasswordHash),
        field(Field::PrometheusTargetsFile),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect();
    if given.is_empty() {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{}: Prometheus is off; add --prometheus to turn it on",
            given.join(", ")
        )))
    }
}

fn plain_http_prometheus(a: &Answers) -> Option<String> {
    (a.prometheus.is_some() && a.public_tls == PublicTls::Off).then(|| {
        "with --public-tls off, the Prometheus password crosses the network in clear text (basic auth over plain HTTP); prefer acme, internal or custom".to_string()
    })
}

/// The Cells working dir is given to the Cells user: it must not be, hold
/// or lie inside a directory where cellsctl writes files as root (that
/// would hand the user install.yml's directory, the TLS keys, or a drop-in
/// directory of a root service).
fn working_dir_is_its_own(wd: &AbsPath) -> Result<(), Error> {
    let wd_path = Path::new(wd.as_str());
    for file in crate::render::paths::MANAGED {
        let Some(dir) = Path::new(file).parent() else {
            continue;
        };
        let relation = if wd_path == dir {
            "is"
        } else if dir.starts_with(wd_path) {
            "holds"
        } else if wd_path.starts_with(dir) {
            "lies inside"
        } else {
            continue;
        };
        return Err(Error::usage(format!(
            "--cells-working-dir: {wd} {relation} {}, where cellsctl writes {file} as root, and the Cells user would own it; choose a directory of its own, like /var/cells",
            dir.display()
        )));
    }
    // Nor inside the system's own trees, where a directory the Cells user
    // owns could be read by root as configuration (say /etc/systemd/system.conf.d).
    for system in SYSTEM_DIRS {
        if wd_path.starts_with(system) {
            return Err(Error::usage(format!(
                "--cells-working-dir: {wd} lies inside {system}, which holds the system's own files, and the Cells user would own it; choose a directory of its own, like /var/cells"
            )));
        }
    }
    Ok(())
}

/// Trees of root's where no directory may be handed to the Cells user.
const SYSTEM_DIRS: [&str; 13] = [
    "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/dev",
    "/proc", "/sys", "/run",
];

/// The hash is in the Caddyfile, which every local user can read.
fn weak_bcrypt(a: &Answers) -> Option<String> {
    let p = a.prometheus.as_ref()?;
    let cost = p.password_hash.cost();
    (cost < 10).then(|| {
        format!(
            "the Prometheus password is hashed with bcrypt cost {cost}; the Caddyfile that holds the hash is readable by every local user, so use a cost of 10 or more (--bcrypt-cost, Caddy's default is 14)"
        )
    })
}
