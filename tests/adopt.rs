//! `cellsctl adopt` on servers set up by hand from Pydio's Caddy v2
//! tutorial, with the real `caddy adapt` of each Caddy release reading the
//! Caddyfile: the answers saved, the backup kept, what cannot be carried
//! refused, and `regenerate` working afterwards.

use crate::common::*;

/// The tutorial's simple Caddyfile, as printed there.
const SIMPLE: &str = include_str!("fixtures/tutorial-simple.Caddyfile");

/// The tutorial's Caddyfile with Prometheus and `basicauth`, as printed there.
const WITH_PROMETHEUS: &str = include_str!("fixtures/tutorial-prometheus.Caddyfile");

/// A root holding a hand-made set-up, and a PATH whose only `caddy` is this one.
fn hand_made(caddyfile: &str, caddy: &std::path::Path) -> (Deployment, tempfile::TempDir) {
    let d = Deployment::new();
    std::fs::create_dir_all(d.path("/etc/caddy")).expect("mkdir");
    std::fs::write(d.path("/etc/caddy/Caddyfile"), caddyfile).expect("write");
    let bin = tempfile::tempdir().expect("bin");
    std::os::unix::fs::symlink(caddy, bin.path().join("caddy")).expect("symlink");
    (d, bin)
}

fn adopt(d: &Deployment, bin: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    d.cmd("adopt", args)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .output()
        .expect("run adopt")
}

/// `adopt` that succeeds: its stdout.
fn adopt_ok(d: &Deployment, bin: &tempfile::TempDir, args: &[&str], what: &str) -> String {
    let out = adopt(d, bin, args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn state(d: &Deployment) -> serde_yaml::Value {
    serde_yaml::from_str(&d.read("/etc/cellsctl/cellsctl.yaml")).expect("state parses")
}

fn backups(d: &Deployment) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(d.path("/etc/caddy"))
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("Caddyfile.cellsctl-bak."))
        .collect()
}

#[test]
fn the_tutorials_caddyfiles_are_adopted() {
    for (version, caddy) in caddy_binaries() {
        // The simple one, no cells.service: the bind comes from the dial address.
        let (d, bin) = hand_made(SIMPLE, &caddy);
        let stdout = adopt_ok(&d, &bin, &[], &format!("Caddy {version}"));
        let s = state(&d);
        let a = &s["answers"];
        assert_eq!(
            a["external_url"].as_str(),
            Some("https://cells.example.com"),
            "{version}"
        );
        assert_eq!(a["public_tls"]["mode"].as_str(), Some("acme"));
        assert_eq!(a["public_tls"]["email"].as_str(), Some("tls@example.com"));
        assert_eq!(a["upstream_tls"].as_str(), Some("skip-verify"));
        assert_eq!(a["bind"].as_str(), Some("127.0.0.1:8080"));
        assert!(a["prometheus"].is_null());
        assert!(
            s["files"]["/etc/cells/install.yml"].is_mapping(),
            "install.yml recorded as used"
        );
        assert!(!d.path("/etc/cells/install.yml").exists());
        let b = backups(&d);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(std::fs::read_to_string(&b[0]).expect("backup"), SIMPLE);
        assert!(
            stdout.contains("--external-url") && stdout.contains("<- /etc/caddy/Caddyfile"),
            "{stdout}"
        );
        assert_validates_without_warnings(&d, &caddy, version);
        // From now on it is a managed root.
        let out = d
            .cmd(
                "regenerate",
                &["--external-url", "https://files.example.org"],
            )
            .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
            .output()
            .expect("regenerate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(d
            .read("/etc/caddy/Caddyfile")
            .contains("https://files.example.org {"));
        assert_eq!(
            adopt(&d, &bin, &[]).status.code(),
            Some(2),
            "already managed"
        );

        // With Prometheus and basicauth, and a cells.service naming the real bind.
        let (d, bin) = hand_made(WITH_PROMETHEUS, &caddy);
        std::fs::create_dir_all(d.path("/etc/systemd/system")).expect("mkdir");
        std::fs::write(
            d.path("/etc/systemd/system/cells.service"),
            "[Unit]\nDescription=Pydio Cells\n[Service]\nUser=pydio\nGroup=pydio\nWorkingDirectory=/home/pydio\nExecStart=/opt/pydio/bin/cells start\nEnvironment=CELLS_WORKING_DIR=/var/cells\nEnvironment=CELLS_SITE_BIND=0.0.0.0:8080\n[Install]\nWantedBy=multi-user.target\n",
        )
        .expect("write unit");
        let stdout = adopt_ok(&d, &bin, &[], &format!("Caddy {version}"));
        let s = state(&d);
        let a = &s["answers"];
        assert_eq!(a["bind"].as_str(), Some("0.0.0.0:8080"), "{version}");
        assert_eq!(a["cells"]["working_dir"].as_str(), Some("/var/cells"));
        assert_eq!(a["prometheus"]["user"].as_str(), Some("sysadminUser"));
        assert_eq!(a["prometheus"]["path"].as_str(), Some("/prometheus"));
        let hash = a["prometheus"]["password_hash"].as_str().expect("hash");
        assert!(hash.starts_with("$2a$14$"), "{hash}");
        assert!(
            stdout.contains(
                "Prometheus will listen on 127.0.0.1:9090 only; today it listens on all addresses"
            ),
            "{stdout}"
        );
        assert!(d.read("/etc/caddy/Caddyfile").contains(hash));
        assert_eq!(backups(&d).len(), 1);
        assert!(
            std::fs::read_dir(d.path("/etc/systemd/system"))
                .expect("dir")
                .flatten()
                .any(|e| e
                    .file_name()
                    .to_string_lossy()
                    .starts_with("cells.service.cellsctl-bak.")),
            "the hand-made unit is kept as a backup"
        );
        assert_validates_without_warnings(&d, &caddy, version);
    }
}

#[test]
fn what_cellsctl_would_drop_is_refused_then_named() {
    let Some((version, caddy)) = caddy_binaries().into_iter().next() else {
        return;
    };
    let extra = SIMPLE.replace(
        "  tls tls@example.com\n",
        "  tls tls@example.com\n  header X-Frame-Options DENY\n  log {\n    output stdout\n  }\n",
    ) + "\nother.example.com {\n  respond \"hi\"\n}\n";
    let (d, bin) = hand_made(&extra, &caddy);
    let before = d.snapshot();
    let out = adopt(&d, &bin, &[]);
    assert_eq!(out.status.code(), Some(3), "Caddy {version}");
    let err = String::from_utf8_lossy(&out.stderr);
    for item in ["other.example.com", "header", "log"] {
        assert!(err.contains(item), "{item} named:\n{err}");
    }
    assert_eq!(d.snapshot(), before, "nothing written");
    let out = adopt(&d, &bin, &["--force"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Dropped (--force"), "{stdout}");
    for item in ["other.example.com", "header", "log"] {
        assert!(stdout.contains(item), "{item} named again:\n{stdout}");
    }
    assert_eq!(
        std::fs::read_to_string(&backups(&d)[0]).expect("backup"),
        extra
    );
}

#[test]
fn a_dry_run_says_what_it_read_and_writes_nothing() {
    let Some((_, caddy)) = caddy_binaries().into_iter().next() else {
        return;
    };
    let (d, bin) = hand_made(WITH_PROMETHEUS, &caddy);
    let before = d.snapshot();
    let out = adopt(&d, &bin, &["--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Read from this server:")
            && stdout.contains("--prometheus-user")
            && stdout.contains("sysadminUser"),
        "{stdout}"
    );
    assert!(stdout.contains("What changes:"), "{stdout}");
    assert_eq!(d.snapshot(), before, "nothing written");
}

/// A flag wins over what was read, even where the read value could not be
/// taken (a host name where cellsctl needs an address); a Caddyfile that
/// is a symbolic link is refused, not replaced.
#[test]
fn flags_win_and_a_linked_caddyfile_is_refused() {
    let Some((_, caddy)) = caddy_binaries().into_iter().next() else {
        return;
    };
    let by_name = SIMPLE.replace("localhost:8080", "cells-backend.lan:8080");
    let (d, bin) = hand_made(&by_name, &caddy);
    let out = adopt(&d, &bin, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a host name is not a bind address"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bind"));
    let out = adopt(&d, &bin, &["--bind", "10.0.0.2:8080"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&d)["answers"]["bind"].as_str(), Some("10.0.0.2:8080"));

    let (d, bin) = hand_made(SIMPLE, &caddy);
    let real = d.path("/etc/caddy/Caddyfile.real");
    std::fs::rename(d.path("/etc/caddy/Caddyfile"), &real).expect("move");
    std::os::unix::fs::symlink(&real, d.path("/etc/caddy/Caddyfile")).expect("link");
    let before = d.snapshot();
    let out = adopt(&d, &bin, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a symbolic link"));
    assert_eq!(d.snapshot(), before, "nothing written");
}
