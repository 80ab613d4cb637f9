//! Hand edits are refused before anything is written; --force backs up;
//! Debian's untouched default Caddyfile is replaced (with a backup).

use crate::common::*;

fn backups_of(d: &Deployment, deployment_path: &str) -> Vec<std::path::PathBuf> {
    let target = d.path(deployment_path);
    let dir = target.parent().expect("parent");
    let prefix = format!(
        "{}.cellsctl-bak.",
        target.file_name().expect("name").to_string_lossy()
    );
    std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect()
}

#[test]
fn hand_edited_caddyfile_is_refused_then_forced() {
    let d = init_tutorial("2.11.7");
    let edited = d
        .read("/etc/caddy/Caddyfile")
        .replace("tls tls@example.com", "tls admin@example.com");
    std::fs::write(d.path("/etc/caddy/Caddyfile"), &edited).expect("edit");
    let before = d.snapshot();

    let out = d
        .cmd(
            "regenerate",
            &["--external-url", "https://files.example.org"],
        )
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etc/caddy/Caddyfile: edited by hand"), "{err}");
    assert!(
        err.contains("-\ttls admin@example.com") && err.contains("+\ttls tls@example.com"),
        "diff shown:\n{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        d.snapshot(),
        before,
        "nothing written, not even the files that were not edited"
    );

    let stdout = run_ok(&mut d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org", "--force"],
    ));
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(
        caddyfile.contains("https://files.example.org {")
            && caddyfile.contains("tls tls@example.com")
    );
    let backups = backups_of(&d, "/etc/caddy/Caddyfile");
    assert_eq!(backups.len(), 1, "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&backups[0]).expect("backup"),
        edited,
        "backup holds the hand edit"
    );
    assert!(stdout.contains("backup: "), "{stdout}");
    // The new content is recorded: the next run is quiet.
    let stdout = run_ok(&mut d.cmd("regenerate", &[]));
    assert!(stdout.contains("Nothing to change."), "{stdout}");
}

#[test]
fn unknown_existing_file_is_refused() {
    let d = Deployment::new();
    std::fs::create_dir_all(d.path("/etc/caddy")).expect("mkdir");
    std::fs::write(
        d.path("/etc/caddy/Caddyfile"),
        "example.org {\n\trespond \"mine\"\n}\n",
    )
    .expect("write");
    let args = tutorial_args(&d, "2.11.7");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = d.snapshot();
    let out = d.cmd("init", &args).output().expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not written by cellsctl"));
    assert_eq!(d.snapshot(), before, "root untouched");
}

/// Debian's default Caddyfile and the dpkg record of it, copied from this machine.
fn with_debian_default(d: &Deployment) -> Option<String> {
    require_tool("caddy", Some("/usr/bin/caddy".into()))?;
    let default =
        std::fs::read_to_string("/etc/caddy/Caddyfile").expect("Debian's /etc/caddy/Caddyfile");
    let status = std::fs::read_to_string("/var/lib/dpkg/status").expect("dpkg status");
    let stanza = status
        .split("\n\n")
        .find(|s| s.starts_with("Package: caddy\n"))
        .expect("caddy in dpkg status");
    assert!(
        stanza.contains(" /etc/caddy/Caddyfile "),
        "caddy's conffile is recorded"
    );
    std::fs::create_dir_all(d.path("/etc/caddy")).expect("mkdir");
    std::fs::create_dir_all(d.path("/var/lib/dpkg")).expect("mkdir");
    std::fs::write(d.path("/etc/caddy/Caddyfile"), &default).expect("write");
    std::fs::write(d.path("/var/lib/dpkg/status"), format!("{stanza}\n")).expect("write");
    Some(default)
}

#[test]
fn debian_default_caddyfile_is_replaced_with_a_backup() {
    let d = Deployment::new();
    let Some(default) = with_debian_default(&d) else {
        return;
    };
    let args = tutorial_args(&d, "2.6.2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = run_ok(&mut d.cmd("init", &args));
    assert!(
        stdout.contains("replace default") && stdout.contains("the untouched default from caddy"),
        "{stdout}"
    );
    let backups = backups_of(&d, "/etc/caddy/Caddyfile");
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read_to_string(&backups[0]).expect("backup"),
        default
    );
    assert!(d
        .read("/etc/caddy/Caddyfile")
        .contains("https://cells.example.com {"));
}

#[test]
fn edited_debian_default_is_not_a_default() {
    let d = Deployment::new();
    let Some(default) = with_debian_default(&d) else {
        return;
    };
    std::fs::write(d.path("/etc/caddy/Caddyfile"), format!("{default}# mine\n")).expect("edit");
    let args = tutorial_args(&d, "2.6.2");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.cmd("init", &args).output().expect("run");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn dry_run_writes_nothing() {
    let d = Deployment::new();
    let args = tutorial_args(&d, "2.11.7");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--dry-run");
    let stdout = run_ok(&mut d.cmd("init", &args));
    assert!(d.snapshot().is_empty(), "dry run wrote files");
    assert!(
        stdout.contains("+https://cells.example.com {"),
        "diff shown:\n{stdout}"
    );
    assert!(
        stdout.contains("private key, contents not shown"),
        "{stdout}"
    );

    let d = init_tutorial("2.11.7");
    let before = d.snapshot();
    let mtimes = d.mtimes();
    let stdout = run_ok(&mut d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org", "--dry-run"],
    ));
    assert_eq!(d.snapshot(), before);
    assert_eq!(d.mtimes(), mtimes);
    assert!(
        stdout.contains("Would issue the Cells certificate (its names changed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-https://cells.example.com {\n+https://files.example.org {"),
        "{stdout}"
    );
}

#[test]
fn prometheus_flag_repeated_in_debian_defaults_is_refused() {
    let d = Deployment::new();
    std::fs::create_dir_all(d.path("/etc/default")).expect("mkdir");
    std::fs::write(
        d.path("/etc/default/prometheus"),
        "ARGS=\"--web.listen-address=:9091\"\n",
    )
    .expect("write");
    let args = tutorial_args(&d, "2.11.7");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.cmd("init", &args).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--web.listen-address") && err.contains("etc/default/prometheus"),
        "{err}"
    );
    assert!(!d.path("/etc/caddy").exists(), "nothing written");
}
