//! After a run: what `--restart-services` did, and what is left to do on
//! this host, in order, each only when needed.

use super::{Context, Run, Setup};
use crate::answers::Host;
use crate::apply::Decision;
use crate::inputs::install::InstallPlan;
use crate::plan::Service;
use crate::render::paths;
use crate::services::Step;
use std::fmt::Write;
use std::path::Path;

/// The `Services:` block of a `--restart-services` run.
pub(super) fn restarted(decision: &Decision, ctx: &Context, restarted: &[Step]) -> String {
    let mut out = String::from("Services:\n");
    for s in restarted {
        let mark = if s.ok { "ok" } else { "FAILED" };
        let detail = s
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {mark:<6} {}{detail}", s.command);
    }
    let services = decision.services();
    if restarted.is_empty() && services.is_empty() {
        out.push_str("  nothing to restart\n");
    }
    if !ctx.host.cells_configured && services.contains(&Service::Cells) {
        out.push_str("  skipped systemctl restart cells: run `cells configure` with install.yml first (next steps)\n");
    }
    out
}

/// The numbered next steps, or nothing when there are none.
pub(super) fn render(decision: &Decision, ctx: &Context) -> String {
    // `--provision` took these steps itself, or stopped naming its fix.
    if ctx.run == Run::Provision {
        return String::new();
    }
    let mut steps: Vec<String> = match &ctx.answers.cluster {
        Some(c) => cluster_steps(decision, ctx, c),
        None => single_node_steps(decision, ctx),
    };
    if ctx.root != Path::new("/") && !steps.is_empty() {
        steps.insert(
            0,
            format!(
                "The files were written below {}; copy them into place on the server first (the paths below are where they belong).",
                ctx.root.display()
            ),
        );
    }
    if steps.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nNext steps:\n");
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {s}", i + 1);
    }
    out
}

/// One Cells on this host: its user, `cells configure`, the services.
fn single_node_steps(decision: &Decision, ctx: &Context) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    if !ctx.host.cells_user_exists {
        steps.push(create_user(ctx));
    }
    if let InstallPlan::Write(_) = ctx.install {
        steps.extend(install_cells(ctx));
    }
    steps.extend(start_services(decision, ctx));
    steps
}

/// A cluster: the nodes first (the first one configures Cells for all),
/// then the proxy on this host.
fn cluster_steps(decision: &Decision, ctx: &Context, c: &crate::cluster::Cluster) -> Vec<String> {
    let mut steps = if ctx.setup == Setup::First {
        first_cluster_steps(ctx, c)
    } else {
        changed_nodes(decision, ctx, c)
    };
    if ctx.run == Run::Write {
        let mut here: Vec<String> = decision
            .services()
            .iter()
            .map(|s| s.command().to_string())
            .collect();
        if ctx.setup == Setup::First {
            here.push(
                "systemctl enable --now cellsctl-renew.timer cellsctl-caddy-upgrade.path".into(),
            );
        }
        if !here.is_empty() {
            steps.push(format!(
                "Last, Caddy on this host:\n     {}",
                here.join("\n     ")
            ));
        }
    }
    steps
}

/// A new cluster: every node's user, the first node configures Cells for
/// all, then the others.
fn first_cluster_steps(ctx: &Context, c: &crate::cluster::Cluster) -> Vec<String> {
    let a = ctx.answers;
    let (user, wd, bin) = (&a.cells.user, &a.cells.working_dir, &a.cells.binary);
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.to_string()).collect();
    let first = &c.nodes[0];
    let mut steps = vec![
        format!(
            "On every node ({}): install the Cells binary as {bin}, and create the Cells user with its working dir:\n     useradd --system --user-group --home-dir {wd} --shell /usr/sbin/nologin {user}\n     install -d -o {user} -g {user} -m 0750 {wd}",
            names.join(", ")
        ),
        format!(
            "The first node, {name}: install its bundle (its install.yml needs the admin and database passwords: read from the files init was given, else give them again by env), configure Cells once, start it:\n     cellsctl node-bundle {name} | ssh root@{ip} tar -xpf - -C /\n     ssh root@{ip} 'sudo -u {user} env CELLS_WORKING_DIR={wd} {bin} configure --yaml {install} && rm {install} && systemctl daemon-reload && systemctl enable --now cells'",
            name = first.name,
            ip = first.ip(),
            install = paths::INSTALL_YML,
        ),
    ];
    for n in &c.nodes[1..] {
        steps.push(node_step(
            n,
            "Then",
            "no install file: it reads the shared config",
        ));
    }
    steps
}

/// A running cluster: the nodes that are new, or whose certificate was
/// (re-)issued, get their bundle again; never `cells configure`.
fn changed_nodes(decision: &Decision, ctx: &Context, c: &crate::cluster::Cluster) -> Vec<String> {
    let issued = |n: &crate::cluster::Node| {
        let (cert, _) = crate::render::node_paths(&n.name);
        decision
            .entries()
            .any(|e| e.path == cert && e.action != crate::apply::Action::Unchanged)
    };
    c.nodes
        .iter()
        .filter_map(|n| {
            let new = !ctx.previous_nodes.iter().any(|p| p == n.name.as_str());
            match (new, issued(n)) {
                (true, _) => Some(node_step(n, "New node", "create the Cells user there first, as for the others; it joins the shared config")),
                (false, true) => Some(node_step(n, "Node", "its certificate was issued again: install the new bundle, or it keeps serving the old one")),
                _ => None,
            }
        })
        .collect()
}

fn node_step(n: &crate::cluster::Node, what: &str, why: &str) -> String {
    format!(
        "{what} {name} ({why}):\n     cellsctl node-bundle {name} | ssh root@{ip} tar -xpf - -C /\n     ssh root@{ip} 'systemctl daemon-reload && systemctl enable cells && systemctl restart cells'",
        name = n.name,
        ip = n.ip()
    )
}

fn create_user(ctx: &Context) -> String {
    let user = &ctx.answers.cells.user;
    let wd = &ctx.answers.cells.working_dir;
    format!(
        "Create the Cells system user and group, and give it its working dir:\n     useradd --system --user-group --home-dir {wd} --shell /usr/sbin/nologin {user}\n     chown {user}:{user} {wd}\n     cellsctl regenerate   # hands install.yml and cells.key to {user}"
    )
}

/// The database, `cells configure`, then deleting install.yml.
fn install_cells(ctx: &Context) -> [String; 3] {
    let a = ctx.answers;
    let db = &a.database;
    let client_host = match &db.host.0 {
        Host::Dns(d) if d == "localhost" => "localhost",
        Host::Ip(ip) if ip.is_loopback() => "localhost",
        _ => "%",
    };
    [
        format!(
            "Create the database and its user in MariaDB/MySQL (type the database password where shown):\n     mysql -u root -p <<'SQL'\n     CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n     CREATE USER IF NOT EXISTS '{dbuser}'@'{client_host}' IDENTIFIED BY 'TYPE-THE-DB-PASSWORD-HERE';\n     GRANT ALL PRIVILEGES ON `{name}`.* TO '{dbuser}'@'{client_host}';\n     FLUSH PRIVILEGES;\n     SQL",
            name = db.name,
            dbuser = db.user,
        ),
        format!(
            "Install Cells from the answers file, as {user} with CELLS_WORKING_DIR set (otherwise Cells installs into the user's home):\n     sudo -u {user} env CELLS_WORKING_DIR={wd} {bin} configure --yaml {install}",
            user = a.cells.user,
            wd = a.cells.working_dir,
            bin = a.cells.binary,
            install = paths::INSTALL_YML
        ),
        format!(
            "Delete the answers file, which holds the admin and database passwords:\n     rm {}",
            paths::INSTALL_YML
        ),
    ]
}

/// The systemctl commands to run by hand (none after `--restart-services`).
fn start_services(decision: &Decision, ctx: &Context) -> Option<String> {
    let commands: Vec<String> = match (ctx.run, ctx.setup) {
        (Run::WriteAndRestart | Run::DryRun | Run::Provision, _) => Vec::new(),
        (Run::Write, Setup::First) => {
            let mut c = vec![
                "systemctl daemon-reload",
                "systemctl enable --now cells",
                "systemctl reload caddy",
            ];
            if ctx.answers.prometheus.is_some() {
                c.push("systemctl restart prometheus");
            }
            // Certificate renewal, and following Caddy upgrades at once.
            c.push("systemctl enable --now cellsctl-renew.timer cellsctl-caddy-upgrade.path");
            c.into_iter().map(String::from).collect()
        }
        (Run::Write, Setup::Again) => decision
            .services()
            .iter()
            .map(|s| s.command().to_string())
            .collect(),
    };
    if commands.is_empty() {
        return None;
    }
    let verb = match ctx.setup {
        Setup::First => "Start the services, in this order",
        Setup::Again => "Apply the change, in this order",
    };
    Some(format!("{verb}:\n     {}", commands.join("\n     ")))
}
