//! Invalid or missing input: exit 2, the message names the flag and says
//! what is accepted, and the root is left byte-for-byte unchanged.

use crate::common::*;

fn refused(d: &Deployment, args: &[&str]) -> String {
    let out = d.cmd("init", args).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "args {args:?}\nstderr: {stderr}"
    );
    assert!(d.snapshot().is_empty(), "args {args:?} wrote files");
    stderr
}

#[test]
fn missing_answers_are_listed_by_flag() {
    let d = Deployment::new();
    let err = refused(&d, &["--caddy-version", "2.11.7", "--prometheus"]);
    for flag in [
        "--external-url",
        "--prometheus-user",
        "--prometheus-password-file",
        "--admin-password-file",
        "--db-password-file",
    ] {
        assert!(err.contains(flag), "{flag} not listed:\n{err}");
    }
}

#[test]
fn injection_attempts_are_rejected_with_the_flag_named() {
    let d = Deployment::new();
    let admin = d.secret_file("admin");
    let db = d.secret_file("db");
    let cases: &[(&str, &str)] = &[
        ("--external-url", "https://cells.example.com\n\trespond 200"),
        ("--external-url", "https://cells.example.com/path"),
        ("--external-url", "https://{$HOME}.example.com"),
        ("--external-url", "https://user:pw@cells.example.com"),
        ("--bind", "cells.local:8080"),
        ("--bind", "127.0.0.1:0"),
        ("--acme-email", "a@b.com}\n:80 {"),
        ("--prometheus-user", "admin {http.request.host}"),
        (
            "--cells-binary",
            "/opt/pydio/bin/cells\nExecStartPre=/bin/rm",
        ),
        ("--cells-working-dir", "/var/../etc"),
        ("--cells-user", "pydio\nUser=root"),
        ("--prometheus-path", "/prometheus*"),
        ("--db-name", "cells`; DROP"),
        ("--caddy-version", "2.5.0"),
        ("--public-tls", "letsencrypt"),
    ];
    for (flag, value) in cases {
        let mut args = vec![
            "--admin-password-file",
            &admin,
            "--db-password-file",
            &db,
            flag,
            value,
        ];
        for (default_flag, default_value) in [
            ("--external-url", "https://cells.example.com"),
            ("--caddy-version", "2.11.7"),
        ] {
            if default_flag != *flag {
                args.extend([default_flag, default_value]);
            }
        }
        let err = refused(&d, &args);
        assert!(
            err.contains(flag),
            "{flag}={value:?}: message does not name the flag:\n{err}"
        );
        assert!(
            err.contains("expected") || err.contains("possible values") || err.contains("only"),
            "{flag}={value:?}: message does not say what is accepted:\n{err}"
        );
    }
}

#[test]
fn install_secret_with_env_expansion_is_rejected() {
    let d = Deployment::new();
    std::fs::write(d.secrets.path().join("admin"), "pa{$HOME}ss\n").expect("write");
    let err = refused(
        &d,
        &[
            "--external-url",
            "https://cells.example.com",
            "--caddy-version",
            "2.11.7",
            "--admin-password-file",
            &d.secret_file("admin"),
            "--db-password-file",
            &d.secret_file("db"),
        ],
    );
    assert!(
        err.contains("--admin-password-file") && err.contains("{$"),
        "{err}"
    );
    assert!(!err.contains("pa{$HOME}ss"), "the password is not echoed");
}

#[test]
fn scheme_and_tls_mode_must_agree() {
    let d = Deployment::new();
    let admin = d.secret_file("admin");
    let db = d.secret_file("db");
    let common = [
        "--caddy-version",
        "2.11.7",
        "--admin-password-file",
        &admin,
        "--db-password-file",
        &db,
    ];
    let mut a = common.to_vec();
    a.extend(["--external-url", "http://cells.example.com"]);
    assert!(refused(&d, &a).contains("--public-tls off"));
    let mut b = common.to_vec();
    b.extend([
        "--external-url",
        "https://cells.example.com",
        "--public-tls",
        "off",
    ]);
    assert!(refused(&d, &b).contains("http://"));
    let mut c = common.to_vec();
    c.extend([
        "--external-url",
        "https://cells.example.com",
        "--public-tls",
        "internal",
        "--acme-email",
        "a@example.com",
    ]);
    assert!(refused(&d, &c).contains("--acme-email"));
}

#[test]
fn regenerate_without_state_says_run_init() {
    let d = Deployment::new();
    let out = d.cmd("regenerate", &[]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cellsctl init"));
}
