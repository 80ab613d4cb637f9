//! The hostile-input corpus: every answer that reaches a file, fed values
//! that could inject into a Caddyfile, YAML or a unit file. Each is either
//! rejected (exit 2, the flag named, what is accepted said, the root
//! untouched) or, for free-form secrets, carried exactly: install.yml gives
//! the same password back, the bcrypt hash verifies it, and Caddy's own
//! parser sees no extra directive, matcher or site.

use crate::common::*;

enum Expect {
    /// Exit 2 naming this flag.
    Reject,
    /// Accepted; the rendered Caddyfile still validates and has the same structure.
    Accept,
}
use Expect::*;

/// (flag, value, expectation). Values for `*-password-file` flags are file contents.
fn corpus() -> Vec<(&'static str, String, Expect)> {
    let s = |v: &str| v.to_string();
    let long = |n: usize| "a".repeat(n);
    vec![
        // External URL.
        (
            "--external-url",
            s("https://cells.example.com\n\trespond 200"),
            Reject,
        ),
        ("--external-url", s("https://cells.example.com\r"), Reject),
        (
            "--external-url",
            s("https://cells\u{1}.example.com"),
            Reject,
        ),
        ("--external-url", s("https://cells.example.com\t"), Reject),
        ("--external-url", s("https://cells example.com"), Reject),
        ("--external-url", s("https://\"cells\".example.com"), Reject),
        ("--external-url", s("https://`id`.example.com"), Reject),
        ("--external-url", s("https://cells.example.com}"), Reject),
        ("--external-url", s("https://{$HOME}.example.com"), Reject),
        ("--external-url", s("https://{http.request.host}"), Reject),
        ("--external-url", s("https://cells.example.com#x"), Reject),
        ("--external-url", s("https://cells.example.com?q=1"), Reject),
        (
            "--external-url",
            s("https://admin@cells.example.com"),
            Reject,
        ),
        ("--external-url", s("https://u:p@cells.example.com"), Reject),
        (
            "--external-url",
            s("https://cells.example.com/cells"),
            Reject,
        ),
        ("--external-url", s("ftp://cells.example.com"), Reject),
        ("--external-url", s("javascript:alert(1)"), Reject),
        ("--external-url", s("cells.example.com"), Reject),
        (
            "--external-url",
            s("https://c\u{435}lls.example.com"),
            Reject,
        ), // Cyrillic e
        ("--external-url", s("https://\u{202e}moc.elpmaxe"), Reject),
        (
            "--external-url",
            format!("https://{}.com", long(300)),
            Reject,
        ),
        ("--external-url", s("https://cells.example.com:0"), Reject),
        (
            "--external-url",
            s("https://cells.example.com:65536"),
            Reject,
        ),
        ("--external-url", s("https://::1"), Reject),
        (
            "--external-url",
            s("https://cells.example.com;reboot"),
            Reject,
        ),
        ("--external-url", s("https://cells.example.com\\x"), Reject),
        (
            "--external-url",
            s("https://cells.example.com<<EOF"),
            Reject,
        ),
        ("--external-url", s(""), Reject),
        ("--external-url", s("https://xn--bcher-kva.example"), Accept),
        ("--external-url", s("https://[::1]:8443"), Accept),
        ("--external-url", s("https://127.0.0.1:8443"), Accept),
        (
            "--external-url",
            s("https://CELLS.Example.com:8443/"),
            Accept,
        ),
        // Bind and listen addresses.
        ("--bind", s("localhost:8080"), Reject),
        ("--bind", s("127.0.0.1:0"), Reject),
        ("--bind", s("127.0.0.1:65536"), Reject),
        ("--bind", s("::1:8080"), Reject),
        ("--bind", s("127.0.0.1:8080\n"), Reject),
        ("--bind", s("127.0.0.1"), Reject),
        ("--bind", s("0.0.0.0:8080 #"), Reject),
        ("--bind", s("[::1]:8080"), Accept),
        ("--prometheus-listen", s("localhost:9090"), Reject),
        ("--prometheus-listen", s("0.0.0.0:0"), Reject),
        ("--prometheus-listen", s("[::1]:9090"), Accept),
        ("--prometheus-listen", s("0.0.0.0:9090"), Reject),
        ("--prometheus-listen", s("10.0.0.1:9090"), Reject),
        ("--external-url", s("https://cells.example.com:80"), Reject),
        ("--external-url", s("http://cells.example.com:443"), Reject),
        // E-mail.
        ("--acme-email", s("tls@example.com\n"), Reject),
        ("--acme-email", s("t ls@example.com"), Reject),
        ("--acme-email", s("tls@example.com}"), Reject),
        ("--acme-email", s("{$EMAIL}"), Reject),
        ("--acme-email", s("tls@{http.request.host}"), Reject),
        ("--acme-email", s("tls@localhost"), Reject),
        ("--acme-email", s("\u{ff54}ls@example.com"), Reject), // fullwidth t
        ("--acme-email", s("t#ls@example.com"), Reject),
        ("--acme-email", s(""), Reject),
        // User names.
        ("--prometheus-user", s("admin:x"), Reject),
        ("--prometheus-user", s("ad min"), Reject),
        ("--prometheus-user", s("admin\n"), Reject),
        ("--prometheus-user", s("{$USER}"), Reject),
        ("--prometheus-user", s("<<EOF"), Reject),
        ("--prometheus-user", s("a\\b"), Reject),
        ("--prometheus-user", s(""), Reject),
        ("--prometheus-user", long(65), Reject),
        ("--prometheus-user", s("\u{e4}dmin"), Reject),
        ("--admin-login", s("admin\"; x"), Reject),
        ("--admin-login", s("admin#"), Reject),
        ("--cells-user", s("Pydio"), Reject),
        ("--cells-user", s("pydio\nUser=root"), Reject),
        ("--cells-user", s("root;"), Reject),
        ("--cells-user", long(33), Reject),
        // Paths.
        ("--cells-binary", s("relative/cells"), Reject),
        ("--cells-binary", s("/opt/../bin/cells"), Reject),
        (
            "--cells-binary",
            s("/opt/pydio/bin/cells\nExecStartPre=/bin/rm"),
            Reject,
        ),
        ("--cells-binary", s("/opt/pydio bin/cells"), Reject),
        ("--cells-binary", s("/opt/%h/cells"), Reject),
        ("--cells-binary", s("/opt/pydio/bin/cells;rm"), Reject),
        ("--cells-binary", s("/opt/`x`/cells"), Reject),
        ("--cells-binary", s("/opt/$(x)/cells"), Reject),
        ("--cells-working-dir", s("/var/cells/"), Reject),
        ("--cells-working-dir", s("/"), Reject),
        ("--cells-working-dir", s("/var/ce\"lls"), Reject),
        ("--prometheus-targets-file", s("/var/x.json\n- y"), Reject),
        ("--prometheus-targets-file", s("/var/x#.json"), Reject),
        ("--prometheus-path", s("/prometheus/"), Reject),
        ("--prometheus-path", s("prometheus"), Reject),
        ("--prometheus-path", s("/prom etheus"), Reject),
        ("--prometheus-path", s("/prom{x}"), Reject),
        ("--prometheus-path", s("/prom#"), Reject),
        ("--prometheus-path", s("/.."), Reject),
        ("--prometheus-path", s("/metrics/prom"), Accept),
        // Numbers and versions.
        ("--bcrypt-cost", s("3"), Reject),
        ("--bcrypt-cost", s("21"), Reject),
        ("--bcrypt-cost", s("14x"), Reject),
        ("--caddy-version", s("2.5.9"), Reject),
        ("--caddy-version", s("3.0.0"), Reject),
        ("--caddy-version", s("2.11"), Reject),
        ("--caddy-version", s("2.11.7\n"), Reject),
        ("--caddy-version", s("v2.11.7 {$X}"), Reject),
        ("--cert-days", s("30"), Reject),
        ("--cert-days", s("3651"), Reject),
        ("--db-host", s("db host"), Reject),
        ("--db-host", s("db;drop"), Reject),
        ("--db-host", s("{$DB}"), Reject),
        ("--db-name", s("cells;"), Reject),
        ("--db-name", s("cells'"), Reject),
        ("--db-user", s("pydio'@'%"), Reject),
        ("--db-port", s("0"), Reject),
        ("--db-port", s("65536"), Reject),
        ("--db-port", s("+3306"), Reject),
        // Passwords: free-form, carried exactly, except what Cells or bcrypt cannot take.
        ("--admin-password-file", s("pa ss\n"), Accept),
        ("--admin-password-file", s("pa\"ss"), Accept),
        ("--admin-password-file", s("pa'ss"), Accept),
        ("--admin-password-file", s("pa#ss"), Accept),
        ("--admin-password-file", s("`id`"), Accept),
        ("--admin-password-file", s("pa$HOME"), Accept),
        ("--admin-password-file", s("pa{ss}"), Accept),
        ("--admin-password-file", s("pa\\ss"), Accept),
        ("--admin-password-file", s("<<EOF"), Accept),
        ("--admin-password-file", s("- item"), Accept),
        ("--admin-password-file", s("ünïcødé \u{202e}rtl"), Accept),
        ("--admin-password-file", s("{http.request.host}"), Accept),
        ("--admin-password-file", long(1000), Accept),
        ("--admin-password-file", s("pa{$HOME}ss"), Reject),
        ("--admin-password-file", s("line\nbreak"), Reject),
        ("--admin-password-file", s("pa\0ss"), Reject),
        ("--admin-password-file", s(""), Reject),
        ("--db-password-file", s("db'\"#: {x} $y"), Accept),
        ("--db-password-file", s("{$DB_PASSWORD}"), Reject),
        ("--prometheus-password-file", s("p{$x} \"'#"), Accept),
        ("--prometheus-password-file", long(73), Reject),
        ("--prometheus-password-file", s("two\nlines"), Reject),
        ("--prometheus-password-hash", s("$2a$14$short"), Reject),
        (
            "--prometheus-password-hash",
            format!("$2a$99${}", &PROM_HASH[7..]),
            Reject,
        ),
        ("--admin-password-file", "x".repeat(5000), Reject),
        (
            "--prometheus-password-hash",
            format!("{}\n", PROM_HASH),
            Reject,
        ),
    ]
}

/// The tutorial flags with `flag` replaced (file flags get a file holding `value`).
fn args_with(d: &Deployment, flag: &str, value: &str) -> Vec<String> {
    let mut args = tutorial_args(d, "2.11.7");
    // Prometheus gets a password file instead of a hash when that is the flag under test.
    let replaced = if flag == "--prometheus-password-file" {
        "--prometheus-password-hash"
    } else {
        flag
    };
    if let Some(i) = args.iter().position(|a| a == replaced) {
        args.drain(i..i + 2);
    }
    let value = if flag.ends_with("-password-file") {
        let path = d.secrets.path().join("hostile");
        std::fs::write(&path, value).expect("write secret file");
        path.display().to_string()
    } else {
        value.to_string()
    };
    args.extend([flag.to_string(), value]);
    if flag == "--prometheus-password-file" {
        args.extend(["--bcrypt-cost".into(), "4".into()]);
    }
    args
}

/// `caddy adapt` JSON with the volatile parts (hash, host, paths) masked.
fn adapted_structure(caddy: &std::path::Path, d: &Deployment) -> String {
    let json: serde_yaml::Value = serde_yaml::from_str(&caddy_adapt(caddy, d)).expect("JSON");
    // Shape only: keys and array lengths, not the values.
    fn shape(v: &serde_yaml::Value) -> String {
        match v {
            serde_yaml::Value::Mapping(m) => {
                let inner: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}:{}", k.as_str().unwrap_or("?"), shape(v)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            serde_yaml::Value::Sequence(s) => {
                format!("[{}]", s.iter().map(shape).collect::<Vec<_>>().join(","))
            }
            _ => "_".into(),
        }
    }
    shape(&json)
}

#[test]
fn hostile_input_corpus() {
    let cases = corpus();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let caddy = caddy_binaries()
        .into_iter()
        .find(|(v, _)| *v == "2.11.7")
        .map(|(_, p)| p);
    let baseline = init_tutorial("2.11.7");
    let baseline_shape = caddy.as_ref().map(|c| adapted_structure(c, &baseline));
    let (mut rejected, mut accepted) = (0, 0);
    for (flag, value, expect) in &cases {
        let d = Deployment::new();
        let args = args_with(&d, flag, value);
        let out = cellsctl()
            .arg("init")
            .arg("--root")
            .arg(d.root())
            .args(&args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("{flag} {value:?}");
        match expect {
            Reject => {
                assert_eq!(
                    out.status.code(),
                    Some(2),
                    "{what}: not rejected\nstderr: {stderr}"
                );
                assert!(
                    stderr.contains(flag),
                    "{what}: message does not name {flag}: {stderr}"
                );
                assert!(
                    [
                        "expected",
                        "possible values",
                        "is empty",
                        "contains",
                        "longer than"
                    ]
                    .iter()
                    .any(|w| stderr.contains(w)),
                    "{what}: message does not say what is accepted: {stderr}"
                );
                assert!(d.snapshot().is_empty(), "{what}: files written");
                if flag.ends_with("-password-file") && value.len() > 2 {
                    assert!(
                        !stderr.contains(value.as_str()),
                        "{what}: the secret is echoed"
                    );
                }
                rejected += 1;
            }
            Accept => {
                assert!(out.status.success(), "{what}: refused: {stderr}");
                let install: serde_yaml::Value =
                    serde_yaml::from_str(&d.read("/etc/cells/install.yml"))
                        .expect("install.yml parses");
                let text = d.read("/etc/cells/install.yml");
                assert!(
                    !text.contains("{$"),
                    "{what}: install.yml has a {{$ span Cells would substitute"
                );
                let want = value.strip_suffix('\n').unwrap_or(value);
                match *flag {
                    "--admin-password-file" => {
                        assert_eq!(install["frontendpassword"].as_str(), Some(want), "{what}")
                    }
                    "--db-password-file" => {
                        assert_eq!(install["dbtcppassword"].as_str(), Some(want), "{what}")
                    }
                    "--prometheus-password-file" => {
                        let caddyfile = d.read("/etc/caddy/Caddyfile");
                        let hash = caddyfile
                            .lines()
                            .find_map(|l| l.trim().strip_prefix("sysadminUser "))
                            .expect("auth line");
                        assert!(
                            bcrypt::verify(want, hash).expect("bcrypt"),
                            "{what}: the hash does not verify"
                        );
                    }
                    _ => {}
                }
                if let (Some(caddy), Some(base)) = (&caddy, &baseline_shape) {
                    assert_eq!(
                        &adapted_structure(caddy, &d),
                        base,
                        "{what}: the Caddyfile's structure changed"
                    );
                }
                accepted += 1;
            }
        }
    }
    eprintln!("hostile corpus: {rejected} rejected, {accepted} carried exactly");
}
