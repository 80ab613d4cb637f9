//! `cellsctl check` on a rendered deployment, with the real validators.

use crate::common::*;

fn check(d: &Deployment, extra: &[&str], path: &str) -> (Option<i32>, String) {
    let out = cellsctl()
        .arg("check")
        .arg("--root")
        .arg(d.root())
        .args(extra)
        .env("PATH", path)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// PATH with the real tools (Debian's caddy 2.6.2, promtool, systemd-analyze).
const TOOLS: &str = "/usr/local/bin:/usr/bin:/bin";

#[test]
fn a_fresh_deployment_passes() {
    if caddy_binaries().is_empty() || require_tool("promtool", None).is_none() {
        return;
    }
    let d = init_tutorial("2.6.2");
    let (code, out) = check(&d, &[], TOOLS);
    assert_eq!(code, Some(0), "{out}");
    for want in [
        "ok    drift",
        "ok    chain",
        "ok    names",
        "ok    permissions",
        "ok    caddy validate: valid, no warnings",
        "ok    caddy fmt",
        "ok    promtool check config",
        "WARN  prometheus reach: ",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn drift_is_exit_3_with_a_diff() {
    let d = init_tutorial("2.6.2");
    let path = d.path("/etc/caddy/Caddyfile");
    let edited = std::fs::read_to_string(&path)
        .expect("read")
        .replace("tls tls@example.com", "tls me@example.com");
    std::fs::write(&path, edited).expect("edit");
    let (code, out) = check(&d, &[], TOOLS);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("FAIL  drift /etc/caddy/Caddyfile")
            && out.contains("-\ttls me@example.com")
            && out.contains("+\ttls tls@example.com"),
        "{out}"
    );
}

#[test]
fn a_loose_key_is_reported() {
    let d = init_tutorial("2.6.2");
    std::fs::set_permissions(
        d.path("/etc/cellsctl/pki/ca.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    let (code, out) = check(&d, &[], TOOLS);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL  permissions /etc/cellsctl/pki/ca.key: mode 0644"),
        "{out}"
    );
}

#[test]
fn missing_validators_are_named_and_json_is_parseable() {
    let d = init_tutorial("2.11.7");
    let (code, out) = check(&d, &["--json"], "/nonexistent");
    assert_eq!(code, Some(0), "{out}");
    let findings: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let skipped: Vec<&str> = findings
        .as_array()
        .expect("array")
        .iter()
        .filter(|f| f["status"] == "skipped")
        .filter_map(|f| f["check"].as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "caddy validate",
            "promtool check config",
            "systemd-analyze verify"
        ]
    );
}

#[test]
fn a_caddy_upgrade_is_noticed() {
    if caddy_binaries().is_empty() {
        return;
    }
    // Rendered for 2.11.7, but this PATH has Debian's 2.6.2.
    let d = init_tutorial("2.11.7");
    let (code, out) = check(&d, &[], TOOLS);
    assert!(
        out.contains(
            "WARN  caddy version: Caddy on PATH is 2.6.2, the Caddyfile was rendered for 2.11.7"
        ),
        "{out}"
    );
    assert_eq!(code, Some(1), "2.6.2 rejects the 2.11.7 Caddyfile:\n{out}");
}

#[test]
fn a_password_changed_in_install_yml_is_a_warning_like_regenerate_sees_it() {
    let d = init_tutorial("2.11.7");
    let path = d.path("/etc/cells/install.yml");
    let edited = std::fs::read_to_string(&path).expect("read").replace(
        "dbtcppassword: 'db-S3cret''\"#:'",
        "dbtcppassword: changed-by-hand",
    );
    assert!(edited.contains("changed-by-hand"));
    std::fs::write(&path, edited).expect("edit");
    let (code, out) = check(&d, &[], "/nonexistent");
    assert!(
        out.contains("WARN  drift /etc/cells/install.yml: secret values were edited by hand"),
        "{out}"
    );
    assert!(
        !out.contains("changed-by-hand"),
        "the secret is not shown:\n{out}"
    );
    assert_eq!(code, Some(0), "{out}");
    // regenerate agrees: it keeps the new password, and then check is clean.
    run_ok(&mut d.cmd("regenerate", &[]));
    let (code, out) = check(&d, &[], "/nonexistent");
    assert_eq!(code, Some(0));
    assert!(out.contains("ok    drift"), "{out}");
}

/// `--public-tls custom` with certificate files that are not there yet: the
/// render goes ahead with a warning (no new exit code for scripts), and
/// `check` fails until a usable pair covering the host is in place.
#[test]
fn a_custom_certificate_is_warned_about_then_checked() {
    let d = Deployment::new();
    open_up(d.root());
    let args = [
        "--external-url",
        "https://cells.example.com",
        "--public-tls",
        "custom",
        "--public-cert",
        "/certs/cells.pem",
        "--public-key",
        "/certs/cells.key",
        "--caddy-version",
        "2.11.7",
    ];
    let stdout = run_ok(with_secrets(&mut d.cmd("init", &args)));
    assert!(
        stdout.contains("Note: Caddy cannot serve the custom certificate yet")
            && stdout.contains("cells.pem: No such file"),
        "{stdout}"
    );
    let (code, out) = check(&d, &[], "/nonexistent");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  public certificate:"), "{out}");

    // A pair for another host: still a failure, saying which names it has.
    std::fs::create_dir_all(d.path("/certs")).expect("mkdir");
    let issue = |host: &str| {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![host.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        std::fs::write(d.path("/certs/cells.pem"), cert.pem()).expect("write");
        std::fs::write(d.path("/certs/cells.key"), key.serialize_pem()).expect("write");
    };
    issue("files.example.org");
    let (code, out) = check(&d, &[], "/nonexistent");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("does not cover cells.example.com (it names files.example.org)"),
        "{out}"
    );

    issue("cells.example.com");
    let (code, out) = check(&d, &[], "/nonexistent");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok    public certificate:"), "{out}");
    let stdout = run_ok(&mut d.cmd("regenerate", &[]));
    assert!(!stdout.contains("custom certificate"), "{stdout}");
}
