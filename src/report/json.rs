//! The `--json` output of `init` and `regenerate` (schema in the README).

use super::{Context, Run};
use crate::apply::{Action, Decision, Refusal};
use crate::root::under_root;
use crate::services::Step;
use serde::Serialize;

#[derive(Serialize)]
struct JsonReport<'a> {
    dry_run: bool,
    /// Why nothing was written (exit 3), or null.
    refused: Option<String>,
    caddy_version: String,
    files: Vec<JsonFile<'a>>,
    /// Commands to run, in order, for what changed.
    services: Vec<&'static str>,
    /// With --restart-services: what was run and how it went.
    restarted: &'a [Step],
    notes: &'a [String],
    /// With --provision: each step (name, status, detail).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    provision: &'a [crate::provision::Step],
    /// With --provision: the verify step's checks.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    verify: &'a [crate::check::Finding],
}

#[derive(Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    written_to: String,
    action: &'a Action,
    mode: String,
    sha256: Option<&'a str>,
    backup: Option<&'a str>,
}

pub fn json(
    decision: &Decision,
    refusal: Option<&Refusal>,
    ctx: &Context,
    restarted: &[Step],
) -> String {
    let doc = JsonReport {
        dry_run: ctx.run == Run::DryRun,
        refused: refusal.map(|r| r.to_string()),
        caddy_version: ctx.answers.caddy_version.to_string(),
        files: decision
            .entries()
            .map(|e| JsonFile {
                path: &e.path,
                written_to: under_root(ctx.root, &e.path).display().to_string(),
                action: &e.action,
                mode: format!("{:04o}", e.mode),
                sha256: e.sha256.as_deref(),
                backup: e.backup.as_deref(),
            })
            .collect(),
        services: match refusal {
            Some(_) => Vec::new(),
            None => decision.services().iter().map(|s| s.command()).collect(),
        },
        restarted,
        notes: ctx.notes,
        provision: ctx.provision.map_or(&[], |p| p.0),
        verify: ctx.provision.map_or(&[], |p| p.1),
    };
    match serde_json::to_string_pretty(&doc) {
        Ok(text) => text + "\n",
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// A provisioning run stopped before any file was written: its steps.
pub fn provision_json(dry_run: bool, steps: &[crate::provision::Step]) -> String {
    #[derive(Serialize)]
    struct Stopped<'a> {
        dry_run: bool,
        files: [(); 0],
        provision: &'a [crate::provision::Step],
    }
    let doc = Stopped {
        dry_run,
        files: [],
        provision: steps,
    };
    match serde_json::to_string_pretty(&doc) {
        Ok(text) => text + "\n",
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}
