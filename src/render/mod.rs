//! Pure renderers: `Answers` (+ secrets and key material) -> `Plan`.
//!
//! No I/O, no clock, no randomness here: the same inputs give byte-identical
//! files. Text formats with structure (install.yml, the Prometheus config)
//! are serialized from typed structs; line formats (Caddyfile, units) come
//! from the minijinja templates in `templates/`, run with strict undefined.

pub mod caddyfile;
pub mod cells_install;
pub mod prometheus;
pub mod systemd;

#[cfg(test)]
mod properties;

use crate::answers::{Answers, UpstreamTls};
use crate::error::Error;
use crate::pki::Pki;
use crate::plan::{AbsentFile, Owner, Plan, PlannedDir, PlannedFile, Service, Visibility};
use crate::secrets::Secret;

/// Deployment paths of everything cellsctl manages.
pub mod paths {
    pub const STATE: &str = "/etc/cellsctl/cellsctl.yaml";
    /// Exists only while an apply is under way (or was interrupted).
    pub const INTENT: &str = "/etc/cellsctl/cellsctl.intent";
    pub const CADDYFILE: &str = "/etc/caddy/Caddyfile";
    pub const CA_CERT: &str = "/etc/cellsctl/pki/ca.crt";
    pub const CA_KEY: &str = "/etc/cellsctl/pki/ca.key";
    pub const CELLS_CERT: &str = "/etc/cells/tls/cells.crt";
    pub const CELLS_KEY: &str = "/etc/cells/tls/cells.key";
    pub const INSTALL_YML: &str = "/etc/cells/install.yml";
    pub const CELLS_UNIT: &str = "/etc/systemd/system/cells.service";
    pub const PROMETHEUS_CONFIG: &str = "/etc/prometheus/cellsctl.yml";
    pub const PROMETHEUS_DROPIN: &str = "/etc/systemd/system/prometheus.service.d/cellsctl.conf";
    pub const RENEW_SERVICE: &str = "/etc/systemd/system/cellsctl-renew.service";
    pub const RENEW_TIMER: &str = "/etc/systemd/system/cellsctl-renew.timer";
    /// Read, never written: Debian's `ARGS` for prometheus.service.
    pub const PROMETHEUS_DEFAULTS: &str = "/etc/default/prometheus";
}

/// The admin and database passwords, needed only while install.yml is written.
#[derive(Clone, Debug)]
pub struct InstallSecrets {
    pub admin_password: Secret,
    pub db_password: Secret,
}

/// Inputs besides the answers.
pub struct RenderInputs<'a> {
    /// `None` once install.yml has been used and deleted: it is never re-created.
    pub install_secrets: Option<&'a InstallSecrets>,
    /// Present in upstream-tls `ca` mode.
    pub pki: Option<&'a Pki>,
}

/// The embedded templates, with strict undefined behaviour.
pub(crate) fn template_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in [
        ("Caddyfile.j2", include_str!("../../templates/Caddyfile.j2")),
        (
            "cells.service.j2",
            include_str!("../../templates/cells.service.j2"),
        ),
        (
            "prometheus-dropin.conf.j2",
            include_str!("../../templates/prometheus-dropin.conf.j2"),
        ),
        (
            "cellsctl-renew.service.j2",
            include_str!("../../templates/cellsctl-renew.service.j2"),
        ),
        (
            "cellsctl-renew.timer.j2",
            include_str!("../../templates/cellsctl-renew.timer.j2"),
        ),
    ] {
        // The templates are compiled into the binary; a syntax error is a bug the tests catch.
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("embedded template {name} is invalid: {e}"));
    }
    env
}

pub(crate) fn render_template(name: &str, ctx: impl serde::Serialize) -> Result<String, Error> {
    let env = template_env();
    let tmpl = env
        .get_template(name)
        .map_err(|e| Error::runtime(format!("template {name}: {e}")))?;
    let text = tmpl
        .render(minijinja::value::Serde(&ctx))
        .map_err(|e| Error::runtime(format!("rendering {name}: {e}")))?;
    Ok(normalise(&text))
}

/// LF line endings, no trailing spaces, exactly one final newline.
pub(crate) fn normalise(text: &str) -> String {
    let mut out: String = text
        .replace("\r\n", "\n")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    while out.ends_with('\n') {
        out.pop();
    }
    out.push('\n');
    out
}

fn dir(path: &str, mode: u32) -> PlannedDir {
    PlannedDir {
        path: path.into(),
        mode,
        owner: Owner::root(),
    }
}

fn public_file(path: &str, contents: String, affects: Vec<Service>) -> PlannedFile {
    PlannedFile {
        path: path.into(),
        contents: contents.into_bytes(),
        mode: 0o644,
        owner: Owner::root(),
        mode_without_group: None,
        visibility: Visibility::Public,
        affects,
        is_state: false,
    }
}

fn gone(path: &str, affects: Vec<Service>) -> AbsentFile {
    AbsentFile {
        path: path.into(),
        affects,
    }
}

/// Every file and directory for these answers (the state record is added by the caller).
pub fn plan(answers: &Answers, inputs: &RenderInputs) -> Result<Plan, Error> {
    let cells_user = answers.cells.user.to_string();
    let mut plan = Plan::default();

    plan.dirs.push(dir("/etc/cellsctl", 0o755));
    plan.dirs.push(dir("/etc/caddy", 0o755));
    plan.dirs.push(dir("/etc/systemd/system", 0o755));
    plan.dirs.push(PlannedDir {
        path: answers.cells.working_dir.to_string(),
        mode: 0o751,
        owner: Owner {
            user: Some(cells_user.clone()),
            group: Some(cells_user.clone()),
        },
    });

    plan.files.push(public_file(
        paths::CADDYFILE,
        caddyfile::render(answers)?,
        vec![Service::Caddy],
    ));

    let mut absent = Vec::new();
    if answers.upstream_tls == UpstreamTls::Ca {
        let pki = inputs.pki.ok_or_else(|| {
            Error::runtime("internal: upstream TLS 'ca' needs key material".to_string())
        })?;
        plan.dirs.push(dir("/etc/cellsctl/pki", 0o755));
        plan.dirs.push(dir("/etc/cells", 0o755));
        plan.dirs.push(dir("/etc/cells/tls", 0o755));
        plan.files.push(PlannedFile {
            visibility: Visibility::NotShown("certificate"),
            ..public_file(
                paths::CA_CERT,
                pki.ca.cert_pem.clone(),
                vec![Service::Caddy],
            )
        });
        plan.files.push(PlannedFile {
            mode: 0o600,
            visibility: Visibility::NotShown("private key"),
            ..public_file(paths::CA_KEY, pki.ca.key_pem.clone(), vec![])
        });
        plan.files.push(PlannedFile {
            visibility: Visibility::NotShown("certificate"),
            ..public_file(
                paths::CELLS_CERT,
                pki.leaf.cert_pem.clone(),
                vec![Service::Cells],
            )
        });
        plan.files.push(PlannedFile {
            mode: 0o640,
            owner: Owner {
                user: None,
                group: Some(cells_user.clone()),
            },
            mode_without_group: Some(0o600),
            visibility: Visibility::NotShown("private key"),
            ..public_file(
                paths::CELLS_KEY,
                pki.leaf.key_pem.clone(),
                vec![Service::Cells],
            )
        });
    } else {
        absent.push(gone(paths::CA_CERT, vec![Service::Caddy]));
        absent.push(gone(paths::CA_KEY, vec![]));
        absent.push(gone(paths::CELLS_CERT, vec![Service::Cells]));
        absent.push(gone(paths::CELLS_KEY, vec![Service::Cells]));
    }

    if let Some(secrets) = inputs.install_secrets {
        plan.dirs.push(dir("/etc/cells", 0o755));
        plan.files.push(PlannedFile {
            mode: 0o600,
            owner: Owner {
                user: Some(cells_user.clone()),
                group: Some(cells_user.clone()),
            },
            visibility: Visibility::Redacted(cells_install::SECRET_KEYS.to_vec()),
            ..public_file(
                paths::INSTALL_YML,
                cells_install::render(answers, secrets)?,
                vec![],
            )
        });
    }

    plan.files.push(public_file(
        paths::CELLS_UNIT,
        systemd::render_cells_unit(answers)?,
        vec![Service::SystemdDaemon, Service::Cells],
    ));

    plan.files.push(public_file(
        paths::RENEW_SERVICE,
        systemd::render_renew_service(answers)?,
        vec![Service::SystemdDaemon],
    ));
    plan.files.push(public_file(
        paths::RENEW_TIMER,
        systemd::render_renew_timer()?,
        vec![Service::SystemdDaemon],
    ));

    if let Some(prom) = &answers.prometheus {
        plan.dirs.push(dir("/etc/prometheus", 0o755));
        plan.dirs
            .push(dir("/etc/systemd/system/prometheus.service.d", 0o755));
        plan.files.push(public_file(
            paths::PROMETHEUS_CONFIG,
            prometheus::render_config(answers, prom)?,
            vec![Service::Prometheus],
        ));
        plan.files.push(public_file(
            paths::PROMETHEUS_DROPIN,
            prometheus::render_dropin(answers, prom)?,
            vec![Service::SystemdDaemon, Service::Prometheus],
        ));
    } else {
        absent.push(gone(paths::PROMETHEUS_CONFIG, vec![Service::Prometheus]));
        absent.push(gone(
            paths::PROMETHEUS_DROPIN,
            vec![Service::SystemdDaemon, Service::Prometheus],
        ));
    }
    plan.absent = absent;

    // Parents first, each once.
    plan.dirs.sort_by(|a, b| a.path.cmp(&b.path));
    plan.dirs.dedup_by(|a, b| a.path == b.path);
    Ok(plan)
}
