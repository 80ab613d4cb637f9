//! The review shown before an interactive run writes: every answer (secrets
//! as ••••) and what would happen to each file.

use super::action_column;
use crate::answers::{Answers, PublicTls, UpstreamTls};
use crate::apply::{Action, Decision};
use crate::root::under_root;
use std::fmt::Write;
use std::path::Path;

/// The answers, one row each.
fn rows(a: &Answers, install_secrets: bool) -> Vec<(&'static str, String)> {
    let public_tls = match &a.public_tls {
        PublicTls::Acme { email: Some(e) } => format!("ACME ({e})"),
        PublicTls::Acme { email: None } => "ACME".into(),
        PublicTls::Internal => "Caddy's internal CA".into(),
        PublicTls::Custom { cert, key } => format!("your files {cert}, {key}"),
        PublicTls::Off => "plain HTTP (Cells Sync cannot work)".into(),
    };
    let upstream_tls = match a.upstream_tls {
        UpstreamTls::Ca => format!("cellsctl CA, verified (certificate {} days)", a.cert_days),
        UpstreamTls::SkipVerify => "Cells' self-signed certificate, not verified".into(),
    };
    let mut rows = vec![
        ("External URL", a.external_url.to_string()),
        ("Cells bind", a.bind.to_string()),
        ("Public TLS", public_tls),
        ("Upstream TLS", upstream_tls),
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
    rows
}

pub fn review(a: &Answers, preview: &Decision, root: &Path, install_secrets: bool) -> String {
    let rows = rows(a, install_secrets);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::from("\nReview:\n");
    for (k, v) in &rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    out.push_str("Files:\n");
    for e in preview
        .entries()
        .filter(|e| !e.is_state || e.action != Action::Unchanged)
    {
        let _ = writeln!(
            out,
            "  {:<16} {}",
            action_column(&e.action),
            under_root(root, &e.path).display()
        );
    }
    out
}
