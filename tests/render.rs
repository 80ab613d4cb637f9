//! Snapshots of every text file for Pydio's tutorial scenario, and the
//! structure of install.yml as Cells will read it.

use crate::common::*;

fn filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"sha256: [0-9a-f]{64}", "sha256: [sha256]")]
}

#[test]
fn tutorial_scenario_snapshots() {
    for version in ["2.6.2", "2.11.7"] {
        let d = init_tutorial(version);
        insta::with_settings!({ filters => filters(), snapshot_suffix => version }, {
            insta::assert_snapshot!("Caddyfile", d.read("/etc/caddy/Caddyfile"));
            insta::assert_snapshot!("cellsctl.yaml", d.read("/etc/cellsctl/cellsctl.yaml"));
        });
    }
    // The other files do not depend on the Caddy version.
    let d = init_tutorial("2.11.7");
    insta::with_settings!({ filters => filters() }, {
        insta::assert_snapshot!("install.yml", d.read("/etc/cells/install.yml"));
        insta::assert_snapshot!("cells.service", d.read("/etc/systemd/system/cells.service"));
        insta::assert_snapshot!("prometheus-cellsctl.yml", d.read("/etc/prometheus/cellsctl.yml"));
        insta::assert_snapshot!("prometheus-dropin.conf", d.read("/etc/systemd/system/prometheus.service.d/cellsctl.conf"));
        insta::assert_snapshot!(
            "cellsctl-renew.service",
            d.read("/etc/systemd/system/cellsctl-renew.service")
        );
        insta::assert_snapshot!(
            "cellsctl-renew.timer",
            d.read("/etc/systemd/system/cellsctl-renew.timer")
        );
        insta::assert_snapshot!(
            "cellsctl-caddy-upgrade.path",
            d.read("/etc/systemd/system/cellsctl-caddy-upgrade.path")
        );
    });
}

#[test]
fn install_yml_has_the_keys_cells_reads() {
    let d = init_tutorial("2.11.7");
    let v: serde_yaml::Value =
        serde_yaml::from_str(&d.read("/etc/cells/install.yml")).expect("install.yml parses");
    let s = |path: &[&str]| -> String {
        let mut cur = &v;
        for k in path {
            cur = cur
                .get(*k)
                .unwrap_or_else(|| panic!("install.yml lacks {path:?}"));
        }
        cur.as_str()
            .unwrap_or_else(|| panic!("{path:?} is not a string"))
            .to_string()
    };
    assert_eq!(
        s(&["proxyconfig", "reverseproxyurl"]),
        "https://cells.example.com"
    );
    assert_eq!(v["proxyconfig"]["binds"][0].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(
        s(&["proxyconfig", "tlsconfig", "certificate", "certfile"]),
        "/etc/cells/tls/cells.crt"
    );
    assert_eq!(
        s(&["proxyconfig", "tlsconfig", "certificate", "keyfile"]),
        "/etc/cells/tls/cells.key"
    );
    assert_eq!(
        s(&["proxyconfig", "tlsconfig", "certificate", "cellsrootca"]),
        "/etc/cellsctl/pki/ca.crt"
    );
    assert_eq!(s(&["frontendlogin"]), "admin");
    assert_eq!(
        s(&["frontendpassword"]),
        ADMIN_PASSWORD,
        "the admin password round-trips exactly"
    );
    assert_eq!(s(&["dbconnectiontype"]), "tcp");
    assert_eq!(s(&["dbtcphostname"]), "127.0.0.1");
    assert_eq!(s(&["dbtcpport"]), "3306");
    assert_eq!(s(&["dbtcpname"]), "cells");
    assert_eq!(s(&["dbtcpuser"]), "pydio");
    assert_eq!(
        s(&["dbtcppassword"]),
        DB_PASSWORD,
        "the DB password round-trips exactly"
    );
    // Cells matches keys case-sensitively and rejects YAML tags; no 2.x keys.
    let text = d.read("/etc/cells/install.yml");
    for bad in ["!", "bindurl", "externalurl", "dbConnectionType", "{$"] {
        assert!(!text.contains(bad), "install.yml contains {bad:?}:\n{text}");
    }
}

#[test]
fn skip_verify_mode_lets_cells_sign_its_own_certificate() {
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.extend(["--upstream-tls".into(), "skip-verify".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut d.cmd("init", &args));
    let v: serde_yaml::Value =
        serde_yaml::from_str(&d.read("/etc/cells/install.yml")).expect("parses");
    let hosts: Vec<&str> = v["proxyconfig"]["tlsconfig"]["selfsigned"]["hostnames"]
        .as_sequence()
        .expect("selfsigned hostnames")
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    assert!(
        hosts.contains(&"cells.example.com") && hosts.contains(&"127.0.0.1"),
        "{hosts:?}"
    );
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(caddyfile.contains("tls_insecure_skip_verify"));
    assert!(!caddyfile.contains("tls_trust_pool"));
    assert!(
        !d.path("/etc/cellsctl/pki/ca.key").exists(),
        "no CA in skip-verify mode"
    );
    let unit = d.read("/etc/systemd/system/cells.service");
    assert!(!unit.contains("TLS_CERT_FILE"), "{unit}");
}

#[test]
fn modes_of_written_files() {
    use std::os::unix::fs::PermissionsExt;
    let d = init_tutorial("2.11.7");
    let mode = |p: &str| {
        std::fs::metadata(d.path(p))
            .expect("exists")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("/etc/cellsctl/cellsctl.yaml"), 0o600);
    assert_eq!(mode("/etc/caddy/Caddyfile"), 0o644);
    assert_eq!(mode("/etc/cellsctl/pki/ca.crt"), 0o644);
    assert_eq!(mode("/etc/cellsctl/pki/ca.key"), 0o600);
    assert_eq!(mode("/etc/cellsctl/pki"), 0o755);
    assert_eq!(mode("/etc/cells/tls/cells.crt"), 0o644);
    // 0640 root:pydio when run as root and that group exists, else 0600.
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let group_exists = std::process::Command::new("getent")
        .args(["group", "pydio"])
        .output()
        .is_ok_and(|o| o.status.success());
    let want = if is_root && group_exists {
        0o640
    } else {
        0o600
    };
    assert_eq!(mode("/etc/cells/tls/cells.key"), want);
    assert_eq!(mode("/etc/cells/install.yml"), 0o600);
    assert_eq!(mode("/etc/systemd/system/cells.service"), 0o644);
    assert_eq!(
        mode("/var/cells"),
        0o751,
        "working dir lets Prometheus traverse to the targets file"
    );
}
