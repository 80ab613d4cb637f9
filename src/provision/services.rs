//! Steps 6 and 7: the units reloaded, restarted and enabled as the written
//! files call for; then, once Cells and Caddy answer, the `cellsctl verify`
//! checks against this host.

use super::{cells::config_file, exec, preflight::internal_tls, Provisioner, Status};
use crate::apply::Decision;
use crate::check::{Finding, Status as Check};
use crate::error::Error;
use crate::plan::Service;
use crate::render::paths;
use crate::verify::Target;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long Cells and Caddy get to answer after they were started.
const ANSWER_LIMIT: Duration = Duration::from_secs(90);

/// `systemctl WORD UNIT`'s one-word answer (`active`, `enabled`, `failed`…).
fn systemctl_says(word: &str, unit: &str) -> String {
    exec::run(
        crate::ui::tool("systemctl").args([word, unit]),
        b"",
        Duration::from_secs(20),
    )
    .map(|r| r.stdout.trim().to_string())
    .unwrap_or_default()
}

/// The last journal lines of a unit, indented.
fn journal_tail(unit: &str) -> String {
    exec::run(
        crate::ui::tool("journalctl").args(["-u", unit, "-n", "15", "--no-pager", "-o", "cat"]),
        b"",
        Duration::from_secs(20),
    )
    .map(|r| {
        r.stdout
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// One unit: started and enabled when it is not running yet; otherwise
/// enabled if it is not, and restarted or reloaded if its files changed.
fn unit_commands(unit: &str, changed: Option<String>) -> Vec<String> {
    match systemctl_says("is-active", unit).as_str() {
        "active" => {}
        // A unit that failed (perhaps too often to be started again at once)
        // gets a fresh start.
        "failed" => {
            return vec![
                format!("systemctl reset-failed {unit}"),
                format!("systemctl enable --now {unit}"),
            ]
        }
        _ => return vec![format!("systemctl enable --now {unit}")],
    }
    let mut out = Vec::new();
    if systemctl_says("is-enabled", unit) != "enabled" {
        out.push(format!("systemctl enable {unit}"));
    }
    out.extend(changed);
    out
}

impl Provisioner<'_> {
    pub(super) fn services(
        &mut self,
        decision: &Decision,
        caddy_upgraded: bool,
    ) -> Result<(), Error> {
        const STEP: &str = "services";
        // What this run's files call for, and what an earlier run's did
        // and could not run (read only: a dry run changes nothing).
        let mut wanted = decision.services();
        wanted.extend(owed::load());
        let changed = |s: Service| {
            wanted
                .contains(&s)
                .then(|| crate::services::commands(&[s].into(), true, caddy_upgraded).concat())
        };
        let mut commands = Vec::new();
        if wanted.contains(&Service::SystemdDaemon) {
            commands.push(Service::SystemdDaemon.command().to_string());
        }
        let configured = Path::new(&config_file(self.answers.cells.working_dir.as_str())).exists();
        if configured || self.dry_run {
            commands.extend(unit_commands("cells", changed(Service::Cells)));
        }
        commands.extend(unit_commands("caddy", changed(Service::Caddy)));
        if self.answers.prometheus.is_some() {
            commands.extend(unit_commands("prometheus", changed(Service::Prometheus)));
        } else if let Some(restart) = changed(Service::Prometheus) {
            commands.push(restart);
        }
        for unit in ["cellsctl-renew.timer", "cellsctl-caddy-upgrade.path"] {
            commands.extend(unit_commands(unit, None));
        }
        if self.dry_run && !commands.is_empty() {
            self.acted(STEP, commands.join("\n"));
            return Ok(());
        }
        if commands.is_empty() {
            if self.dry_run {
                self.record(
                    STEP,
                    Status::Skipped,
                    "already done: every service runs, is enabled and has its current files",
                );
                return Ok(());
            }
            owed::clear();
            self.local_root = self.wait_for_answers(STEP)?;
            self.record(
                STEP,
                Status::Skipped,
                "already done: every service runs, is enabled and has its current files",
            );
            return Ok(());
        }
        match crate::services::run(&commands) {
            Ok(_) => {
                self.local_root = self.wait_for_answers(STEP)?;
                owed::clear();
                self.acted(STEP, commands.join("\n"));
                Ok(())
            }
            Err((steps, e)) => {
                let failed = steps.last().map(|s| s.command.clone()).unwrap_or_default();
                let unit = failed.split_whitespace().last().unwrap_or("").to_string();
                Err(self.fail(
                    STEP,
                    format!("{e}\n  journal of {unit}:\n{}", journal_tail(&unit)),
                    &format!("see `journalctl -u {unit}`"),
                ))
            }
        }
    }

    pub(super) fn verify(&mut self) -> Result<(), Error> {
        const STEP: &str = "verify";
        if self.dry_run {
            self.acted(STEP, "wait for Cells and Caddy to answer, then run `cellsctl verify`'s checks against this host");
            return Ok(());
        }
        let url = &self.answers.external_url;
        let caddy_at = self.caddy_at();
        let local_root = self.local_root.take();
        let ca = self
            .plan
            .files
            .iter()
            .find(|f| f.path == paths::CA_CERT)
            .map(|f| String::from_utf8_lossy(&f.contents).into_owned());
        let mut target = Target::new(
            url,
            Some(self.answers),
            self.prometheus_password
                .as_ref()
                .map(|p| p.expose().to_string()),
            ca,
        );
        target.connect = Some(caddy_at);
        target.connect_http = Some(SocketAddr::from(([127, 0, 0, 1], 80)));
        target.extra_roots = local_root;
        let findings = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(crate::verify::run(&target)),
            Err(e) => {
                return Err(self.fail(
                    STEP,
                    format!("cannot start the network runtime: {e}"),
                    "run `cellsctl verify` by hand",
                ))
            }
        };
        let findings = self.outside_world_is_a_warning(findings);
        self.verified = findings.clone();
        let failed: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.status == Check::Fail)
            .collect();
        let warned = findings.iter().filter(|f| f.status == Check::Warn).count();
        let passed = findings.iter().filter(|f| f.status == Check::Pass).count();
        let skipped = findings
            .iter()
            .filter(|f| f.status == Check::Skipped)
            .count();
        if failed.is_empty() {
            self.acted(
                STEP,
                format!(
                    "{passed} checks passed, {warned} warning(s), {skipped} skipped (listed below)"
                ),
            );
            return Ok(());
        }
        let names: Vec<String> = failed
            .iter()
            .map(|f| format!("{}: {}", f.check, f.detail))
            .collect();
        Err(self.fail(
            STEP,
            format!(
                "{} check(s) failed:\n  {}",
                failed.len(),
                names.join("\n  ")
            ),
            "see `journalctl -u caddy -u cells`, fix, and run again",
        ))
    }

    /// A public certificate the system does not trust (ACME not issued
    /// yet, or a custom one) is the outside world's business: a warning.
    fn outside_world_is_a_warning(&self, findings: Vec<Finding>) -> Vec<Finding> {
        let trusted_here = internal_tls(&self.answers.public_tls);
        findings
            .into_iter()
            .map(|mut f| {
                if f.check == "https" && f.status == Check::Fail && !trusted_here {
                    f.status = Check::Warn;
                    f.detail = format!("{} (the public certificate is not trusted here yet: ACME needs public DNS and ports 80/443)", f.detail);
                }
                f
            })
            .collect()
    }

    /// Waits until Cells and Caddy accept connections (and with `tls
    /// internal`, Caddy's local CA exists: its root is returned). A unit
    /// that failed stops the wait with its journal.
    /// Caddy's site, on this host.
    fn caddy_at(&self) -> SocketAddr {
        let url = &self.answers.external_url;
        let port = url
            .port
            .unwrap_or(if url.scheme == crate::answers::Scheme::Http {
                80
            } else {
                443
            });
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn wait_for_answers(&mut self, step: &'static str) -> Result<Option<String>, Error> {
        let cells_at = self.answers.bind.dial();
        let caddy_at = self.caddy_at();
        let root_file = internal_tls(&self.answers.public_tls)
            .then(caddy_local_root)
            .flatten();
        let start = Instant::now();
        loop {
            for unit in ["cells", "caddy"] {
                let state = systemctl_says("is-active", unit);
                if state == "failed"
                    || (state == "activating" && start.elapsed() > Duration::from_secs(10))
                {
                    return Err(self.fail(
                        step,
                        format!("{unit}.service is {state}:\n{}", journal_tail(unit)),
                        &format!("see `journalctl -u {unit}`, fix, and run again"),
                    ));
                }
            }
            let up = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok();
            let root = root_file
                .as_deref()
                .map(|p| crate::root::read_optional_text(Path::new(p)).ok().flatten());
            let root_ready = !matches!(root, Some(None));
            if up(&cells_at) && up(&caddy_at) && root_ready {
                return Ok(root.flatten());
            }
            if start.elapsed() > ANSWER_LIMIT {
                let waiting = [
                    (!up(&cells_at)).then(|| format!("Cells at {cells_at}")),
                    (!up(&caddy_at)).then(|| format!("Caddy at {caddy_at}")),
                    (!root_ready).then(|| "Caddy's local CA".to_string()),
                ];
                let waiting: Vec<String> = waiting.into_iter().flatten().collect();
                return Err(self.fail(
                    step,
                    format!(
                        "no answer after {} s from {}",
                        ANSWER_LIMIT.as_secs(),
                        waiting.join(", ")
                    ),
                    "see `journalctl -u cells -u caddy`",
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Caddy's local root certificate (`tls internal`), in the caddy user's
/// data dir, as Debian's caddy.service runs it.
fn caddy_local_root() -> Option<String> {
    let home = nix::unistd::User::from_name("caddy").ok().flatten()?.dir;
    Some(format!(
        "{}/.local/share/caddy/pki/authorities/local/root.crt",
        home.display()
    ))
}

/// The service steps written files call for, kept on disk from the files
/// step until the services step ran them: a run that stopped in between
/// (say, `cells configure` failed) leaves them owed to the next run, which
/// may write nothing itself.
pub(super) mod owed {
    use crate::plan::Service;
    use crate::render::paths;
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    const NAMES: [(Service, &str); 4] = [
        (Service::SystemdDaemon, "daemon-reload"),
        (Service::Cells, "cells"),
        (Service::Caddy, "caddy"),
        (Service::Prometheus, "prometheus"),
    ];

    pub fn load() -> BTreeSet<Service> {
        let text = crate::root::read_optional_text(Path::new(paths::OWED_SERVICES))
            .ok()
            .flatten()
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| NAMES.iter().find(|(_, n)| *n == l.trim()).map(|(s, _)| *s))
            .collect()
    }

    /// Written in /etc/cellsctl (root's, checked by the apply), 0600, never through a link.
    pub fn save(owed: &BTreeSet<Service>) -> std::io::Result<()> {
        if owed.is_empty() {
            return Ok(());
        }
        let text: String = NAMES
            .iter()
            .filter(|(s, _)| owed.contains(s))
            .map(|(_, n)| format!("{n}\n"))
            .collect();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(paths::OWED_SERVICES)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    }

    pub fn clear() {
        let _ = std::fs::remove_file(paths::OWED_SERVICES);
    }
}
