//! The question table walked with a scripted prompter: order, skips,
//! defaults, re-asking, and the rules between answers.

use super::*;
use crate::wizard::scripted::{Scripted::*, *};
use std::path::Path;

fn context(saved: Option<&crate::state::State>) -> Context<'_> {
    Context {
        root: Path::new("/nonexistent-root"),
        saved,
        needs_install_secrets: saved.is_none(),
        caddy_known: true,
    }
}

/// Flags as a layer.
fn flags(pairs: &[(Field, &str)]) -> Given {
    let mut given = Given::default();
    for (field, value) in pairs {
        given.answers.set(*field, value).unwrap();
    }
    given
}

fn with_install_secrets(mut given: Given) -> Given {
    given.secrets.admin.value = Some("a".into());
    given.secrets.database.value = Some("b".into());
    given
}

/// How many times this question was asked.
fn times_asked(p: &ScriptedPrompter, prompt: &str) -> usize {
    p.asked.iter().filter(|a| *a == prompt).count()
}

/// Whether a hint or complaint contained this text.
fn said(p: &ScriptedPrompter, text: &str) -> bool {
    p.said.iter().any(|s| s.contains(text))
}

/// A first run taking most defaults, with Prometheus on.
fn first_run_script() -> Vec<Scripted> {
    vec![
        Text("https://cells.example.com"), // URL
        Enter,                             // bind
        Enter,                             // public TLS: ACME
        Text("tls@example.com"),           // e-mail
        Enter,                             // upstream: CA
        Yes,                               // Prometheus
        Enter,                             // listen
        Enter,                             // path
        Text("sysadminUser"),              // user
        Text("prom-secret"),               // password
        Enter,                             // admin login
        Text("admin-secret"),              // admin password
        Enter,
        Enter,
        Enter,
        Enter,         // db host, port, name, user
        Text("db-pw"), // db password
        No,            // advanced
    ]
}

#[test]
fn defaults_are_taken() {
    let mut p = ScriptedPrompter::new(first_run_script());
    let out = ask_all(&mut p, Given::default(), &context(None)).unwrap();
    assert!(p.answers.is_empty(), "every scripted answer used");
    let f = &out.answers;
    let text = |field| f.text(field).unwrap();
    assert_eq!(text(Field::ExternalUrl), "https://cells.example.com");
    assert_eq!(text(Field::Bind), "127.0.0.1:8080");
    assert_eq!(text(Field::PublicTls), "acme");
    assert_eq!(text(Field::AcmeEmail), "tls@example.com");
    assert_eq!(text(Field::UpstreamTls), "ca");
    assert_eq!(text(Field::Prometheus), "on");
    assert_eq!(text(Field::PrometheusListen), "127.0.0.1:9090");
    assert_eq!(text(Field::PrometheusPath), "/prometheus");
    assert_eq!(text(Field::AdminLogin), "admin");
    assert_eq!(text(Field::DbName), "cells");
    assert_eq!(out.secrets.prometheus.value.as_deref(), Some("prom-secret"));
    assert_eq!(out.secrets.admin.value.as_deref(), Some("admin-secret"));
    assert_eq!(out.secrets.database.value.as_deref(), Some("db-pw"));
    assert!(
        !f.is_set(Field::CellsBinary),
        "advanced settings skipped: defaults apply later"
    );
    // Text answers are shown back as accepted; passwords hidden.
    assert!(p
        .shown
        .contains(&"Cells bind address · 127.0.0.1:8080".to_string()));
    assert!(p
        .shown
        .contains(&"Prometheus password · ********".to_string()));
}

#[test]
fn flags_skip_their_questions() {
    let given = with_install_secrets(flags(&[
        (Field::ExternalUrl, "https://files.example.org"),
        (Field::PublicTls, "internal"),
        (Field::Prometheus, "off"),
    ]));
    let mut p = ScriptedPrompter::new([Enter, Enter, Enter, Enter, Enter, Enter, Enter, No]);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert_eq!(
        p.asked,
        [
            "Cells bind address",
            "Upstream TLS",
            "Cells admin login",
            "Database host",
            "Database port",
            "Database name",
            "Database user",
            "Change advanced settings (Cells binary, user, working dir)?"
        ]
    );
    assert_eq!(
        out.answers.text(Field::ExternalUrl).unwrap(),
        "https://files.example.org"
    );
}

#[test]
fn invalid_answers_are_asked_again() {
    let given = with_install_secrets(flags(&[(Field::Prometheus, "off")]));
    let mut script = vec![
        Text("https://cells.example.com/path"),
        Text("https://cells.example.com"),
        Text("localhost:8080"),
        Enter,
    ];
    script.extend([Enter, Enter, Enter, Enter, Enter, Enter, Enter, Enter, No]);
    let mut p = ScriptedPrompter::new(script);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert_eq!(times_asked(&p, "External URL"), 2);
    assert_eq!(times_asked(&p, "Cells bind address"), 2);
    let complaints: Vec<&String> = p.said.iter().filter(|s| s.starts_with('✗')).collect();
    assert_eq!(complaints.len(), 2, "{complaints:?}");
    assert!(
        complaints[0].contains("a path is not allowed"),
        "{complaints:?}"
    );
    assert!(
        complaints[1].contains("is not an IP:PORT"),
        "{complaints:?}"
    );
    assert_eq!(out.answers.text(Field::Bind).unwrap(), "127.0.0.1:8080");
}

#[test]
fn a_bare_host_is_offered_with_https() {
    let given = with_install_secrets(flags(&[(Field::Prometheus, "off")]));
    let mut script = vec![Text("files.example.org"), Enter];
    script.extend([
        Enter, Enter, Enter, Enter, Enter, Enter, Enter, Enter, Enter, No,
    ]);
    let mut p = ScriptedPrompter::new(script);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert!(said(&p, "has no scheme"), "{:?}", p.said);
    assert!(
        said(&p, "Press Enter to take https://files.example.org"),
        "{:?}",
        p.said
    );
    assert_eq!(
        out.answers.text(Field::ExternalUrl).unwrap(),
        "https://files.example.org"
    );
}

#[test]
fn passwords_are_checked_like_flags() {
    let mut given = flags(&[
        (Field::ExternalUrl, "https://c.example.com"),
        (Field::Prometheus, "off"),
    ]);
    given.secrets.database.value = Some("b".into());
    let mut p = ScriptedPrompter::new([
        Enter,
        Enter,
        Enter,
        Enter,
        Enter,
        Text("pa{$HOME}"),
        Text("fine $ one"),
        Enter,
        Enter,
        Enter,
        Enter,
        No,
    ]);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert!(
        p.said
            .iter()
            .any(|s| s.starts_with("✗ the password contains '{$'")),
        "{:?}",
        p.said
    );
    assert_eq!(out.secrets.admin.value.as_deref(), Some("fine $ one"));
}

#[test]
fn prometheus_listen_must_be_loopback_at_the_question() {
    let mut given = with_install_secrets(flags(&[
        (Field::ExternalUrl, "https://c.example.com"),
        (Field::PublicTls, "internal"),
    ]));
    given.secrets.prometheus.value = Some("p".into());
    let mut p = ScriptedPrompter::new([
        Enter,
        Enter,
        Yes,
        Text("0.0.0.0:9090"),
        Enter,
        Enter,
        Text("ops"),
        Enter,
        Enter,
        Enter,
        Enter,
        Enter,
        No,
    ]);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert_eq!(times_asked(&p, "Prometheus listen address"), 2);
    assert!(
        said(&p, "0.0.0.0:9090 is not a loopback address"),
        "{:?}",
        p.said
    );
    assert_eq!(
        out.answers.text(Field::PrometheusListen).unwrap(),
        "127.0.0.1:9090"
    );
}

#[test]
fn an_acme_email_flag_chooses_acme() {
    let given = with_install_secrets(flags(&[
        (Field::ExternalUrl, "https://c.example.com"),
        (Field::AcmeEmail, "a@example.com"),
        (Field::Prometheus, "off"),
    ]));
    let mut p = ScriptedPrompter::new([Enter, Enter, Enter, Enter, Enter, Enter, Enter, No]);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert!(!p.asked.iter().any(|a| a == "Public TLS"), "{:?}", p.asked);
    assert_eq!(out.answers.public_tls, Some(PublicTlsMode::Acme));
}

#[test]
fn end_of_input_cancels() {
    let mut p = ScriptedPrompter::new([Text("https://cells.example.com")]);
    assert!(matches!(
        ask_all(&mut p, Given::default(), &context(None)),
        Err(Error::Cancelled(_))
    ));
}

#[test]
fn plain_http_choice_turns_the_url_into_http() {
    let given = with_install_secrets(flags(&[(Field::Prometheus, "off")]));
    let mut p = ScriptedPrompter::new([
        Text("https://cells.example.com"),
        Enter,
        Choice(3),
        Enter,
        Enter,
        Enter,
        Enter,
        Enter,
        Enter,
        No,
    ]);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert_eq!(
        out.answers.text(Field::ExternalUrl).unwrap(),
        "http://cells.example.com"
    );
}

#[test]
fn a_missing_custom_certificate_is_asked_again() {
    let root = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["c.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(root.path().join("c.pem"), cert.pem()).unwrap();
    std::fs::write(root.path().join("k.pem"), key.serialize_pem()).unwrap();
    let given = with_install_secrets(flags(&[
        (Field::ExternalUrl, "https://c.example.com"),
        (Field::PublicTls, "custom"),
        (Field::Prometheus, "off"),
    ]));
    let mut script = vec![
        Enter,
        Text("/missing.pem"),
        No,
        Text("/c.pem"),
        Text("/k.pem"),
    ];
    script.extend([Enter, Enter, Enter, Enter, Enter, Enter, No]);
    let mut p = ScriptedPrompter::new(script);
    let ctx = Context {
        root: root.path(),
        ..context(None)
    };
    let out = ask_all(&mut p, given, &ctx).unwrap();
    assert_eq!(times_asked(&p, "Certificate file"), 2);
    assert!(
        p.said
            .iter()
            .any(|s| s.starts_with("✗ the certificate") && s.contains("missing.pem")),
        "{:?}",
        p.said
    );
    assert_eq!(out.answers.text(Field::PublicKey).unwrap(), "/k.pem");
}

#[test]
fn a_certificate_still_on_its_way_may_be_taken_anyway() {
    let given = with_install_secrets(flags(&[
        (Field::ExternalUrl, "https://c.example.com"),
        (Field::PublicTls, "custom"),
        (Field::Prometheus, "off"),
    ]));
    let mut script = vec![Enter, Text("/later/c.pem"), Yes, Text("/later/k.pem"), Yes];
    script.extend([Enter, Enter, Enter, Enter, Enter, Enter, No]);
    let mut p = ScriptedPrompter::new(script);
    let out = ask_all(&mut p, given, &context(None)).unwrap();
    assert_eq!(times_asked(&p, "Certificate file"), 1);
    assert_eq!(out.answers.text(Field::PublicCert).unwrap(), "/later/c.pem");
    assert_eq!(out.answers.text(Field::PublicKey).unwrap(), "/later/k.pem");
}
