//! `--provision`: from written files to a running Cells on this server.
//! Each step looks first and acts only when its outcome is not there yet
//! (reported as skipped), so a re-run continues where a failed one stopped:
//! preflight, cells-user, database, files, cells-configure, services, verify.

mod cells;
mod database;
pub mod exec;
mod preflight;
mod services;

pub use cells::config_file as cells_config_file;
pub use preflight::caddyfile_guard;

use crate::answers::Answers;
use crate::apply::{Action, Decision};
use crate::error::Error;
use crate::inputs::install::InstallPlan;
use crate::plan::Plan;
use crate::secrets::Secret;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// How a step went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Skipped,
    Failed,
    /// `--dry-run`: what a real run would do.
    Planned,
}

/// One provisioning step, as reported (`--json`: name, status, detail).
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

/// What the steps need to know, and what they did.
pub struct Provisioner<'a> {
    answers: &'a Answers,
    install: &'a InstallPlan,
    plan: &'a Plan,
    dry_run: bool,
    /// The Prometheus password, when given in this run: verify logs in with it.
    prometheus_password: Option<Secret>,
    /// The host's MariaDB/MySQL client, found by preflight.
    sql_client: Option<PathBuf>,
    /// The database step could not finish before the files (a remote
    /// database the admin must prepare): it fails after them.
    database_pending: Option<String>,
    pub steps: Vec<Step>,
    /// The verify step's checks.
    pub verified: Vec<crate::check::Finding>,
    /// Caddy's local CA root (`tls internal`), read once Caddy answers.
    local_root: Option<String>,
}

/// A failed step stops the run: exit 1, the step named, and what to do.
fn stop(step: &str, why: impl std::fmt::Display, fix: &str) -> Error {
    Error::runtime(format!(
        "provisioning stopped at step `{step}`: {why}\n  fix: {fix}\n  then run the same command again: the steps already done are skipped"
    ))
}

/// Caddy is needed before the answers can be resolved (its version picks
/// the Caddyfile): checked first of all.
pub fn caddy_on_path() -> Result<(), Error> {
    match which::which("caddy") {
        Ok(_) => Ok(()),
        Err(_) => Err(stop(
            "preflight",
            "caddy is not installed (nothing was written)",
            "apt-get install caddy",
        )),
    }
}

impl<'a> Provisioner<'a> {
    pub fn new(
        answers: &'a Answers,
        install: &'a InstallPlan,
        plan: &'a Plan,
        dry_run: bool,
        prometheus_password: Option<Secret>,
    ) -> Provisioner<'a> {
        Provisioner {
            answers,
            install,
            plan,
            dry_run,
            prometheus_password,
            sql_client: None,
            database_pending: None,
            steps: Vec::new(),
            verified: Vec::new(),
            local_root: None,
        }
    }

    fn record(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        let detail = detail.into();
        if !self.dry_run || status != Status::Planned {
            crate::ui::step(format!("{name}: {detail}"));
        }
        self.steps.push(Step {
            name,
            status,
            detail,
        });
    }

    /// Records a failure and returns the error that stops the run.
    fn fail(&mut self, name: &'static str, why: impl std::fmt::Display, fix: &str) -> Error {
        self.record(name, Status::Failed, why.to_string());
        stop(name, why, fix)
    }

    /// Done, or in a dry run planned.
    fn acted(&mut self, name: &'static str, detail: impl Into<String>) {
        let status = if self.dry_run {
            Status::Planned
        } else {
            Status::Done
        };
        self.record(name, status, detail);
    }

    /// Preflight, the Cells user and the database: before any file is written.
    pub fn before_files(&mut self) -> Result<(), Error> {
        crate::ui::say("provisioning: preflight");
        self.preflight()?;
        self.cells_user()?;
        self.database()
    }

    /// The files step, from what the apply decided (or did). The service
    /// steps the written files call for are recorded until they are run.
    pub fn files(&mut self, decision: &Decision) -> Result<(), Error> {
        if !self.dry_run {
            let mut owed = services::owed::load();
            owed.extend(decision.services());
            if let Err(e) = services::owed::save(&owed) {
                return Err(self.fail(
                    "files",
                    format!(
                        "cannot record the service steps the files call for in {}: {e}",
                        crate::render::paths::OWED_SERVICES
                    ),
                    "check /etc/cellsctl",
                ));
            }
        }
        let changed = decision
            .entries()
            .filter(|e| !e.is_state && !matches!(e.action, Action::Unchanged | Action::Refused(_)))
            .count();
        if changed == 0 {
            self.record(
                "files",
                Status::Skipped,
                "already done: every file is as rendered",
            );
        } else {
            let what = format!("{changed} file(s) written or updated (listed below)");
            self.acted("files", what);
        }
        Ok(())
    }

    /// The steps after the files: `cells configure`, the services, verify.
    pub fn after_files(&mut self, decision: &Decision, caddy_upgraded: bool) -> Result<(), Error> {
        if let Some(sql) = self.database_pending.take() {
            return Err(self.fail(
                "database",
                format!(
                    "the database is remote ({}): cellsctl does not guess its admin credentials",
                    self.answers.database.host
                ),
                &format!(
                    "run this SQL as the database admin, then run the same command again:\n{sql}"
                ),
            ));
        }
        crate::ui::say("provisioning: cells configure");
        self.cells_configure()?;
        crate::ui::say("provisioning: services");
        self.services(decision, caddy_upgraded)?;
        crate::ui::say("provisioning: verify");
        self.verify()
    }
}

/// The `Provision:` block of the text report, and verify's checks.
pub fn render(steps: &[Step], verified: &[crate::check::Finding]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let mut out = String::from("Provision:\n");
    for s in steps {
        let mark = match s.status {
            Status::Done => "done",
            Status::Skipped => "skipped",
            Status::Failed => "FAILED",
            Status::Planned => "would",
        };
        let mut lines = s.detail.lines();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(out, "  {mark:<8} {:<16} {first}", s.name);
        for more in lines {
            let _ = writeln!(out, "  {:<8} {:<16} {more}", "", "");
        }
    }
    if !verified.is_empty() {
        out.push_str("Verify (this host, through Caddy):\n");
        for line in crate::check::render(verified).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
