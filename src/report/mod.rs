//! What the admin reads after a run: each file's action, the diffs in a dry
//! run, the services to reload or restart in order, and the next steps for
//! this host. Secrets never reach this text: diffs are redacted by `apply`.

mod json;
mod next_steps;
mod review;

pub use json::{json, provision_json};
pub use review::review;

use crate::answers::Answers;
use crate::apply::{Action, Decision, Entry};
use crate::inputs::install::InstallPlan;
use crate::pki::Pki;
use crate::render::paths;
use crate::root::under_root;
use crate::services::Step;
use crate::state::CaddyTarget;
use std::fmt::Write;
use std::path::Path;

/// What kind of run this was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// `--dry-run`: nothing written.
    DryRun,
    Write,
    /// `--restart-services`: written, then the services restarted.
    WriteAndRestart,
    /// `--provision`: written, and the host set up around the files.
    Provision,
}

/// Whether this root had a deployment before this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    First,
    Again,
}

/// Facts about this host that decide the next steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// The Cells system user exists (else: how to create it).
    pub cells_user_exists: bool,
    /// install.yml has been used (or was never written): Cells may be restarted.
    pub cells_configured: bool,
}

pub struct Context<'a> {
    pub root: &'a Path,
    pub answers: &'a Answers,
    pub caddy: &'a CaddyTarget,
    pub notes: &'a [String],
    pub pki: Option<&'a Pki>,
    pub install: &'a InstallPlan,
    pub run: Run,
    pub setup: Setup,
    pub host: HostFacts,
    /// Cluster mode: the nodes of the saved state before this run.
    pub previous_nodes: Vec<String>,
    /// With `--provision`: its steps, and the verify step's checks.
    pub provision: Option<(&'a [crate::provision::Step], &'a [crate::check::Finding])>,
}

/// The whole report of a run that wrote (or in a dry run, would write).
pub fn render(decision: &Decision, ctx: &Context, restarted: &[Step], colours: bool) -> String {
    let mut out = header(decision, ctx);
    out.push_str(&files(decision, ctx));
    if ctx.run == Run::DryRun {
        for e in decision.entries().filter(|e| !e.diff.is_empty()) {
            out.push('\n');
            out.push_str(&crate::ui::colour_diff(&e.diff, colours));
        }
    }
    if !decision.changes() {
        out.push_str("Nothing to change.\n");
    }
    if let Some((steps, verified)) = ctx.provision {
        out.push_str(&crate::provision::render(steps, verified));
    }
    if ctx.run == Run::DryRun {
        return out;
    }
    if ctx.run == Run::WriteAndRestart {
        out.push_str(&next_steps::restarted(decision, ctx, restarted));
    }
    out.push_str(&next_steps::render(decision, ctx));
    out
}

/// The Caddy targeted, notes, key material issued, an interrupted run resumed.
fn header(decision: &Decision, ctx: &Context) -> String {
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
        let issued = if ctx.run == Run::DryRun {
            "Would issue"
        } else {
            "Issued"
        };
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
    if decision.resumed {
        let _ = writeln!(out, "Note: an earlier run was interrupted; finishing its work (its files are recognised, not treated as hand edits).");
    }
    for t in &decision.cleaned_up {
        let _ = writeln!(
            out,
            "Removed a temporary file left by an interrupted run: {t}"
        );
    }
    if let InstallPlan::Consumed = ctx.install {
        let _ = writeln!(
            out,
            "{} was used and deleted: not re-created (Cells reads it once; the site now lives in the cells.service unit).",
            paths::INSTALL_YML
        );
    }
    out
}

/// The action column: the action's name, or for an overwrite, what was overwritten.
pub(crate) fn action_column(action: &Action) -> String {
    match action {
        Action::Overwrite(conflict) => conflict.to_string(),
        other => other.to_string().replace('-', " "),
    }
}

/// One line per file (the state only when it changes).
fn files(decision: &Decision, ctx: &Context) -> String {
    let mut out = String::from(if ctx.run == Run::DryRun {
        "Plan (dry run, nothing written):\n"
    } else {
        "Files:\n"
    });
    for e in decision.entries() {
        if e.is_state && e.action == Action::Unchanged {
            continue;
        }
        let _ = writeln!(out, "{}", file_line(e, ctx.root));
    }
    out
}

fn file_line(e: &Entry, root: &Path) -> String {
    let mut line = format!(
        "  {:<16} {} ({:04o})",
        action_column(&e.action),
        under_root(root, &e.path).display(),
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
    line
}
