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

use crate::answers::{Answers, Prometheus, UpstreamTls};
use crate::error::Error;
use crate::pki::Pki;
use crate::plan::{AbsentFile, Hidden, Owner, Plan, PlannedDir, PlannedFile, Service, Visibility};
use crate::secrets::Secret;
use std::sync::LazyLock;

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
    /// Starts cellsctl-renew.service when the Caddy binary is replaced.
    pub const UPGRADE_PATH: &str = "/etc/systemd/system/cellsctl-caddy-upgrade.path";
    /// Where Debian's and Caddy's own packages install Caddy: watched for upgrades.
    pub const CADDY_BINARY: &str = "/usr/bin/caddy";
    /// `--provision`: the service steps the written files still call for,
    /// kept until the services step has run them (a failed run's re-run
    /// owes them too). Not a managed file.
    pub const OWED_SERVICES: &str = "/etc/cellsctl/cellsctl.owed";
    /// Held (flock) by a run that writes; created empty, never removed.
    pub const LOCK: &str = "/etc/cellsctl/cellsctl.lock";
    /// Read, never written: Debian's `ARGS` for prometheus.service.
    pub const PROMETHEUS_DEFAULTS: &str = "/etc/default/prometheus";

    /// Every file cellsctl may write.
    pub const MANAGED: [&str; 15] = [
        STATE,
        INTENT,
        LOCK,
        CADDYFILE,
        CA_CERT,
        CA_KEY,
        CELLS_CERT,
        CELLS_KEY,
        INSTALL_YML,
        CELLS_UNIT,
        PROMETHEUS_CONFIG,
        PROMETHEUS_DROPIN,
        RENEW_SERVICE,
        RENEW_TIMER,
        UPGRADE_PATH,
    ];
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
    /// Cluster mode with upstream-tls `ca`: the CA and every node's certificate.
    pub cluster_pki: Option<&'a crate::pki::ClusterPki>,
}

/// Where the proxy host keeps the nodes' certificates and keys.
pub const NODES_DIR: &str = "/etc/cellsctl/nodes/";

/// A node's certificate and key on the proxy host.
pub fn node_paths(name: &crate::cluster::NodeName) -> (String, String) {
    (
        format!("{NODES_DIR}{name}/cells.crt"),
        format!("{NODES_DIR}{name}/cells.key"),
    )
}

/// The templates, embedded in the binary, by name.
pub mod templates {
    /// A constant per template name, and every (name, source) pair.
    macro_rules! embedded {
        ($( $name:ident = $file:literal; )*) => {
            $( pub const $name: &str = $file; )*
            pub(super) const ALL: &[(&str, &str)] =
                &[$( ($file, include_str!(concat!("../../templates/", $file))), )*];
        };
    }

    embedded! {
        CADDYFILE = "Caddyfile.j2";
        CELLS_UNIT = "cells.service.j2";
        PROMETHEUS_DROPIN = "prometheus-dropin.conf.j2";
        RENEW_SERVICE = "cellsctl-renew.service.j2";
        RENEW_TIMER = "cellsctl-renew.timer.j2";
        UPGRADE_PATH = "cellsctl-caddy-upgrade.path.j2";
    }
}

/// The template environment, built once: strict about undefined values, so
/// a missing variable is an error rather than an empty string.
static TEMPLATES: LazyLock<Result<minijinja::Environment<'static>, String>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in templates::ALL.iter().copied() {
        env.add_template(name, source)
            .map_err(|e| format!("embedded template {name} is invalid: {e}"))?;
    }
    Ok(env)
});

pub(crate) fn render_template(name: &str, ctx: impl serde::Serialize) -> Result<String, Error> {
    let env = TEMPLATES.as_ref().map_err(|e| Error::runtime(e.clone()))?;
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
        force_keeps: false,
    }
}

fn gone(path: &str, mode: u32, affects: Vec<Service>) -> AbsentFile {
    AbsentFile {
        path: path.into(),
        mode,
        affects,
    }
}

/// Every file and directory for these answers (the state record is added by the caller).
pub fn plan(answers: &Answers, inputs: &RenderInputs) -> Result<Plan, Error> {
    if answers.cluster.is_some() {
        return cluster_plan(answers, inputs);
    }
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
            group: Some(cells_user),
        },
    });
    plan.files.push(public_file(
        paths::CADDYFILE,
        caddyfile::render(answers)?,
        vec![Service::Caddy],
    ));
    match answers.upstream_tls {
        UpstreamTls::Ca => add_pki(&mut plan, answers, inputs.pki)?,
        UpstreamTls::SkipVerify => plan.absent.extend([
            gone(paths::CA_CERT, 0o644, vec![Service::Caddy]),
            gone(paths::CA_KEY, 0o600, vec![]),
            gone(paths::CELLS_CERT, 0o644, vec![Service::Cells]),
            gone(paths::CELLS_KEY, 0o600, vec![Service::Cells]),
        ]),
    }
    if let Some(secrets) = inputs.install_secrets {
        add_install_file(&mut plan, answers, secrets)?;
    }
    add_units(&mut plan, answers)?;
    match &answers.prometheus {
        Some(prom) => add_prometheus(&mut plan, answers, prom)?,
        None => plan.absent.extend([
            gone(paths::PROMETHEUS_CONFIG, 0o644, vec![Service::Prometheus]),
            gone(
                paths::PROMETHEUS_DROPIN,
                0o644,
                vec![Service::SystemdDaemon, Service::Prometheus],
            ),
        ]),
    }
    // Parents first, each once.
    plan.dirs.sort_by(|a, b| a.path.cmp(&b.path));
    plan.dirs.dedup_by(|a, b| a.path == b.path);
    Ok(plan)
}

/// Cluster mode, on the proxy host: the Caddyfile in front of every node,
/// the CA and the nodes' certificates (for their bundles), the renewal
/// units; no Cells of its own (no cells.service, install.yml or
/// certificate), and no Prometheus (refused with --node).
fn cluster_plan(answers: &Answers, inputs: &RenderInputs) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    plan.dirs.push(dir("/etc/cellsctl", 0o755));
    plan.dirs.push(dir("/etc/caddy", 0o755));
    plan.dirs.push(dir("/etc/systemd/system", 0o755));
    plan.files.push(public_file(
        paths::CADDYFILE,
        caddyfile::render(answers)?,
        vec![Service::Caddy],
    ));
    match (answers.upstream_tls, inputs.cluster_pki) {
        (UpstreamTls::Ca, Some(pki)) => add_cluster_pki(&mut plan, pki),
        (UpstreamTls::Ca, None) => {
            return Err(Error::runtime(
                "internal: upstream TLS 'ca' needs key material".to_string(),
            ))
        }
        (UpstreamTls::SkipVerify, _) => plan.absent.extend([
            gone(paths::CA_CERT, 0o644, vec![Service::Caddy]),
            gone(paths::CA_KEY, 0o600, vec![]),
        ]),
    }
    plan.absent.extend([
        gone(paths::CELLS_CERT, 0o644, vec![]),
        gone(paths::CELLS_KEY, 0o600, vec![]),
        gone(paths::INSTALL_YML, 0o600, vec![]),
        gone(paths::CELLS_UNIT, 0o644, vec![Service::SystemdDaemon]),
        gone(paths::PROMETHEUS_CONFIG, 0o644, vec![Service::Prometheus]),
        gone(
            paths::PROMETHEUS_DROPIN,
            0o644,
            vec![Service::SystemdDaemon, Service::Prometheus],
        ),
    ]);
    for (path, contents) in [
        (
            paths::RENEW_SERVICE,
            systemd::render_renew_service(answers)?,
        ),
        (paths::RENEW_TIMER, systemd::render_renew_timer()?),
        (paths::UPGRADE_PATH, systemd::render_upgrade_path()?),
    ] {
        plan.files
            .push(public_file(path, contents, vec![Service::SystemdDaemon]));
    }
    plan.dirs.sort_by(|a, b| a.path.cmp(&b.path));
    plan.dirs.dedup_by(|a, b| a.path == b.path);
    Ok(plan)
}

/// The CA (as for one node) and each node's certificate and key, 0600 root.
fn add_cluster_pki(plan: &mut Plan, pki: &crate::pki::ClusterPki) {
    plan.dirs.push(dir("/etc/cellsctl/pki", 0o755));
    plan.dirs.push(dir(NODES_DIR.trim_end_matches('/'), 0o700));
    plan.files.push(PlannedFile {
        visibility: Visibility::NotShown(Hidden::Certificate),
        force_keeps: true,
        ..public_file(
            paths::CA_CERT,
            pki.ca.cert_pem.clone(),
            vec![Service::Caddy],
        )
    });
    plan.files.push(PlannedFile {
        mode: 0o600,
        visibility: Visibility::NotShown(Hidden::PrivateKey),
        force_keeps: true,
        ..public_file(paths::CA_KEY, pki.ca.key_pem.clone(), vec![])
    });
    for n in &pki.nodes {
        let (cert, key) = node_paths(&n.name);
        plan.dirs
            .push(dir(&format!("{NODES_DIR}{}", n.name), 0o700));
        plan.files.push(PlannedFile {
            mode: 0o600,
            visibility: Visibility::NotShown(Hidden::Certificate),
            force_keeps: true,
            ..public_file(&cert, n.pair.cert_pem.clone(), vec![])
        });
        plan.files.push(PlannedFile {
            mode: 0o600,
            visibility: Visibility::NotShown(Hidden::PrivateKey),
            force_keeps: true,
            ..public_file(&key, n.pair.key_pem.clone(), vec![])
        });
    }
}

/// The private CA and the Cells certificate (upstream TLS `ca`).
fn add_pki(plan: &mut Plan, answers: &Answers, pki: Option<&Pki>) -> Result<(), Error> {
    let pki = pki.ok_or_else(|| {
        Error::runtime("internal: upstream TLS 'ca' needs key material".to_string())
    })?;
    plan.dirs.push(dir("/etc/cellsctl/pki", 0o755));
    plan.dirs.push(dir("/etc/cells", 0o755));
    plan.dirs.push(dir("/etc/cells/tls", 0o755));
    let certificate = |path: &str, pem: &str, affects: Vec<Service>| PlannedFile {
        visibility: Visibility::NotShown(Hidden::Certificate),
        force_keeps: true,
        ..public_file(path, pem.to_string(), affects)
    };
    plan.files.push(certificate(
        paths::CA_CERT,
        &pki.ca.cert_pem,
        vec![Service::Caddy],
    ));
    plan.files.push(PlannedFile {
        mode: 0o600,
        visibility: Visibility::NotShown(Hidden::PrivateKey),
        force_keeps: true,
        ..public_file(paths::CA_KEY, pki.ca.key_pem.clone(), vec![])
    });
    plan.files.push(certificate(
        paths::CELLS_CERT,
        &pki.leaf.cert_pem,
        vec![Service::Cells],
    ));
    // Readable by the Cells group only; private to root where that group does not exist.
    plan.files.push(PlannedFile {
        mode: 0o640,
        owner: Owner {
            user: None,
            group: Some(answers.cells.user.to_string()),
        },
        mode_without_group: Some(0o600),
        visibility: Visibility::NotShown(Hidden::PrivateKey),
        force_keeps: true,
        ..public_file(
            paths::CELLS_KEY,
            pki.leaf.key_pem.clone(),
            vec![Service::Cells],
        )
    });
    Ok(())
}

/// install.yml, private to the Cells user, its passwords masked in diffs.
fn add_install_file(
    plan: &mut Plan,
    answers: &Answers,
    secrets: &InstallSecrets,
) -> Result<(), Error> {
    let cells_user = answers.cells.user.to_string();
    plan.dirs.push(dir("/etc/cells", 0o755));
    plan.files.push(PlannedFile {
        mode: 0o600,
        owner: Owner {
            user: Some(cells_user.clone()),
            group: Some(cells_user),
        },
        visibility: Visibility::Redacted(cells_install::SECRET_KEYS.to_vec()),
        ..public_file(
            paths::INSTALL_YML,
            cells_install::render(answers, secrets)?,
            vec![],
        )
    });
    Ok(())
}

/// cells.service, the renewal timer with its service, and the upgrade watcher.
fn add_units(plan: &mut Plan, answers: &Answers) -> Result<(), Error> {
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
    plan.files.push(public_file(
        paths::UPGRADE_PATH,
        systemd::render_upgrade_path()?,
        vec![Service::SystemdDaemon],
    ));
    Ok(())
}

/// cellsctl's Prometheus config and the drop-in for Debian's prometheus.service.
fn add_prometheus(plan: &mut Plan, answers: &Answers, prom: &Prometheus) -> Result<(), Error> {
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
    Ok(())
}
