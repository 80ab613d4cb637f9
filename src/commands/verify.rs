//! `cellsctl verify`: live checks against the deployment in the state (or
//! `--url`); exit 0 only when all pass.

use crate::answers::UpstreamTls;
use crate::check::{self, Status};
use crate::cli::VerifyArgs;
use crate::error::Error;
use crate::render::paths;
use crate::root::{read_optional_text, under_root};
use crate::secrets::{SecretInput, SecretKind};
use crate::state;
use crate::verify::{self, Target};

pub fn run(args: &VerifyArgs) -> Result<(), Error> {
    let target = target(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the network runtime: {e}")))?;
    let findings = runtime.block_on(verify::run(&target));
    super::print(&if args.json {
        super::json(&findings)
    } else {
        check::render(&findings)
    })?;
    let failed: Vec<String> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.check.clone())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::VerifyFailed(failed))
    }
}

/// What to probe: the URL, Prometheus' login and Cells' own address from
/// the state, the flags over them.
fn target(args: &VerifyArgs) -> Result<Target, Error> {
    let state = state::load(&args.root)?;
    let url = match (&args.url, &state) {
        (Some(u), _) => u.clone(),
        (None, Some(s)) => s.answers.external_url.clone(),
        (None, None) => {
            return Err(Error::usage(format!(
                "--url: no saved state at {}, so give the URL to check",
                under_root(&args.root, paths::STATE).display()
            )))
        }
    };
    let extra_roots = match &args.ca {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Error::usage(format!("--ca: cannot read {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let password = SecretInput {
        file: args.prometheus_password_file.clone(),
        value: std::env::var(SecretKind::Prometheus.env_var()).ok(),
        ..SecretInput::default()
    }
    .read(SecretKind::Prometheus)?;
    let a = state.as_ref().map(|s| &s.answers);
    let ca = match a {
        Some(a) if a.upstream_tls == UpstreamTls::Ca => {
            read_optional_text(&under_root(&args.root, paths::CA_CERT))?
        }
        _ => None,
    };
    let mut target = Target::new(
        &url,
        a,
        password.as_ref().map(|s| s.expose().to_string()),
        ca,
    );
    target.connect = args.connect;
    target.connect_http = args.connect_http;
    target.extra_roots = extra_roots;
    Ok(target)
}
