//! What makes it pleasant in a terminal and in automation: help, completions,
//! the man page, JSON output, colour only where it belongs, -v/--quiet, and
//! --restart-services refused below another root.

use crate::common::*;
use sha2::Digest;

fn help(args: &[&str]) -> String {
    let out = cellsctl()
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn help_snapshots() {
    insta::assert_snapshot!("help", help(&["--help"]));
    insta::assert_snapshot!("help-init", help(&["init", "--help"]));
    insta::assert_snapshot!("help-regenerate", help(&["regenerate", "--help"]));
    insta::assert_snapshot!("help-hash-password", help(&["hash-password", "--help"]));
    let init = help(&["init", "--help"]);
    for heading in [
        "Site:",
        "TLS:",
        "Prometheus:",
        "Cells:",
        "Database:",
        "Output:",
        "Examples:",
    ] {
        assert!(init.contains(heading), "{heading} missing");
    }
    assert!(
        init.contains("[env: CELLSCTL_EXTERNAL_URL=]")
            && init.contains("[default: 127.0.0.1:8080]")
    );
}

#[test]
fn bash_sources_the_completions() {
    let Some(bash) = require_tool("bash", None) else {
        return;
    };
    let out = cellsctl()
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("cellsctl.bash");
    std::fs::write(&file, &out.stdout).expect("write");
    let check = std::process::Command::new(bash)
        .arg("-c")
        .arg(format!(
            "set -e; source '{}'; complete -p cellsctl",
            file.display()
        ))
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(stdout.contains("cellsctl"), "{stdout}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = cellsctl()
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(out.status.success() && out.stdout.len() > 200, "{shell}");
    }
}

#[test]
fn man_renders_the_page() {
    let Some(man) = require_tool("man", None) else {
        return;
    };
    let out = cellsctl().arg("man").output().expect("run");
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("cellsctl.1");
    std::fs::write(&file, &out.stdout).expect("write");
    let page = std::process::Command::new(man)
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man -l");
    let text = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.status.success(),
        "{}",
        String::from_utf8_lossy(&page.stderr)
    );
    for want in [
        "cellsctl",
        "INIT AND REGENERATE",
        "--external-url",
        "EXIT STATUS",
        "hash-password",
    ] {
        assert!(
            text.contains(want),
            "{want} missing from the man page:\n{text}"
        );
    }
}

#[test]
fn json_describes_what_was_written() {
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = run_ok(&mut d.cmd("init", &args));
    let doc: serde_json::Value =
        serde_json::from_str(&stdout).expect("JSON on stdout, nothing else");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["caddy_version"], "2.11.7");
    let files = doc["files"].as_array().expect("files");
    assert_eq!(files.len(), 13);
    for f in files {
        let path = f["path"].as_str().expect("path");
        let bytes = std::fs::read(d.path(path)).expect("written");
        assert_eq!(f["action"], "create", "{path}");
        // The hash of a file holding secrets would let anyone with the log
        // test guesses of the passwords offline: it is not told.
        let secret = ["install.yml", "ca.key", "cells.key"]
            .iter()
            .any(|name| path.ends_with(name));
        let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
        assert_eq!(
            f["sha256"].as_str(),
            (!secret).then_some(sha256.as_str()),
            "{path}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.path(path)).expect("meta").permissions(),
        ) & 0o7777;
        assert_eq!(
            f["mode"].as_str(),
            Some(format!("{mode:04o}").as_str()),
            "{path}"
        );
        assert_eq!(
            f["written_to"].as_str(),
            Some(d.path(path).display().to_string().as_str())
        );
    }
    let services: Vec<&str> = doc["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(
        services,
        [
            "systemctl daemon-reload",
            "systemctl restart cells",
            "systemctl reload caddy",
            "systemctl restart prometheus"
        ]
    );

    // A dry-run URL change: updates listed, unchanged ones too, nothing written.
    let stdout = run_ok(&mut d.cmd(
        "regenerate",
        &[
            "--external-url",
            "https://files.example.org",
            "--dry-run",
            "--json",
        ],
    ));
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(doc["dry_run"], true);
    let action = |p: &str| {
        doc["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["path"] == p)
            .map(|f| f["action"].clone())
    };
    assert_eq!(action("/etc/caddy/Caddyfile"), Some("update".into()));
    assert_eq!(
        action("/etc/prometheus/cellsctl.yml"),
        Some("unchanged".into())
    );
    assert!(d.read("/etc/caddy/Caddyfile").contains("cells.example.com"));
}

#[test]
fn no_escape_codes_in_pipes_or_with_no_color() {
    let d = init_tutorial("2.11.7");
    // Piped: plain.
    let stdout = run_ok(&mut d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org", "--dry-run"],
    ));
    assert!(stdout.contains("+https://files.example.org {"));
    assert!(!stdout.contains('\u{1b}'), "escape codes in a pipe");
    // On a terminal: coloured, unless NO_COLOR is set.
    let run_tty = |no_color: bool| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("cellsctl"));
        cmd.args([
            "regenerate",
            "--non-interactive",
            "--dry-run",
            "--external-url",
            "https://files.example.org",
            "--root",
        ])
        .arg(d.root());
        cmd.env("PATH", "/nonexistent")
            .env("TERM", "xterm")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE");
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("pty");
        p.exp_eof().expect("ends")
    };
    let coloured = run_tty(false);
    assert!(
        coloured.contains("\u{1b}[32m+https://files.example.org {"),
        "{coloured:?}"
    );
    let plain = run_tty(true);
    assert!(
        plain.contains("+https://files.example.org {") && !plain.contains('\u{1b}'),
        "{plain:?}"
    );
}

#[test]
fn verbose_says_each_step_and_quiet_says_nothing() {
    let d = Deployment::new();
    let args = tutorial_args(&d, "2.11.7");
    let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
    v.push("-v");
    let out = d.cmd("init", &v).output().expect("run");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for step in [
        "reading the saved state",
        "checking the private CA",
        "rendering for Caddy 2.11.7",
        "writing the files that changed",
    ] {
        assert!(err.contains(step), "{step} missing:\n{err}");
    }
    let out = d
        .cmd(
            "regenerate",
            &["--quiet", "--external-url", "https://files.example.org"],
        )
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{:?}", out);
    assert!(
        d.read("/etc/caddy/Caddyfile").contains("files.example.org"),
        "quiet still writes"
    );
}

/// A stand-in `systemctl` that records its arguments, one call a line.
fn fake_systemctl(dir: &std::path::Path) -> std::path::PathBuf {
    let log = dir.join("calls");
    let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\nexit 0\n", log.display());
    let bin = dir.join("systemctl");
    std::fs::write(&bin, script).expect("write");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    log
}

/// The services of this host run the files below `/`: restarting them
/// after writing below another root would restart them on the old files.
/// (The order of the restarts is proven under a real systemd.)
#[test]
fn restart_services_is_refused_below_another_root() {
    let bin = tempfile::tempdir().expect("bin");
    let log = fake_systemctl(bin.path());
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.push("--restart-services".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d
        .cmd("init", &args)
        .env("PATH", &path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--restart-services: only with --root /"),
        "{err}"
    );
    assert!(d.snapshot().is_empty(), "nothing written");
    assert!(!log.exists(), "no systemctl call");

    let d = init_tutorial("2.11.7");
    let before = d.snapshot();
    let out = d
        .cmd(
            "regenerate",
            &[
                "--external-url",
                "https://files.example.org",
                "--restart-services",
            ],
        )
        .env("PATH", &path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(d.snapshot(), before, "nothing written");
    assert!(!log.exists(), "no systemctl call");
}

/// `--provision` creates users, databases and services on this host: below
/// another root it is refused before anything is written or run.
#[test]
fn provision_is_refused_below_another_root() {
    let bin = tempfile::tempdir().expect("bin");
    let log = fake_systemctl(bin.path());
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.push("--provision".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d
        .cmd("init", &args)
        .env("PATH", &path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--provision: only with --root /"), "{err}");
    assert!(d.snapshot().is_empty(), "nothing written");
    assert!(!log.exists(), "no systemctl call");
}

/// Followed to the letter, the printed steps also turn on the certificate
/// renewal and the Caddy upgrade watcher that init wrote.
#[test]
fn next_steps_enable_renewal_and_the_upgrade_watcher() {
    let d = Deployment::new();
    let args = tutorial_args(&d, "2.11.7");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = run_ok(&mut d.cmd("init", &args));
    let steps = stdout.split("Next steps:").nth(1).expect("next steps");
    assert!(
        steps.contains("systemctl enable --now cellsctl-renew.timer cellsctl-caddy-upgrade.path"),
        "{steps}"
    );
    let watcher = d.read("/etc/systemd/system/cellsctl-caddy-upgrade.path");
    assert!(
        watcher.contains("PathChanged=/usr/bin/caddy\nUnit=cellsctl-renew.service"),
        "{watcher}"
    );
}
