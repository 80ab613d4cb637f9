//! The wizard through a real pseudo-terminal: a full first run, a re-run
//! that changes only the URL, Ctrl-C and end of input half-way, line
//! editing, the https:// offer and a custom certificate asked again.

use crate::common::*;
use rexpect::process::WaitStatus;
use rexpect::session::PtySession;

fn spawn(d: &Deployment, extra: &[&str]) -> PtySession {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("cellsctl"));
    cmd.arg("init").arg("--root").arg(d.root());
    spawn_command(cmd, extra)
}

/// `cmd` with these arguments in a pty, with a clean environment.
fn spawn_command(mut cmd: std::process::Command, extra: &[&str]) -> PtySession {
    cmd.args(extra);
    for (k, _) in std::env::vars() {
        if k.starts_with("CELLSCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1").env("PATH", "/nonexistent");
    if !cmd.get_envs().any(|(k, _)| k == "TERM") {
        cmd.env("TERM", "xterm");
    }
    rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn in a pty")
}

thread_local! {
    /// Everything the program printed so far in this test's session.
    static TRANSCRIPT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn record(text: &str) {
    TRANSCRIPT.with(|t| t.borrow_mut().push_str(text));
}

/// Waits for a question, then answers it (an empty line takes the default).
fn answer(p: &mut PtySession, question: &str, line: &str) {
    let before = p
        .exp_string(question)
        .unwrap_or_else(|e| panic!("waiting for {question:?}: {e}"));
    record(&before);
    p.send_line(line).expect("send");
}

/// Hidden input: typed, then typed again to confirm.
fn answer_password(p: &mut PtySession, question: &str, secret: &str) {
    answer(p, question, secret);
    answer(p, "Again, to confirm", secret);
}

fn exit_code(p: &mut PtySession) -> Option<i32> {
    p.exp_eof().expect("the program ends");
    match p.process().wait().expect("wait") {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

#[test]
fn first_run_gives_the_same_files_as_the_flags() {
    let d = Deployment::new();
    let mut p = spawn(&d, &["--caddy-version", "2.11.7"]);
    answer(&mut p, "External URL", "cells.example.com"); // refused: no scheme
    p.exp_string("has no scheme").expect("the reason is shown");
    answer(&mut p, "External URL", "https://cells.example.com");
    answer(&mut p, "Cells bind address", "0.0.0.0:8080");
    answer(&mut p, "Public TLS", "");
    answer(&mut p, "ACME e-mail", "tls@example.com");
    answer(&mut p, "Upstream TLS", "");
    answer(&mut p, "Serve Prometheus?", "y");
    answer(&mut p, "Prometheus listen address", "");
    answer(&mut p, "Prometheus path", "");
    answer(&mut p, "Prometheus user", "sysadminUser");
    answer_password(&mut p, "Prometheus password", PROM_PASSWORD);
    answer(&mut p, "Cells admin login", "");
    answer_password(&mut p, "Cells admin password", ADMIN_PASSWORD);
    answer(&mut p, "Database host", "");
    answer(&mut p, "Database port", "");
    answer(&mut p, "Database name", "");
    answer(&mut p, "Database user", "");
    answer_password(&mut p, "Database password", DB_PASSWORD);
    answer(&mut p, "Change advanced settings", "n");
    // (rexpect reads bytes as Latin-1, so the bullets are not matched here.)
    record(
        &p.exp_string("Prometheus login  sysadminUser / ")
            .expect("review shows the login, not the password"),
    );
    record(
        &p.exp_string("create           ")
            .expect("review lists files"),
    );
    answer(&mut p, "Write these files?", "y");
    record(&p.exp_string("Next steps").expect("written"));
    assert_eq!(exit_code(&mut p), Some(0));
    let transcript = TRANSCRIPT.with(|t| t.borrow().clone());
    assert!(transcript.contains("Review:"));
    for secret in [PROM_PASSWORD, ADMIN_PASSWORD, DB_PASSWORD] {
        assert!(
            !transcript.contains(secret),
            "{secret:?} shown on the terminal"
        );
    }

    // The same answers as flags.
    let flags = Deployment::new();
    let mut cmd = flags.cmd(
        "init",
        &[
            "--external-url",
            "https://cells.example.com",
            "--bind",
            "0.0.0.0:8080",
            "--acme-email",
            "tls@example.com",
            "--prometheus",
            "--prometheus-user",
            "sysadminUser",
            "--caddy-version",
            "2.11.7",
        ],
    );
    run_ok(with_secrets(&mut cmd));
    assert_eq!(masked_files(&d), masked_files(&flags));
    // The password typed in the wizard is the one Caddy will check.
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    let hash = caddyfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("sysadminUser "))
        .expect("auth line");
    assert!(bcrypt::verify(PROM_PASSWORD, hash).expect("bcrypt"));
}

#[test]
fn rerun_changes_only_the_url_like_regenerate() {
    let d = init_tutorial("2.11.7");
    // A copy of the same deployment, changed with regenerate for comparison.
    let twin = Deployment::new();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", d.root().display()))
        .arg(twin.root())
        .status()
        .expect("cp");
    assert!(status.success());
    run_ok(&mut twin.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org"],
    ));

    let mut p = spawn(&d, &[]);
    answer(&mut p, "External URL", "https://files.example.org");
    for q in [
        "Cells bind address",
        "Public TLS",
        "ACME e-mail",
        "Upstream TLS",
        "Serve Prometheus?",
        "Prometheus listen address",
        "Prometheus path",
        "Prometheus user",
        "Keep the current Prometheus password?",
        "Cells admin login",
        "Database host",
        "Database port",
        "Database name",
        "Database user",
        "Change advanced settings",
    ] {
        answer(&mut p, q, "");
    }
    p.exp_string("update           ")
        .expect("review lists changed files");
    answer(&mut p, "Write these files?", "");
    assert_eq!(exit_code(&mut p), Some(0));
    assert_eq!(masked_files(&d), masked_files(&twin));
    assert!(d
        .read("/etc/caddy/Caddyfile")
        .contains("https://files.example.org {"));
}

#[test]
fn ctrl_c_half_way_writes_nothing() {
    let d = Deployment::new();
    let mut p = spawn(&d, &["--caddy-version", "2.11.7"]);
    answer(&mut p, "External URL", "https://cells.example.com");
    p.exp_string("Cells bind address").expect("second question");
    p.send_control('c').expect("Ctrl-C");
    let rest = p.exp_eof().expect("the program ends");
    assert!(rest.contains("nothing was written"), "{rest:?}");
    let status = p.process().wait().expect("wait");
    assert!(!matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    assert!(d.snapshot().is_empty(), "the root is untouched");
}

#[test]
fn declining_the_review_writes_nothing() {
    let d = Deployment::new();
    let mut p = spawn(
        &d,
        &[
            "--external-url",
            "https://cells.example.com",
            "--no-prometheus",
            "--caddy-version",
            "2.11.7",
            "--admin-password-file",
            &d.secret_file("admin"),
            "--db-password-file",
            &d.secret_file("db"),
        ],
    );
    for q in [
        "Cells bind address",
        "Public TLS",
        "ACME e-mail",
        "Upstream TLS",
        "Cells admin login",
        "Database host",
        "Database port",
        "Database name",
        "Database user",
        "Change advanced settings",
    ] {
        answer(&mut p, q, "");
    }
    answer(&mut p, "Write these files?", "n");
    let rest = p.exp_eof().expect("ends");
    assert!(rest.contains("nothing was written"), "{rest:?}");
    assert!(d.snapshot().is_empty());
}

#[test]
fn piped_stdin_never_prompts() {
    let d = Deployment::new();
    let out = cellsctl()
        .args(["init", "--root"])
        .arg(d.root())
        .env("PATH", "/nonexistent")
        .write_stdin("https://cells.example.com\n")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for flag in [
        "--external-url",
        "--caddy-version",
        "--admin-password-file",
        "--db-password-file",
    ] {
        assert!(err.contains(flag), "{flag} not listed:\n{err}");
    }
    assert!(d.snapshot().is_empty());
}

#[test]
fn end_of_input_at_a_question_writes_nothing() {
    let d = Deployment::new();
    let missing_root = d.root().join("not-yet");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("cellsctl"));
    cmd.arg("init")
        .arg("--root")
        .arg(&missing_root)
        .args(["--caddy-version", "2.11.7"]);
    cmd.env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("PATH", "/nonexistent");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("pty");
    answer(&mut p, "External URL", "https://cells.example.com");
    p.exp_string("Cells bind address").expect("second question");
    p.send_control('d').expect("Ctrl-D");
    let rest = p.exp_eof().expect("the program ends");
    assert!(
        rest.contains("end of input") && rest.contains("nothing was written"),
        "{rest:?}"
    );
    let status = p.process().wait().expect("wait");
    assert!(matches!(status, WaitStatus::Exited(_, 1)), "{status:?}");
    assert!(!missing_root.exists(), "not even the root is created");
}

#[test]
fn ctrl_c_at_a_choice_writes_nothing() {
    let d = Deployment::new();
    let mut p = spawn(&d, &["--caddy-version", "2.11.7"]);
    answer(&mut p, "External URL", "https://cells.example.com");
    answer(&mut p, "Cells bind address", "");
    p.exp_string("Public TLS").expect("the choice");
    p.send_control('c').expect("Ctrl-C");
    let rest = p.exp_eof().expect("the program ends");
    assert!(rest.contains("nothing was written"), "{rest:?}");
    assert!(d.snapshot().is_empty());
}

/// The flags that leave only the questions a test is about, and the review.
fn few_questions(d: &Deployment) -> Vec<String> {
    [
        "--no-prometheus",
        "--upstream-tls",
        "ca",
        "--admin-login",
        "admin",
        "--db-host",
        "127.0.0.1",
        "--db-port",
        "3306",
        "--db-name",
        "cells",
        "--db-user",
        "pydio",
        "--cells-binary",
        "/opt/pydio/bin/cells",
        "--cells-user",
        "pydio",
        "--cells-working-dir",
        "/var/cells",
        "--caddy-version",
        "2.11.7",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(d.install_secret_args())
    .collect()
}

fn spawn_with(d: &Deployment, extra: &[&str]) -> PtySession {
    let mut args = few_questions(d);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(d, &args)
}

/// Accepts the review and waits for the end.
fn write_and_finish(p: &mut PtySession) {
    answer(p, "Write these files?", "y");
    p.exp_string("Next steps").expect("written");
    assert_eq!(exit_code(p), Some(0));
}

#[test]
fn arrow_keys_and_history_edit_an_answer() {
    let d = Deployment::new();
    let mut p = spawn_with(&d, &["--public-tls", "internal"]);
    // A typo fixed in place: Left arrow, then the missing letter.
    p.exp_string("External URL").expect("first question");
    p.send("https://cells.example.cm").expect("type");
    p.send("\x1b[D").expect("Left arrow");
    p.send_line("o").expect("type");
    p.exp_string("External URL: https://cells.example.com")
        .expect("the edited answer is accepted and shown");
    // ↑ brings back the offered answer to edit: 127.0.0.1:8080 -> 127.0.0.1:9000.
    p.exp_string("Cells bind address").expect("second question");
    p.send("\x1b[A").expect("Up arrow");
    p.send("\x7f\x7f\x7f\x7f").expect("four Backspaces");
    p.send_line("9000").expect("type");
    p.exp_string("Cells bind address: 127.0.0.1:9000")
        .expect("the edited default is accepted");
    write_and_finish(&mut p);
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(
        caddyfile.contains("https://cells.example.com {"),
        "{caddyfile}"
    );
    assert!(
        caddyfile.contains("reverse_proxy https://127.0.0.1:9000"),
        "{caddyfile}"
    );
}

#[test]
fn a_bare_host_is_offered_with_https() {
    let d = Deployment::new();
    let mut p = spawn_with(&d, &["--public-tls", "internal"]);
    answer(&mut p, "External URL", "files.example.org");
    p.exp_string("has no scheme").expect("the reason");
    answer(&mut p, "External URL (https://files.example.org)", "");
    p.exp_string("External URL: https://files.example.org")
        .expect("the offer is taken with Enter");
    answer(&mut p, "Cells bind address", "");
    write_and_finish(&mut p);
    assert!(d
        .read("/etc/caddy/Caddyfile")
        .contains("https://files.example.org {"));
}

#[test]
fn a_missing_custom_certificate_is_asked_again() {
    let d = Deployment::new();
    // Readable by a `caddy` user where one exists, as on a server.
    open_up(d.root());
    std::fs::create_dir_all(d.path("/certs")).expect("mkdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["cells.example.com".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    std::fs::write(d.path("/certs/cells.pem"), cert.pem()).expect("write");
    std::fs::write(d.path("/certs/cells.key"), key.serialize_pem()).expect("write");
    let mut p = spawn_with(
        &d,
        &[
            "--public-tls",
            "custom",
            "--external-url",
            "https://cells.example.com",
        ],
    );
    answer(&mut p, "Cells bind address", "");
    answer(&mut p, "Certificate file", "/certs/missing.pem");
    p.exp_string("missing.pem: No such file")
        .expect("the reason is shown");
    answer(&mut p, "Use it anyway?", "n");
    answer(&mut p, "Certificate file", "/certs/cells.pem");
    answer(&mut p, "Key file", "/certs/cells.key");
    write_and_finish(&mut p);
    assert!(d
        .read("/etc/caddy/Caddyfile")
        .contains("tls /certs/cells.pem /certs/cells.key"));
}

/// Whether the terminal echoes input (read through the pty's master side).
fn echoes(p: &PtySession) -> bool {
    let master = p.process().get_file_handle().expect("the pty");
    let t = nix::sys::termios::tcgetattr(&master).expect("tcgetattr");
    t.local_flags.contains(nix::sys::termios::LocalFlags::ECHO)
}

#[test]
fn ctrl_c_at_a_password_puts_echo_back() {
    let d = Deployment::new();
    // rexpect starts the terminal with echo off; a person's terminal echoes.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "/bin/stty echo && exec \"$0\" \"$@\""])
        .arg(assert_cmd::cargo::cargo_bin!("cellsctl"))
        .arg("init")
        .arg("--root")
        .arg(d.root());
    let mut p = spawn_command(
        cmd,
        &[
            "--external-url",
            "https://cells.example.com",
            "--public-tls",
            "internal",
            "--upstream-tls",
            "ca",
            "--no-prometheus",
            "--admin-login",
            "admin",
            "--bind",
            "127.0.0.1:8080",
            "--caddy-version",
            "2.11.7",
        ],
    );
    p.exp_string("Cells admin password")
        .expect("the password question");
    // Give the prompt a moment to turn echo off.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!echoes(&p), "the password is typed without echo");
    p.send("half a passw").expect("type");
    p.send_control('c').expect("Ctrl-C");
    let rest = p.exp_eof().expect("the program ends");
    assert!(rest.contains("nothing was written"), "{rest:?}");
    assert!(matches!(
        p.process().wait().expect("wait"),
        WaitStatus::Exited(_, 130)
    ));
    assert!(echoes(&p), "echo is back on after the interrupt");
    assert!(d.snapshot().is_empty());
}

#[test]
fn ctrl_c_at_hash_password_puts_echo_back() {
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "/bin/stty echo && exec \"$0\" hash-password"])
        .arg(assert_cmd::cargo::cargo_bin!("cellsctl"));
    let mut p = spawn_command(cmd, &[]);
    p.exp_string("Password").expect("the hidden question");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!echoes(&p), "the password is typed without echo");
    p.send("half a passw").expect("type");
    p.send_control('c').expect("Ctrl-C");
    let rest = p.exp_eof().expect("the program ends");
    assert!(rest.contains("interrupted"), "{rest:?}");
    assert!(matches!(
        p.process().wait().expect("wait"),
        WaitStatus::Exited(_, 130)
    ));
    assert!(echoes(&p), "echo is back on after the interrupt");
}

/// Where line editing is not possible, questions still go to the terminal:
/// stdout holds the JSON and nothing else.
#[test]
fn questions_never_go_to_stdout_on_a_dumb_terminal() {
    let d = Deployment::new();
    let json = d.secrets.path().join("out.json");
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "exec \"$@\" > \"$0\""])
        .arg(&json)
        .arg(assert_cmd::cargo::cargo_bin!("cellsctl"))
        .arg("init")
        .arg("--root")
        .arg(d.root())
        .arg("--json")
        .env("TERM", "dumb");
    let mut args = few_questions(&d);
    args.extend(["--public-tls".to_string(), "internal".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = spawn_command(cmd, &args);
    // The same answers, in the same way, on a terminal without line editing.
    p.exp_string("External URL").expect("asked on the terminal");
    p.send_line("https://cells.example.com").expect("answer");
    answer(&mut p, "Cells bind address", "");
    answer(&mut p, "Write these files?", "y");
    assert_eq!(exit_code(&mut p), Some(0));
    let stdout = std::fs::read_to_string(&json).expect("stdout");
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not just JSON ({e}):\n{stdout}"));
    assert_eq!(doc["dry_run"], false);
}

/// `adopt` on a terminal: what was read is shown with its source, only what
/// could not be read is asked (the database, not the URL), install.yml's
/// passwords never are, and the review is confirmed before writing.
#[test]
fn adopt_on_a_terminal_asks_only_what_was_not_read() {
    let Some(caddy) = require_tool("caddy", Some("/usr/bin/caddy".into())) else {
        return;
    };
    let d = Deployment::new();
    std::fs::create_dir_all(d.path("/etc/caddy")).expect("mkdir");
    std::fs::write(
        d.path("/etc/caddy/Caddyfile"),
        "cells.example.com {\n  tls tls@example.com\n  reverse_proxy localhost:8080 {\n    transport http {\n      tls\n      tls_insecure_skip_verify\n    }\n  }\n}\n",
    )
    .expect("write");
    let bin = tempfile::tempdir().expect("bin");
    std::os::unix::fs::symlink(&caddy, bin.path().join("caddy")).expect("symlink");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("cellsctl"));
    cmd.arg("adopt").arg("--root").arg(d.root());
    for (k, _) in std::env::vars() {
        if k.starts_with("CELLSCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("PATH", bin.path());
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("spawn in a pty");
    let shown = p
        .exp_string("Cells admin login")
        .expect("what was not read is asked");
    assert!(
        shown.contains("--external-url") && shown.contains("https://cells.example.com"),
        "what was read is shown first:\n{shown}"
    );
    assert!(
        !shown.contains("External URL ›"),
        "the URL is not asked:\n{shown}"
    );
    p.send_line("").expect("send");
    for q in [
        "Database host",
        "Database port",
        "Database name",
        "Database user",
    ] {
        answer(&mut p, q, "");
    }
    answer(&mut p, "Change advanced settings", "n");
    let before = p.exp_string("Write these files?").expect("the review");
    assert!(
        !before.contains("password") && !before.contains("External URL ›"),
        "no install.yml password, and not the URL, is asked:\n{before}"
    );
    p.send_line("y").expect("send");
    assert_eq!(exit_code(&mut p), Some(0));
    let state = d.read("/etc/cellsctl/cellsctl.yaml");
    assert!(
        state.contains("external_url: https://cells.example.com"),
        "{state}"
    );
}
