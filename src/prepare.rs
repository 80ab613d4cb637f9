//! Inputs -> Answers -> Plan: everything that happens before anything is
//! written. Reads (install.yml, the key material, Debian's Prometheus
//! defaults), never writes.

use crate::answers::{Answers, UpstreamTls};
use crate::error::Error;
use crate::inputs::install::{self, InstallPlan};
use crate::inputs::{self, Given, Resolved};
use crate::pki::{self, CertAndKey, Pki};
use crate::plan::Plan;
use crate::render::{self, paths, RenderInputs};
use crate::root::{read_optional_text, under_root};
use crate::state::State;
use crate::ui;
use std::path::Path;
use time::OffsetDateTime;

/// The answers, install.yml's fate, the key material and every file.
pub struct Prepared {
    pub resolved: Resolved,
    pub install: InstallPlan,
    pub pki: Option<Pki>,
    /// Every file, the state record last.
    pub plan: Plan,
}

pub fn prepare(
    root: &Path,
    given: &Given,
    saved: Option<&State>,
    now: OffsetDateTime,
) -> Result<Prepared, Error> {
    ui::step("resolving the answers");
    // Missing answers are reported together: the answers', then install.yml's.
    let (resolved, install) = match (
        inputs::resolve(root, given, saved),
        install::plan(root, &given.secrets, saved),
    ) {
        (Ok(r), Ok(i)) => (r, i),
        (Err(Error::Missing(mut a)), Err(Error::Missing(b))) => {
            a.extend(b);
            return Err(Error::Missing(a));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let answers = &resolved.answers;
    prometheus_defaults_leave_the_flags(root, answers)?;
    let pki = key_material(root, answers, now)?;
    ui::step(format!("rendering for Caddy {}", answers.caddy_version));
    let mut plan = render::plan(
        answers,
        &RenderInputs {
            install_secrets: install.secrets(),
            pki: pki.as_ref(),
        },
    )?;
    let consumed = matches!(install, InstallPlan::Consumed);
    let state = State::record(answers, &resolved.caddy, &plan, saved, consumed);
    plan.files.push(state.planned_file()?);
    Ok(Prepared {
        resolved,
        install,
        pki,
        plan,
    })
}

/// Prometheus refuses a flag given twice: Debian's `ARGS` must not set one
/// the drop-in sets.
fn prometheus_defaults_leave_the_flags(root: &Path, answers: &Answers) -> Result<(), Error> {
    if answers.prometheus.is_none() {
        return Ok(());
    }
    let defaults_path = under_root(root, paths::PROMETHEUS_DEFAULTS);
    let Some(text) = read_optional_text(&defaults_path)? else {
        return Ok(());
    };
    let clash = render::prometheus::conflicting_default_args(&text);
    if clash.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--prometheus: {} already sets {} in ARGS, and Prometheus refuses a flag given twice; remove {} from ARGS there (cellsctl's drop-in sets {})",
        defaults_path.display(),
        clash.join(", "),
        if clash.len() == 1 { "it" } else { "them" },
        render::prometheus::DROPIN_FLAGS.join(", ")
    )))
}

/// A certificate and key pair below the root, if both exist.
fn read_pair(root: &Path, cert: &str, key: &str) -> Result<Option<CertAndKey>, Error> {
    match (
        read_optional_text(&under_root(root, cert))?,
        read_optional_text(&under_root(root, key))?,
    ) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(CertAndKey { cert_pem, key_pem })),
        _ => Ok(None),
    }
}

/// With upstream TLS `ca`: the CA and Cells certificate on disk, kept or renewed.
fn key_material(root: &Path, a: &Answers, now: OffsetDateTime) -> Result<Option<Pki>, Error> {
    if a.upstream_tls != UpstreamTls::Ca {
        return Ok(None);
    }
    ui::step("checking the private CA and the Cells certificate");
    pki::ensure(
        read_pair(root, paths::CA_CERT, paths::CA_KEY)?,
        read_pair(root, paths::CELLS_CERT, paths::CELLS_KEY)?,
        &a.external_url.host,
        &pki::wanted_sans(a),
        a.cert_days,
        now,
    )
    .map(Some)
}
