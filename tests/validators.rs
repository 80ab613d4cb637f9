//! The real tools as oracles: caddy validate/fmt (2.6.2 and 2.11.7) across
//! the option combinations, promtool, systemd-analyze verify, openssl verify.

use crate::common::*;
use std::process::Command;

struct Combo {
    public_tls: &'static str,
    upstream_tls: &'static str,
    prometheus: bool,
}

fn combos() -> Vec<Combo> {
    let mut out = Vec::new();
    for public_tls in ["acme", "internal", "custom", "off"] {
        for upstream_tls in ["ca", "skip-verify"] {
            for prometheus in [true, false] {
                out.push(Combo {
                    public_tls,
                    upstream_tls,
                    prometheus,
                });
            }
        }
    }
    out
}

/// Renders one combination for one Caddy version; returns the deployment and the custom cert dir.
fn render_combo(c: &Combo, version: &str) -> Deployment {
    let d = Deployment::new();
    let url = if c.public_tls == "off" {
        "http://cells.example.com"
    } else {
        "https://cells.example.com"
    };
    let mut args: Vec<String> = vec![
        "--external-url".into(),
        url.into(),
        "--bind".into(),
        "0.0.0.0:8080".into(),
        "--public-tls".into(),
        c.public_tls.into(),
        "--upstream-tls".into(),
        c.upstream_tls.into(),
        "--caddy-version".into(),
        version.into(),
        "--admin-password-file".into(),
        d.secret_file("admin"),
        "--db-password-file".into(),
        d.secret_file("db"),
    ];
    if c.public_tls == "acme" {
        args.extend(["--acme-email".into(), "tls@example.com".into()]);
    }
    if c.public_tls == "custom" {
        args.extend([
            "--public-cert".into(),
            "/etc/ssl/cells/fullchain.pem".into(),
            "--public-key".into(),
            "/etc/ssl/cells/privkey.pem".into(),
        ]);
    }
    if c.prometheus {
        args.extend([
            "--prometheus".into(),
            "--prometheus-user".into(),
            "sysadminUser".into(),
            "--prometheus-password-hash".into(),
            PROM_HASH.into(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut d.cmd("init", &args));
    d
}

/// A self-signed certificate for the custom public TLS mode, below the root.
fn make_custom_cert(d: &Deployment, openssl: &std::path::Path) {
    let dir = d.path("/etc/ssl/cells");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let status = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=cells.example.com",
        ])
        .arg("-keyout")
        .arg(dir.join("privkey.pem"))
        .arg("-out")
        .arg(dir.join("fullchain.pem"))
        .output()
        .expect("openssl req");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[test]
fn caddy_validates_every_combination_without_warnings() {
    let caddies = caddy_binaries();
    let Some(openssl) = require_tool("openssl", None) else {
        return;
    };
    let mut checked = 0;
    for (version, caddy) in &caddies {
        for c in combos() {
            let d = render_combo(&c, version);
            let what = format!(
                "Caddy {version}, public-tls {}, upstream-tls {}, prometheus {}",
                c.public_tls, c.upstream_tls, c.prometheus
            );
            if c.public_tls == "custom" {
                make_custom_cert(&d, &openssl);
            }
            let text = caddyfile_below_root(&d).replace(
                " /etc/ssl/cells/",
                &format!(" {}/etc/ssl/cells/", d.root().display()),
            );
            let file = d.root().join("Caddyfile.test");
            std::fs::write(&file, &text).expect("write");
            let xdg = tempfile::tempdir().expect("xdg");
            let out = Command::new(caddy)
                .args(["validate", "--adapter", "caddyfile", "--config"])
                .arg(&file)
                .env("XDG_DATA_HOME", xdg.path())
                .env("XDG_CONFIG_HOME", xdg.path())
                .env("HOME", xdg.path())
                .output()
                .expect("caddy validate");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{what}: caddy validate failed:\n{stderr}\n{text}"
            );
            let warnings: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("\"level\":\"warn") || l.contains("\"level\":\"error"))
                .collect();
            if c.public_tls == "off" {
                // Caddy itself warns about a plain-HTTP site (the README says so); nothing else.
                assert!(
                    warnings
                        .iter()
                        .all(|w| w.contains("HTTP port") || w.contains("automatic HTTPS")),
                    "{what}: unexpected warnings:\n{}",
                    warnings.join("\n")
                );
            } else if c.public_tls == "custom" {
                // Caddy 2.6 warns when the admin's own certificate names no OCSP
                // responder (a property of that certificate; the README says so).
                assert!(
                    warnings
                        .iter()
                        .all(|w| w.contains("\"msg\":\"stapling OCSP\"") && *version == "2.6.2"),
                    "{what}: unexpected warnings:\n{}",
                    warnings.join("\n")
                );
            } else {
                assert!(
                    warnings.is_empty(),
                    "{what}: warnings:\n{}\n{text}",
                    warnings.join("\n")
                );
            }
            // caddy fmt would change nothing (2.6.2's --diff always exits 0: compare output).
            let fmt = Command::new(caddy)
                .arg("fmt")
                .arg(&file)
                .output()
                .expect("caddy fmt");
            assert!(fmt.status.success(), "{what}: caddy fmt failed");
            assert_eq!(
                String::from_utf8_lossy(&fmt.stdout),
                text,
                "{what}: not caddy-fmt clean"
            );
            checked += 1;
        }
    }
    eprintln!("caddy validate + fmt: {checked} Caddyfiles");
}

#[test]
fn caddy_adapt_shows_the_intended_routes() {
    for (version, caddy) in caddy_binaries() {
        let d = init_tutorial(version);
        let json = caddy_adapt(&caddy, &d);
        // One site, the Prometheus matcher exact, basic auth with our user and hash,
        // HTTP/2-capable TLS transport to Cells (never forced to HTTP/1.1).
        assert!(
            json.contains(r#""host":["cells.example.com"]"#),
            "{version}: {json}"
        );
        assert!(
            json.contains(r#""path":["/prometheus","/prometheus/*"]"#),
            "{version}: {json}"
        );
        assert!(
            json.contains(r#""username":"sysadminUser""#),
            "{version}: {json}"
        );
        assert!(json.contains(PROM_HASH), "{version}: hash missing");
        assert!(
            json.contains(r#""dial":"127.0.0.1:8080""#),
            "{version}: {json}"
        );
        assert!(
            json.contains(r#""dial":"127.0.0.1:9090""#),
            "{version}: {json}"
        );
        assert!(
            !json.contains(r#""versions""#),
            "{version}: HTTP versions must not be forced"
        );
        assert!(
            !json.contains("insecure_skip_verify"),
            "{version}: ca mode verifies Cells"
        );
        assert!(json.contains("ca.crt"), "{version}: trusts the cellsctl CA");
        let keeps_host = json.contains(r#""Host":["{http.request.hostport}"]"#);
        assert_eq!(
            keeps_host,
            version == "2.11.7",
            "{version}: header_up Host only on 2.11+"
        );
    }
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    let Some(promtool) = require_tool("promtool", None) else {
        return;
    };
    let d = init_tutorial("2.11.7");
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(d.path("/etc/prometheus/cellsctl.yml"))
        .output()
        .expect("promtool");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check config failed:\n{all}");
    assert!(all.contains("SUCCESS"), "{all}");
}

#[test]
fn systemd_analyze_verifies_the_units() {
    let Some(analyze) = require_tool("systemd-analyze", None) else {
        return;
    };
    let d = init_tutorial("2.11.7");
    let units = tempfile::tempdir().expect("units dir");

    // cells.service, with the Cells binary replaced by a stand-in executable.
    let stand_in = units.path().join("cells-stand-in");
    std::fs::write(&stand_in, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let unit = d
        .read("/etc/systemd/system/cells.service")
        .replace("/opt/pydio/bin/cells", &stand_in.display().to_string());
    let unit_path = units.path().join("cells.service");
    std::fs::write(&unit_path, unit).expect("write");

    // Debian's prometheus.service with our drop-in beside it.
    let prom_unit = std::fs::read_to_string("/lib/systemd/system/prometheus.service")
        .expect("Debian's prometheus.service (apt-get install prometheus)");
    let prom_path = units.path().join("prometheus.service");
    std::fs::write(&prom_path, prom_unit).expect("write");
    std::fs::create_dir_all(units.path().join("prometheus.service.d")).expect("mkdir");
    std::fs::copy(
        d.path("/etc/systemd/system/prometheus.service.d/cellsctl.conf"),
        units.path().join("prometheus.service.d/cellsctl.conf"),
    )
    .expect("copy drop-in");

    // The renewal timer and its service, with cellsctl replaced by the stand-in.
    let renew = d
        .read("/etc/systemd/system/cellsctl-renew.service")
        .replace("/usr/bin/cellsctl", &stand_in.display().to_string());
    let renew_path = units.path().join("cellsctl-renew.service");
    std::fs::write(&renew_path, renew).expect("write");
    let timer_path = units.path().join("cellsctl-renew.timer");
    std::fs::write(
        &timer_path,
        d.read("/etc/systemd/system/cellsctl-renew.timer"),
    )
    .expect("write");
    let watcher_path = units.path().join("cellsctl-caddy-upgrade.path");
    std::fs::write(
        &watcher_path,
        d.read("/etc/systemd/system/cellsctl-caddy-upgrade.path"),
    )
    .expect("write");

    for unit in [
        &unit_path,
        &prom_path,
        &renew_path,
        &timer_path,
        &watcher_path,
    ] {
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(unit)
            .output()
            .expect("systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let relevant: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                l.contains(&*units.path().display().to_string())
                    || l.contains("Unknown")
                    || l.contains("cells")
                    || l.contains("prometheus")
            })
            .collect();
        assert!(
            out.status.success(),
            "systemd-analyze verify {} failed:\n{stderr}",
            unit.display()
        );
        assert!(
            relevant.is_empty(),
            "systemd-analyze verify {}:\n{}",
            unit.display(),
            relevant.join("\n")
        );
    }
}

#[test]
fn openssl_verifies_the_cells_certificate_chain() {
    let Some(openssl) = require_tool("openssl", None) else {
        return;
    };
    let d = Deployment::new();
    let args = tutorial_args(&d, "2.11.7");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args[3] = "10.1.2.3:8443"; // --bind
    run_ok(&mut d.cmd("init", &args));
    // Chains to the CA for TLS server use, and the key belongs to the certificate.
    assert_cells_pki_consistent(&d);
    let out = Command::new(&openssl)
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-enddate",
            "-in",
        ])
        .arg(d.path("/etc/cells/tls/cells.crt"))
        .output()
        .expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "DNS:cells.example.com",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "IP Address:10.1.2.3",
        "TLS Web Server Authentication",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
}
