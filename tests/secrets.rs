//! No plaintext secret in the state, on stdout/stderr, or in a dry run.

use crate::common::*;

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !text.contains(s),
            "{what} contains the secret {s:?}:\n{text}"
        );
    }
}

#[test]
fn secrets_never_leak() {
    let d = Deployment::new();
    let secrets = [ADMIN_PASSWORD, DB_PASSWORD, PROM_PASSWORD];
    let base = [
        "--external-url",
        "https://cells.example.com",
        "--prometheus",
        "--prometheus-user",
        "sysadminUser",
        "--bcrypt-cost",
        "4",
        "--caddy-version",
        "2.11.7",
    ];
    let env = |cmd: &mut assert_cmd::Command| {
        cmd.env("CELLSCTL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CELLSCTL_DB_PASSWORD", DB_PASSWORD)
            .env("CELLSCTL_PROMETHEUS_PASSWORD", PROM_PASSWORD);
    };
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let mut cmd = d.cmd("init", &args);
        env(&mut cmd);
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_no_secret("stdout", &stdout, &secrets);
        if extra == ["--dry-run"] {
            assert!(stdout.contains("+frontendpassword: <redacted>"), "{stdout}");
            assert!(stdout.contains("+dbtcppassword: <redacted>"), "{stdout}");
        }
        assert_no_secret("stderr", &String::from_utf8_lossy(&out.stderr), &secrets);
    }
    let state = d.read("/etc/cellsctl/cellsctl.yaml");
    assert_no_secret("cellsctl.yaml", &state, &secrets);
    // The hash in the state and the Caddyfile verifies the password.
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    let hash = caddyfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("sysadminUser "))
        .expect("basic auth line");
    assert!(state.contains(hash));
    // (That the hash verifies the password is proven by a real Caddy in live.rs.)

    // A dry-run URL change shows the install.yml diff with secrets redacted.
    let mut cmd = d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org", "--dry-run"],
    );
    env(&mut cmd);
    let out = cmd.output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("+  reverseproxyurl: https://files.example.org"),
        "{stdout}"
    );
    assert_no_secret("dry-run diff", &stdout, &secrets);
    // Same password again: same hash kept, the Caddyfile does not change.
    let mut cmd = d.cmd("regenerate", &[]);
    env(&mut cmd);
    let stdout = String::from_utf8_lossy(&cmd.output().expect("run").stdout).to_string();
    assert!(stdout.contains("Nothing to change."), "{stdout}");
}

#[test]
fn hash_password_prints_a_hash_caddy_accepts() {
    let out = cellsctl()
        .args(["hash-password", "--cost", "4"])
        .write_stdin(format!("{PROM_PASSWORD}\n"))
        .output()
        .expect("run");
    assert!(out.status.success());
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(hash.starts_with("$2b$04$") && hash.len() == 60, "{hash}");
    assert!(
        bcrypt::verify(PROM_PASSWORD, &hash).expect("bcrypt"),
        "the hash verifies the password"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PROM_PASSWORD));
    let out = cellsctl()
        .args(["hash-password"])
        .write_stdin("")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn overlapping_and_common_word_secrets_stay_hidden() {
    // One password inside the other, and one equal to other text in the file.
    for (admin, db) in [
        ("hunter", "hunter2XYZsecret"),
        ("admin", "tcp"),
        ("cells", "pydio"),
    ] {
        let d = Deployment::new();
        let out = d
            .cmd(
                "init",
                &[
                    "--external-url",
                    "https://cells.example.com",
                    "--caddy-version",
                    "2.11.7",
                    "--dry-run",
                ],
            )
            .env("CELLSCTL_ADMIN_PASSWORD", admin)
            .env("CELLSCTL_DB_PASSWORD", db)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("+frontendpassword: <redacted>\n")
                && stdout.contains("+dbtcppassword: <redacted>\n"),
            "{stdout}"
        );
        assert!(
            !stdout.contains("2XYZ"),
            "rest of a password shown:\n{stdout}"
        );
        // The other lines are shown as they are: nothing reveals which text equals a password.
        for line in [
            "+frontendlogin: admin\n",
            "+dbconnectiontype: tcp\n",
            "+dbtcpname: cells\n",
            "+dbtcpuser: pydio\n",
        ] {
            assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
        }
    }
}

#[test]
fn an_old_unparseable_install_yml_is_masked_too() {
    let d = Deployment::new();
    std::fs::create_dir_all(d.path("/etc/cells")).expect("mkdir");
    let old = "proxyconfigs:\n  - binds: [0.0.0.0:8080]\nfrontendlogin: admin\nfrontendpassword: OldAdminS3cret\ndbtcppassword: |\n  OldDbS3cret\n";
    std::fs::write(d.path("/etc/cells/install.yml"), old).expect("write");
    let args = tutorial_args(&d, "2.11.7");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.cmd("init", &args).output().expect("run");
    assert_eq!(out.status.code(), Some(3));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("OldAdminS3cret") && !all.contains("OldDbS3cret"),
        "{all}"
    );
    assert!(
        all.contains(" frontendpassword: <redacted>") && all.contains(" dbtcppassword: <redacted>"),
        "{all}"
    );
}

#[test]
fn tools_cellsctl_runs_never_see_the_secrets() {
    let bin = tempfile::tempdir().expect("bin");
    let dump = bin.path().join("env-seen");
    // `caddy version` is run to learn the version to render for.
    let script = format!("#!/bin/sh\nenv >> '{}'\necho v2.11.7\n", dump.display());
    let caddy = bin.path().join("caddy");
    std::fs::write(&caddy, script).expect("write");
    std::fs::set_permissions(&caddy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let d = Deployment::new();
    let out = d
        .cmd("init", &["--external-url", "https://cells.example.com"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .env("CELLSCTL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CELLSCTL_DB_PASSWORD", DB_PASSWORD)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = std::fs::read_to_string(&dump).expect("the tools ran");
    assert!(seen.contains("PATH="), "{seen}");
    assert!(
        !seen.contains("CELLSCTL_")
            && !seen.contains(ADMIN_PASSWORD)
            && !seen.contains(DB_PASSWORD),
        "{seen}"
    );
}
