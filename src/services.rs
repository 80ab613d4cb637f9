//! `--restart-services`: run the systemctl steps a change needs, in order.

use crate::error::Error;
use crate::plan::Service;
use serde::Serialize;
use std::collections::BTreeSet;

/// One systemctl step and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub command: String,
    pub ok: bool,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The commands for these services, in order. `cells_ready` is false while
/// install.yml has not been used yet: restarting Cells then would start it
/// on an empty working dir. After a Caddy upgrade Caddy is restarted, not
/// reloaded: the running process may still be the old release, which
/// cannot load a Caddyfile rendered for the new one.
pub fn commands(
    services: &BTreeSet<Service>,
    cells_ready: bool,
    caddy_upgraded: bool,
) -> Vec<String> {
    services
        .iter()
        .filter(|s| cells_ready || **s != Service::Cells)
        .map(|s| match s {
            Service::Caddy if caddy_upgraded => "systemctl restart caddy".to_string(),
            s => s.command().to_string(),
        })
        .collect()
}

/// Runs each command (via `systemctl` on PATH), stopping at the first failure.
pub fn run(commands: &[String]) -> Result<Vec<Step>, (Vec<Step>, Error)> {
    run_with(commands, std::ffi::OsStr::new("systemctl"))
}

/// `run`, with this program in the place of `systemctl`.
fn run_with(
    commands: &[String],
    systemctl: &std::ffi::OsStr,
) -> Result<Vec<Step>, (Vec<Step>, Error)> {
    let mut steps = Vec::new();
    for command in commands {
        crate::ui::step(format!("running {command}"));
        let words = command.split_whitespace().skip(1);
        let result = crate::ui::tool(systemctl).args(words).output();
        match result {
            Ok(out) if out.status.success() => steps.push(Step {
                command: command.clone(),
                ok: true,
                detail: None,
            }),
            Ok(out) => {
                let why = format!(
                    "{} ({})",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    out.status
                );
                steps.push(Step {
                    command: command.clone(),
                    ok: false,
                    detail: Some(why.clone()),
                });
                return Err((steps, Error::runtime(format!("`{command}` failed: {why}; the files are written, fix the service and run the remaining steps"))));
            }
            Err(e) => {
                steps.push(Step {
                    command: command.clone(),
                    ok: false,
                    detail: Some(e.to_string()),
                });
                return Err((
                    steps,
                    Error::runtime(format!("cannot run `{command}`: {e}")),
                ));
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod restart_order_tests {
    use super::*;

    #[test]
    fn units_reload_first_and_cells_waits_for_its_install_file() {
        let all: BTreeSet<Service> = [
            Service::Prometheus,
            Service::Caddy,
            Service::Cells,
            Service::SystemdDaemon,
        ]
        .into_iter()
        .collect();
        assert_eq!(
            commands(&all, true, false),
            [
                "systemctl daemon-reload",
                "systemctl restart cells",
                "systemctl reload caddy",
                "systemctl restart prometheus"
            ]
        );
        assert!(commands(&all, true, true).contains(&"systemctl restart caddy".to_string()));
        assert!(!commands(&all, false, false)
            .iter()
            .any(|c| c.contains("cells")));
    }

    /// The steps stop at the first that fails, which is named with its reason.
    #[test]
    fn a_failing_step_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let fake = dir.path().join("systemctl");
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$*\" = 'reload caddy' ] && {{ echo 'Job failed' >&2; exit 1; }}\nexit 0\n",
            log.display()
        );
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let all: BTreeSet<Service> = [Service::SystemdDaemon, Service::Caddy, Service::Prometheus]
            .into_iter()
            .collect();
        let Err((steps, e)) = run_with(&commands(&all, true, false), fake.as_os_str()) else {
            panic!("the failure is reported")
        };
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "daemon-reload\nreload caddy\n"
        );
        assert_eq!(
            steps.iter().map(|s| s.ok).collect::<Vec<_>>(),
            [true, false]
        );
        let why = e.to_string();
        assert!(
            why.contains("`systemctl reload caddy` failed") && why.contains("Job failed"),
            "{why}"
        );
    }
}
