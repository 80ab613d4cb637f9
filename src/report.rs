//! What the admin reads after a run: each file's action, the diffs in a dry
//! run, the services to reload or restart in order, and the next steps for
//! this host. Secrets never reach this text: diffs are redacted by `apply`.

use crate::answers::{Answers, Host};
use crate::apply::{under_root, Action, Report};
use crate::pki::Pki;
use crate::plan::Service;
use crate::render::paths;
use crate::services::Step;
use crate::state::CaddyTarget;
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

pub struct Context<'a> {
    pub root: &'a Path,
    pub answers: &'a Answers,
    pub caddy: &'a CaddyTarget,
    pub notes: &'a [String],
    pub pki: Option<&'a Pki>,
    pub install_written: bool,
    pub install_consumed: bool,
    pub dry_run: bool,
    pub first_run: bool,
    pub restart_requested: bool,
    /// install.yml has been used (or never existed): Cells may be restarted.
    pub cells_ready: bool,
    /// The Cells system user exists on this host (else: how to create it).
    pub cells_user_exists: bool,
}

pub fn render(report: &Report, ctx: &Context, restarted: &[Step], colours: bool) -> String {
    let mut out = String::new();
    let caddy_source = match ctx.caddy {
        CaddyTarget::Flag { .. } => "from --caddy-version".to_string(),
        CaddyTarget::Detected(seen) => format!("detected from {}", seen.binary.path),
    };
    let _ = writeln!(
        out,
        "Rendering for Caddy {} ({caddy_source}).",
        ctx.answers.caddy_version
    );
    for note in ctx.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    if let Some(pki) = ctx.pki {
        // A dry run issues in memory only: say what a real run would do.
        let issued = if ctx.dry_run { "Would issue" } else { "Issued" };
        if pki.ca_issued {
            let _ = writeln!(out, "{issued} a private CA ({}).", paths::CA_CERT);
        }
        if let Some(why) = &pki.leaf_issued {
            let _ = writeln!(
                out,
                "{issued} the Cells certificate ({why}): valid {} days.",
                ctx.answers.cert_days
            );
        }
    }
    if report.resumed {
        let _ = writeln!(out, "Note: an earlier run was interrupted; finishing its work (its files are recognised, not treated as hand edits).");
    }
    for t in &report.cleaned_up {
        let _ = writeln!(
            out,
            "Removed a temporary file left by an interrupted run: {t}"
        );
    }
    if ctx.install_consumed {
        let _ = writeln!(
            out,
            "{} was used and deleted: not re-created (Cells reads it once; the site now lives in the cells.service unit).",
            paths::INSTALL_YML
        );
    }
    let _ = writeln!(
        out,
        "{}",
        if ctx.dry_run {
            "Plan (dry run, nothing written):"
        } else {
            "Files:"
        }
    );
    for e in &report.entries {
        if e.is_state && e.action == Action::Unchanged {
            continue;
        }
        let mut line = format!(
            "  {:<16} {} ({:04o})",
            e.action.label(),
            under_root(ctx.root, &e.path).display(),
            e.mode
        );
        if let Action::ReplaceDefault { package } = &e.action {
            let _ = write!(line, ": the untouched default from {package}");
        }
        if let Some(b) = &e.backup {
            let _ = write!(line, ", backup: {b}");
            if e.mode & 0o077 == 0 {
                let _ = write!(
                    line,
                    " (private like the file: it may hold secrets, delete it when done)"
                );
            }
        }
        let _ = writeln!(out, "{line}");
    }
    if ctx.dry_run {
        for e in report.entries.iter().filter(|e| !e.diff.is_empty()) {
            out.push('\n');
            out.push_str(&crate::ui::colour_diff(&e.diff, colours));
        }
    }

    let services = report.services();
    let changed = !report.changed_paths().is_empty();
    if !changed {
        let _ = writeln!(out, "Nothing to change.");
    }
    if ctx.dry_run {
        return out;
    }

    let mut steps: Vec<String> = Vec::new();
    let a = ctx.answers;
    let user = a.cells.user.to_string();
    let wd = a.cells.working_dir.to_string();
    if !ctx.cells_user_exists {
        steps.push(format!(
            "Create the Cells system user and group, and give it its working dir:\n     useradd --system --user-group --home-dir {wd} --shell /usr/sbin/nologin {user}\n     chown {user}:{user} {wd}\n     cellsctl regenerate   # hands install.yml and cells.key to {user}"
        ));
    }
    if ctx.install_written {
        let db = &a.database;
        let client_host = match &db.host.0 {
            Host::Dns(d) if d == "localhost" => "localhost".to_string(),
            Host::Ip(ip) if ip.is_loopback() => "localhost".to_string(),
            _ => "%".to_string(),
        };
        steps.push(format!(
            "Create the database and its user in MariaDB/MySQL (type the database password where shown):\n     mysql -u root -p <<'SQL'\n     CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n     CREATE USER IF NOT EXISTS '{dbuser}'@'{client_host}' IDENTIFIED BY 'TYPE-THE-DB-PASSWORD-HERE';\n     GRANT ALL PRIVILEGES ON `{name}`.* TO '{dbuser}'@'{client_host}';\n     FLUSH PRIVILEGES;\n     SQL",
            name = db.name,
            dbuser = db.user,
        ));
        steps.push(format!(
            "Install Cells from the answers file, as {user} with CELLS_WORKING_DIR set (otherwise Cells installs into the user's home):\n     sudo -u {user} env CELLS_WORKING_DIR={wd} {bin} configure --yaml {install}",
            bin = a.cells.binary,
            install = paths::INSTALL_YML
        ));
        steps.push(format!(
            "Delete the answers file, which holds the admin and database passwords:\n     rm {}",
            paths::INSTALL_YML
        ));
    }
    let mut commands: Vec<String> = Vec::new();
    if ctx.restart_requested {
        let _ = writeln!(out, "Services:");
        for s in restarted {
            let mark = if s.ok { "ok" } else { "FAILED" };
            let _ = writeln!(
                out,
                "  {mark:<6} {}{}",
                s.command,
                s.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
        }
        if restarted.is_empty() && services.is_empty() {
            let _ = writeln!(out, "  nothing to restart");
        }
        if !ctx.cells_ready && services.contains(&Service::Cells) {
            let _ = writeln!(out, "  skipped systemctl restart cells: run `cells configure` with install.yml first (next steps)");
        }
    } else if ctx.first_run {
        commands.push("systemctl daemon-reload".into());
        commands.push("systemctl enable --now cells".into());
        commands.push("systemctl reload caddy".into());
        if a.prometheus.is_some() {
            commands.push("systemctl restart prometheus".into());
        }
    } else if !services.is_empty() {
        commands.extend(services.iter().map(|s: &Service| s.command().to_string()));
    }
    if !commands.is_empty() {
        let verb = if ctx.first_run {
            "Start the services, in this order"
        } else {
            "Apply the change, in this order"
        };
        steps.push(format!("{verb}:\n     {}", commands.join("\n     ")));
    }
    if ctx.root != Path::new("/") && !steps.is_empty() {
        steps.insert(
            0,
            format!(
                "The files were written below {}; copy them into place on the server first (the paths below are where they belong).",
                ctx.root.display()
            ),
        );
    }
    if !steps.is_empty() {
        let _ = writeln!(out, "\nNext steps:");
        for (i, s) in steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {s}", i + 1);
        }
    }
    out
}

/// The review shown before an interactive run writes: every answer (secrets
/// as ••••) and what would happen to each file.
pub fn review(a: &Answers, preview: &Report, root: &Path, install_secrets: bool) -> String {
    use crate::answers::PublicTls;
    let mut rows: Vec<(&str, String)> = vec![
        ("External URL", a.external_url.to_string()),
        ("Cells bind", a.bind.to_string()),
        (
            "Public TLS",
            match &a.public_tls {
                PublicTls::Acme { email: Some(e) } => format!("ACME ({e})"),
                PublicTls::Acme { email: None } => "ACME".into(),
                PublicTls::Internal => "Caddy's internal CA".into(),
                PublicTls::Custom { cert, key } => format!("your files {cert}, {key}"),
                PublicTls::Off => "plain HTTP (Cells Sync cannot work)".into(),
            },
        ),
        (
            "Upstream TLS",
            match a.upstream_tls {
                crate::answers::UpstreamTls::Ca => {
                    format!("cellsctl CA, verified (certificate {} days)", a.cert_days)
                }
                crate::answers::UpstreamTls::SkipVerify => {
                    "Cells' self-signed certificate, not verified".into()
                }
            },
        ),
    ];
    match &a.prometheus {
        Some(p) => {
            rows.push((
                "Prometheus",
                format!("{} on {}, behind {}", p.path, p.listen, a.external_url),
            ));
            rows.push(("Prometheus login", format!("{} / ••••", p.user)));
        }
        None => rows.push(("Prometheus", "off".into())),
    }
    let secret = if install_secrets {
        " / ••••"
    } else {
        ""
    };
    rows.push(("Cells admin", format!("{}{secret}", a.admin_login)));
    let db = &a.database;
    rows.push((
        "Database",
        format!("{}@{}:{}/{}{secret}", db.user, db.host, db.port, db.name),
    ));
    rows.push((
        "Cells",
        format!(
            "{} as {} in {}",
            a.cells.binary, a.cells.user, a.cells.working_dir
        ),
    ));
    rows.push(("Caddy", a.caddy_version.to_string()));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::from("\nReview:\n");
    for (k, v) in &rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    let _ = writeln!(out, "Files:");
    for e in preview
        .entries
        .iter()
        .filter(|e| !e.is_state || e.action != Action::Unchanged)
    {
        let _ = writeln!(
            out,
            "  {:<16} {}",
            e.action.label(),
            under_root(root, &e.path).display()
        );
    }
    out
}

/// The `--json` output (schema in the README).
#[derive(Serialize)]
struct JsonReport<'a> {
    dry_run: bool,
    /// Why nothing was written (exit 3), or null.
    refused: Option<&'a str>,
    caddy_version: String,
    files: Vec<JsonFile<'a>>,
    /// Commands to run, in order, for what changed.
    services: Vec<&'static str>,
    /// With --restart-services: what was run and how it went.
    restarted: &'a [Step],
    notes: &'a [String],
}

#[derive(Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    written_to: String,
    action: &'static str,
    mode: String,
    sha256: Option<&'a str>,
    backup: Option<&'a str>,
}

pub fn json(report: &Report, ctx: &Context, restarted: &[Step]) -> String {
    let doc = JsonReport {
        dry_run: ctx.dry_run,
        refused: report.refused.as_deref(),
        caddy_version: ctx.answers.caddy_version.to_string(),
        files: report
            .entries
            .iter()
            .map(|e| JsonFile {
                path: &e.path,
                written_to: under_root(ctx.root, &e.path).display().to_string(),
                action: json_action(&e.action, report.refused.is_some()),
                mode: format!("{:04o}", e.mode),
                sha256: e.sha256.as_deref(),
                backup: e.backup.as_deref(),
            })
            .collect(),
        services: if report.refused.is_some() {
            Vec::new()
        } else {
            report.services().iter().map(|s| s.command()).collect()
        },
        restarted,
        notes: ctx.notes,
    };
    match serde_json::to_string_pretty(&doc) {
        Ok(text) => text + "\n",
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// create, update, unchanged, remove, fix-permissions, replace-default,
/// restore, overwrite (a hand-edited or unknown file, with --force).
fn json_action(a: &Action, refused: bool) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Unchanged => "unchanged",
        Action::FixPermissions => "fix-permissions",
        Action::ReplaceDefault { .. } => "replace-default",
        Action::Remove => "remove",
        Action::Restore => "restore",
        Action::HandEdited | Action::Unknown | Action::Deleted if refused => "refused",
        Action::HandEdited | Action::Unknown => "overwrite",
        Action::Deleted => "refused",
    }
}
