//! The Cells systemd unit.

use super::{paths, render_template, templates};
use crate::answers::{Answers, UpstreamTls};
use crate::error::Error;
use serde::Serialize;

#[derive(Serialize)]
struct Context {
    binary: String,
    user: String,
    working_dir: String,
    bind_low_port: bool,
    environment: Vec<(String, String)>,
    /// Cluster nodes: the file holding VAULT_TOKEN.
    environment_file: Option<&'static str>,
}

/// Where a cluster node keeps Vault's token (root 0600).
pub const CELLS_ENV: &str = "/etc/cells/cells.env";

/// The unit's `Environment=` lines. The site override makes the unit the
/// living source of truth for bind, URL and certificate; some 4.x releases
/// read only the names without `SITE_`, so both are set.
fn environment(a: &Answers, bind: String) -> Vec<(String, String)> {
    let mut site = vec![("BIND", bind), ("EXTERNAL", a.external_url.to_string())];
    if a.upstream_tls == UpstreamTls::Ca {
        site.push(("TLS_CERT_FILE", paths::CELLS_CERT.to_string()));
        site.push(("TLS_KEY_FILE", paths::CELLS_KEY.to_string()));
    }
    let mut env = vec![(
        "CELLS_WORKING_DIR".to_string(),
        a.cells.working_dir.to_string(),
    )];
    env.extend(
        site.iter()
            .map(|(k, v)| (format!("CELLS_SITE_{k}"), v.clone())),
    );
    env.extend(site.iter().map(|(k, v)| (format!("CELLS_{k}"), v.clone())));
    if a.prometheus.is_some() {
        env.push(("CELLS_ENABLE_METRICS".to_string(), "true".to_string()));
    }
    env
}

pub fn render_cells_unit(a: &Answers) -> Result<String, Error> {
    render_template(
        templates::CELLS_UNIT,
        Context {
            binary: a.cells.binary.to_string(),
            user: a.cells.user.to_string(),
            working_dir: a.cells.working_dir.to_string(),
            bind_low_port: a.bind.port() < 1024,
            environment: environment(a, a.bind.to_string()),
            environment_file: None,
        },
    )
}

/// A cluster node's unit: today's, with the node's own site bind and
/// addresses, the shared services, and Vault's token from cells.env.
pub fn render_node_unit(
    a: &Answers,
    c: &crate::cluster::Cluster,
    node: &crate::cluster::Node,
) -> Result<String, Error> {
    let mut env = environment(a, node.addr.to_string());
    let ip = node.ip().to_string();
    env.push(("CELLS_BIND_ADDRESS".to_string(), ip.clone()));
    env.push(("CELLS_ADVERTISE_ADDRESS".to_string(), ip));
    env.extend(c.services_env());
    render_template(
        templates::CELLS_UNIT,
        Context {
            binary: a.cells.binary.to_string(),
            user: a.cells.user.to_string(),
            working_dir: a.cells.working_dir.to_string(),
            bind_low_port: node.addr.port() < 1024,
            environment: env,
            environment_file: Some(CELLS_ENV),
        },
    )
}

#[derive(Serialize)]
struct RenewContext {
    cellsctl: String,
    caddy: &'static str,
}

/// The oneshot service the renewal timer starts.
pub fn render_renew_service(a: &Answers) -> Result<String, Error> {
    render_template(
        templates::RENEW_SERVICE,
        RenewContext {
            cellsctl: a.cellsctl_binary.to_string(),
            caddy: paths::CADDY_BINARY,
        },
    )
}

/// Weekly, with a randomized delay so a fleet does not renew at once.
pub fn render_renew_timer() -> Result<String, Error> {
    render_template(templates::RENEW_TIMER, ())
}

#[derive(Serialize)]
struct UpgradeContext {
    caddy: &'static str,
}

/// The path unit that runs the renewal service when Caddy is replaced.
pub fn render_upgrade_path() -> Result<String, Error> {
    render_template(
        templates::UPGRADE_PATH,
        UpgradeContext {
            caddy: paths::CADDY_BINARY,
        },
    )
}
