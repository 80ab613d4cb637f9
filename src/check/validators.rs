//! The real tools as judges: every validator found on PATH (`caddy validate`
//! and `fmt`, `promtool check config`, `systemd-analyze verify`) runs on the
//! written files; the ones not found are reported as skipped.

use super::{finding, Finding, Status};
use crate::render::paths;
use crate::root::under_root;
use crate::state::State;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> Result<(bool, String), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// A tool on PATH, or a `skip` finding naming it.
fn on_path(tool: &str, check: &str) -> Result<PathBuf, Finding> {
    which::which(tool)
        .map_err(|_| finding(check, Status::Skipped, format!("{tool} not found on PATH")))
}

pub fn validators(root: &Path, state: &State) -> Vec<Finding> {
    let mut out = match on_path("caddy", "caddy validate") {
        Ok(caddy) => caddy_checks(&caddy, root, state),
        Err(skipped) => vec![skipped],
    };
    if state.answers.prometheus.is_some() {
        out.push(match on_path("promtool", "promtool check config") {
            Ok(promtool) => promtool_check(&promtool, root),
            Err(skipped) => skipped,
        });
    }
    match on_path("systemd-analyze", "systemd-analyze verify") {
        Ok(_) if root != Path::new("/") => out.push(finding(
            "systemd-analyze verify",
            Status::Skipped,
            "the units name the deployment's binaries; run `cellsctl check` on the server (root /)",
        )),
        Ok(analyze) => out.extend(unit_checks(&analyze, state.answers.cluster.is_some())),
        Err(skipped) => out.push(skipped),
    }
    out
}

/// The Caddyfile with deployment paths moved below `root`, in a temp dir.
fn caddyfile_for_validation(root: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let text = crate::root::read_optional_text(&under_root(root, paths::CADDYFILE))
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .ok_or_else(|| std::io::Error::from_raw_os_error(nix::libc::ENOENT))?;
    let text = if root == Path::new("/") {
        text
    } else {
        text.replace(" /etc/", &format!(" {}/etc/", root.display()))
    };
    let file = dir.join("Caddyfile");
    std::fs::write(&file, text)?;
    Ok(file)
}

/// The installed version against the rendered one, then validate and fmt.
fn caddy_checks(caddy: &Path, root: &Path, state: &State) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Ok((_, v)) = run(crate::ui::tool(caddy).arg("version")) {
        let installed = v
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_start_matches('v')
            .to_string();
        let rendered = state.answers.caddy_version.to_string();
        out.push(if installed == rendered {
            finding("caddy version", Status::Pass, format!("Caddy {installed} is what the Caddyfile was rendered for"))
        } else {
            finding("caddy version", Status::Warn, format!("Caddy on PATH is {installed}, the Caddyfile was rendered for {rendered}: run `cellsctl regenerate`"))
        });
    }
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            out.push(finding(
                "validators",
                Status::Fail,
                format!("no temp dir: {e}"),
            ));
            return out;
        }
    };
    match caddyfile_for_validation(root, tmp.path()) {
        Err(e) => out.push(finding(
            "caddy validate",
            Status::Fail,
            format!("cannot read the Caddyfile: {e}"),
        )),
        Ok(file) => {
            out.push(caddy_validate(caddy, &file, tmp.path()));
            out.push(caddy_fmt(caddy, &file));
        }
    }
    out
}

fn caddy_validate(caddy: &Path, file: &Path, scratch: &Path) -> Finding {
    let validate = run(crate::ui::tool(caddy)
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(file)
        .env("XDG_DATA_HOME", scratch)
        .env("XDG_CONFIG_HOME", scratch));
    match validate {
        Ok((true, text)) => {
            let warnings: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("\"level\":\"warn"))
                .collect();
            if warnings.is_empty() {
                finding("caddy validate", Status::Pass, "valid, no warnings")
            } else {
                finding("caddy validate", Status::Warn, warnings.join("\n"))
            }
        }
        Ok((false, text)) => finding("caddy validate", Status::Fail, text.trim().to_string()),
        Err(e) => finding("caddy validate", Status::Fail, e),
    }
}

fn caddy_fmt(caddy: &Path, file: &Path) -> Finding {
    let formatted = crate::ui::tool(caddy).arg("fmt").arg(file).output();
    let original = std::fs::read(file).unwrap_or_default();
    match formatted {
        Ok(f) if f.status.success() && f.stdout == original => {
            finding("caddy fmt", Status::Pass, "formatted")
        }
        Ok(_) => finding(
            "caddy fmt",
            Status::Warn,
            "`caddy fmt` would change the Caddyfile",
        ),
        Err(e) => finding("caddy fmt", Status::Fail, e.to_string()),
    }
}

fn promtool_check(promtool: &Path, root: &Path) -> Finding {
    let file = under_root(root, paths::PROMETHEUS_CONFIG);
    match run(crate::ui::tool(promtool)
        .args(["check", "config"])
        .arg(file))
    {
        Ok((true, _)) => finding("promtool check config", Status::Pass, "valid"),
        Ok((false, text)) => finding(
            "promtool check config",
            Status::Fail,
            text.trim().to_string(),
        ),
        Err(e) => finding("promtool check config", Status::Fail, e),
    }
}

/// The units written here (in cluster mode cells.service is on the nodes).
fn unit_checks(analyze: &Path, cluster: bool) -> Vec<Finding> {
    [
        paths::CELLS_UNIT,
        paths::RENEW_SERVICE,
        paths::RENEW_TIMER,
        paths::UPGRADE_PATH,
    ]
    .into_iter()
    .filter(|u| !(cluster && *u == paths::CELLS_UNIT))
    .map(|unit| {
        let (ok, text) =
            run(crate::ui::tool(analyze).arg("verify").arg(unit)).unwrap_or((false, String::new()));
        let unknown = text.lines().any(|l| l.contains("Unknown"));
        let check = format!("systemd-analyze verify {unit}");
        match (ok, unknown) {
            (true, false) => finding(check, Status::Pass, "valid"),
            _ => finding(check, Status::Fail, text.trim().to_string()),
        }
    })
    .collect()
}
