//! Changing the URL updates exactly the places that carry it; a second
//! identical run writes nothing.

use crate::common::*;

#[test]
fn url_change_updates_exactly_the_url_places() {
    let d = init_tutorial("2.11.7");
    let before = d.snapshot();
    let stdout = run_ok(&mut d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org"],
    ));
    let after = d.snapshot();

    let changed: Vec<String> = after
        .iter()
        .filter(|(p, bytes)| before.get(*p) != Some(bytes))
        .map(|(p, _)| {
            p.strip_prefix(d.root())
                .expect("below root")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        changed,
        vec![
            "etc/caddy/Caddyfile",
            "etc/cells/install.yml",
            "etc/cells/tls/cells.crt",
            "etc/cells/tls/cells.key",
            "etc/cellsctl/cellsctl.yaml",
            "etc/systemd/system/cells.service",
            "etc/systemd/system/prometheus.service.d/cellsctl.conf",
        ],
        "stdout:\n{stdout}"
    );
    assert_eq!(before.len(), after.len(), "no file appeared or vanished");

    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(
        caddyfile.contains("\nhttps://files.example.org {\n")
            && !caddyfile.contains("cells.example.com")
    );
    let unit = d.read("/etc/systemd/system/cells.service");
    assert!(
        unit.contains("Environment=CELLS_SITE_EXTERNAL=https://files.example.org\n"),
        "{unit}"
    );
    assert!(!unit.contains("cells.example.com"));
    let install: serde_yaml::Value =
        serde_yaml::from_str(&d.read("/etc/cells/install.yml")).expect("parses");
    assert_eq!(
        install["proxyconfig"]["reverseproxyurl"].as_str(),
        Some("https://files.example.org")
    );
    assert_eq!(
        install["frontendpassword"].as_str(),
        Some(ADMIN_PASSWORD),
        "secrets kept without being given again"
    );
    assert_eq!(install["dbtcppassword"].as_str(), Some(DB_PASSWORD));
    let dropin = d.read("/etc/systemd/system/prometheus.service.d/cellsctl.conf");
    assert!(
        dropin.contains("--web.external-url=https://files.example.org/prometheus "),
        "{dropin}"
    );

    // The leaf now names the new host; the CA is the same.
    let Some(openssl) = require_tool("openssl", None) else {
        return;
    };
    let out = std::process::Command::new(&openssl)
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(d.path("/etc/cells/tls/cells.crt"))
        .output()
        .expect("openssl");
    let sans = String::from_utf8_lossy(&out.stdout);
    assert!(
        sans.contains("DNS:files.example.org") && !sans.contains("cells.example.com"),
        "{sans}"
    );
    assert_cells_pki_consistent(&d);

    // What to restart, in order.
    let expected = "systemctl daemon-reload\n     systemctl restart cells\n     systemctl reload caddy\n     systemctl restart prometheus";
    assert!(stdout.contains(expected), "{stdout}");
}

#[test]
fn second_identical_regenerate_writes_nothing() {
    let d = init_tutorial("2.11.7");
    run_ok(&mut d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org"],
    ));
    let before = d.snapshot();
    let mtimes = d.mtimes();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let stdout = run_ok(&mut d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org"],
    ));
    assert_eq!(d.snapshot(), before);
    assert_eq!(d.mtimes(), mtimes, "no file rewritten");
    assert!(stdout.contains("Nothing to change."), "{stdout}");
    assert!(
        !stdout.contains("systemctl restart"),
        "nothing to restart: {stdout}"
    );
}

#[test]
fn init_on_an_existing_state_keeps_answers_and_keys() {
    let d = init_tutorial("2.11.7");
    let ca = d.read("/etc/cellsctl/pki/ca.key");
    // Only the URL given: everything else comes from the saved state.
    run_ok(&mut d.cmd("init", &["--external-url", "https://files.example.org"]));
    assert_eq!(d.read("/etc/cellsctl/pki/ca.key"), ca, "CA kept");
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(
        caddyfile.contains("sysadminUser") && caddyfile.contains("tls tls@example.com"),
        "{caddyfile}"
    );
}

#[test]
fn deleted_install_yml_is_not_recreated() {
    let d = init_tutorial("2.11.7");
    std::fs::remove_file(d.path("/etc/cells/install.yml")).expect("rm");
    let stdout = run_ok(&mut d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org"],
    ));
    assert!(!d.path("/etc/cells/install.yml").exists());
    assert!(stdout.contains("not re-created"), "{stdout}");
    // And again: the state still remembers it was consumed.
    run_ok(&mut d.cmd("regenerate", &[]));
    assert!(!d.path("/etc/cells/install.yml").exists());
}

#[test]
fn turning_prometheus_off_removes_its_files() {
    let d = init_tutorial("2.11.7");
    let stdout = run_ok(&mut d.cmd("regenerate", &["--no-prometheus"]));
    assert!(!d.path("/etc/prometheus/cellsctl.yml").exists(), "{stdout}");
    assert!(!d
        .path("/etc/systemd/system/prometheus.service.d/cellsctl.conf")
        .exists());
    assert!(!d.read("/etc/caddy/Caddyfile").contains("prometheus"));
    assert!(!d
        .read("/etc/systemd/system/cells.service")
        .contains("CELLS_ENABLE_METRICS"));
    assert!(stdout.contains("systemctl restart prometheus"), "{stdout}");
}

#[test]
fn caddy_version_is_detected_and_followed() {
    let d = init_tutorial("2.11.7");
    let bin = tempfile::tempdir().expect("bin dir");
    let fake = bin.path().join("caddy");
    let write_fake = |version: &str| {
        std::fs::write(&fake, format!("#!/bin/sh\necho '{version} h1:stand-in'\n")).expect("write");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    };
    let path = format!("{}:/usr/bin:/bin", bin.path().display());

    // No version given and no caddy on PATH: refuse, say what to do.
    let d2 = Deployment::new();
    let out = d2
        .cmd(
            "init",
            &[
                "--external-url",
                "https://cells.example.com",
                "--admin-password-file",
                &d2.secret_file("admin"),
                "--db-password-file",
                &d2.secret_file("db"),
            ],
        )
        .env("PATH", bin.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("install Caddy first, or pass --caddy-version"),
        "{err}"
    );

    // Detected from PATH.
    write_fake("v2.6.2");
    let d3 = Deployment::new();
    let stdout = run_ok(
        d3.cmd(
            "init",
            &[
                "--external-url",
                "https://cells.example.com",
                "--admin-password-file",
                &d3.secret_file("admin"),
                "--db-password-file",
                &d3.secret_file("db"),
            ],
        )
        .env("PATH", &path),
    );
    assert!(
        stdout.contains("Rendering for Caddy 2.6.2 (detected from"),
        "{stdout}"
    );
    assert!(d3
        .read("/etc/caddy/Caddyfile")
        .contains("tls_trusted_ca_certs"));
    // After an upgrade the binary changed: re-detected, re-rendered, said.
    write_fake("v2.11.7   ");
    let stdout = run_ok(d3.cmd("regenerate", &[]).env("PATH", &path));
    assert!(
        stdout.contains("Caddy changed from 2.6.2 to 2.11.7"),
        "{stdout}"
    );
    assert!(d3
        .read("/etc/caddy/Caddyfile")
        .contains("tls_trust_pool file"));
    // A pinned version is kept, but a different Caddy on PATH is said.
    let d4 = Deployment::new();
    let stdout = run_ok(
        d4.cmd(
            "init",
            &[
                "--external-url",
                "https://cells.example.com",
                "--caddy-version",
                "2.6.2",
                "--admin-password-file",
                &d4.secret_file("admin"),
                "--db-password-file",
                &d4.secret_file("db"),
            ],
        )
        .env("PATH", &path),
    );
    assert!(
        stdout.contains("Rendering for Caddy 2.6.2 (from --caddy-version)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("is 2.11.7, but this renders for 2.6.2"),
        "{stdout}"
    );
    drop(d);
}

#[test]
fn dry_run_into_a_missing_root_creates_nothing() {
    let d = Deployment::new();
    let missing = d.root().join("not-yet");
    let args = tutorial_args(&d, "2.11.7");
    let stdout = run_ok(
        cellsctl()
            .arg("init")
            .arg("--root")
            .arg(&missing)
            .arg("--dry-run")
            .args(&args),
    );
    assert!(
        stdout.contains("Plan (dry run, nothing written)"),
        "{stdout}"
    );
    assert!(!missing.exists());
}

#[test]
fn two_fresh_inits_give_the_same_files() {
    let render = || {
        let d = Deployment::new();
        let mut cmd = d.cmd(
            "init",
            &[
                "--external-url",
                "https://cells.example.com",
                "--prometheus",
                "--prometheus-user",
                "ops",
                "--bcrypt-cost",
                "4",
                "--caddy-version",
                "2.11.7",
            ],
        );
        run_ok(with_secrets(&mut cmd));
        d
    };
    let (a, b) = (render(), render());
    let (fa, fb) = (masked_files(&a), masked_files(&b));
    assert_eq!(
        fa.len(),
        12,
        "{:?}",
        fa.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert_eq!(fa, fb);
    // The bcrypt hashes differ (random salt) but both verify the password.
    for d in [&a, &b] {
        let caddyfile = d.read("/etc/caddy/Caddyfile");
        let hash = caddyfile
            .lines()
            .find_map(|l| l.trim().strip_prefix("ops "))
            .expect("auth line");
        assert!(bcrypt::verify(PROM_PASSWORD, hash).expect("bcrypt"));
    }
}
