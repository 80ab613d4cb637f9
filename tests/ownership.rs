//! As root, with the Cells user and group present: files get the planned
//! owners and modes, and a loosened mode is put back on the next run.

use crate::common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const USER: &str = "cellsctl-test";

fn ensure_test_user() -> Option<(u32, u32)> {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !is_root {
        if std::env::var_os("CI").is_some() {
            panic!("CI runs as root: the ownership test is required");
        }
        eprintln!("SKIP: ownership needs root");
        return None;
    }
    let exists = std::process::Command::new("getent")
        .args(["passwd", USER])
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let out = std::process::Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .output()
            .expect("useradd");
        // Two tests may race to create it; either way it exists now.
        let now = std::process::Command::new("getent")
            .args(["passwd", USER])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            now,
            "useradd {USER}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let id = |flag: &str| -> u32 {
        let o = std::process::Command::new("id")
            .args([flag, USER])
            .output()
            .expect("id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    Some((id("-u"), id("-g")))
}

#[test]
fn owners_and_modes_follow_the_plan() {
    let Some((uid, gid)) = ensure_test_user() else {
        return;
    };
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.extend(["--cells-user".into(), USER.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut d.cmd("init", &args));
    let meta = |p: &str| std::fs::metadata(d.path(p)).expect("exists");
    let check = |p: &str, mode: u32, owner: u32, group: u32| {
        let m = meta(p);
        assert_eq!(
            (m.permissions().mode() & 0o7777, m.uid(), m.gid()),
            (mode, owner, group),
            "{p}"
        );
    };
    check("/etc/cells/tls/cells.key", 0o640, 0, gid);
    check("/etc/cells/install.yml", 0o600, uid, gid);
    check("/var/cells", 0o751, uid, gid);
    check("/etc/cellsctl/pki/ca.key", 0o600, 0, 0);
    check("/etc/cellsctl/cellsctl.yaml", 0o600, 0, 0);
    check("/etc/caddy/Caddyfile", 0o644, 0, 0);

    // Loosened by hand: put back without rewriting the content.
    let key = d.path("/etc/cells/tls/cells.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mtime = meta("/etc/cells/tls/cells.key").mtime();
    let stdout = run_ok(&mut d.cmd("regenerate", &[]));
    assert!(stdout.contains("fix permissions"), "{stdout}");
    check("/etc/cells/tls/cells.key", 0o640, 0, gid);
    assert_eq!(meta("/etc/cells/tls/cells.key").mtime(), mtime);
}
