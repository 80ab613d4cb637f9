//! `cellsctl check`: offline findings on stdout (text or JSON); the exit
//! status says the worst.

use crate::apply::{self, Action, ApplyOptions};
use crate::check::{self, About, Finding, Outcome, Status};
use crate::cli::CheckArgs;
use crate::error::Error;
use crate::inputs::Given;
use crate::prepare::prepare;
use crate::render::paths;
use crate::state::{self, State};
use crate::ui;
use std::path::Path;
use time::OffsetDateTime;

pub fn run(args: &CheckArgs, now: OffsetDateTime) -> Result<(), Error> {
    let root = args.root.as_path();
    let state = state::require(root)?;
    let mut findings = check::run_all(root, &state, now);
    if Outcome::of(&findings) == Outcome::Drifted {
        explain_drift(root, &state, now, &mut findings);
    }
    super::print(&if args.json {
        super::json(&findings)
    } else {
        ui::colour_diff(&check::render(&findings), ui::stdout_colours())
    })?;
    Outcome::of(&findings).into_result()
}

/// For each drifted file, the diff to what cellsctl would write, decided as
/// `regenerate` would. A file whose only difference is what cellsctl reads
/// back from it (install.yml's passwords) is a warning: regenerate keeps it.
fn explain_drift(root: &Path, state: &State, now: OffsetDateTime, findings: &mut [Finding]) {
    let Ok(prepared) = prepare(root, &Given::default(), Some(state), false, now) else {
        return;
    };
    let options = ApplyOptions {
        root,
        force: false,
        restore: false,
        timestamp: "",
        intent: paths::INTENT,
        fault: None,
    };
    let Ok(decision) = apply::decide(&prepared.plan, &state.files, &options) else {
        return;
    };
    for f in findings.iter_mut() {
        let About::Drift { path } = &f.about else {
            continue;
        };
        let Some(entry) = decision.files.iter().find(|e| &e.path == path) else {
            continue;
        };
        if matches!(entry.action, Action::Unchanged | Action::FixPermissions) {
            f.status = Status::Warn;
            f.detail = "secret values were edited by hand; `cellsctl regenerate` keeps them and records the new hash".into();
        } else {
            f.detail.push('\n');
            f.detail.push_str(entry.diff.trim_end());
        }
    }
}
