//! Interrupted, refused and impossible writes lose nothing: every file is
//! entirely old or entirely new, and the next run finishes the work without
//! mistaking cellsctl's own half-finished files for hand edits.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const NEW_URL: &str = "https://files.example.org";

fn is_pem(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.starts_with("-----BEGIN ")
        && text.trim_end().ends_with("-----")
        && text.matches("-----END ").count() == 1
}

/// The text files of a clean URL change, for comparison (PEM files vary by run).
fn reference_after_url_change() -> BTreeMap<String, Vec<u8>> {
    let d = init_tutorial("2.11.7");
    run_ok(&mut d.cmd("regenerate", &["--external-url", NEW_URL]));
    relative(&d, d.snapshot())
}

fn relative(d: &Deployment, snap: BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    snap.into_iter()
        .map(|(p, b)| {
            (
                p.strip_prefix(d.root())
                    .expect("below root")
                    .display()
                    .to_string(),
                b,
            )
        })
        .collect()
}

fn leftovers(d: &Deployment) -> Vec<String> {
    d.snapshot()
        .keys()
        .map(|p| p.display().to_string())
        .filter(|p| p.contains("/.cellsctl-") || p.ends_with("cellsctl.intent"))
        .collect()
}

/// Each file is the old one or the new one, never a mix or a fragment.
fn assert_each_old_or_new(
    what: &str,
    now: &BTreeMap<String, Vec<u8>>,
    old: &BTreeMap<String, Vec<u8>>,
    new: &BTreeMap<String, Vec<u8>>,
) {
    for (path, bytes) in now {
        if path.ends_with("cellsctl.intent") {
            continue;
        }
        // A temp file can outlive a SIGKILL between its creation and its
        // rename; the next run removes it (asserted by the callers).
        if path.contains("/.cellsctl-") {
            continue;
        }
        if old.get(path) == Some(bytes) {
            continue;
        }
        if path.ends_with(".crt") || path.ends_with(".key") {
            assert!(is_pem(bytes), "{what}: {path} is not a whole PEM file");
        } else if path.ends_with("cellsctl.yaml") {
            panic!("{what}: the state changed although the run did not finish");
        } else {
            assert_eq!(
                new.get(path),
                Some(bytes),
                "{what}: {path} is neither old nor new"
            );
        }
    }
}

#[test]
fn failure_after_each_write_then_the_next_run_finishes() {
    let reference = reference_after_url_change();
    // A URL change writes 6 files before the state; fail after each of them.
    for n in 1..=6 {
        let d = init_tutorial("2.11.7");
        let old = relative(&d, d.snapshot());
        let out = d
            .cmd("regenerate", &["--external-url", NEW_URL])
            .env("CELLSCTL_TEST_FAULT", format!("fail-after:{n}"))
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(1),
            "fail-after:{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("injected failure after {n}"))
        );
        // A clean failure leaves no temp file, only the intent record.
        assert_eq!(
            leftovers(&d).len(),
            1,
            "fail-after:{n}: {:?}",
            leftovers(&d)
        );
        assert_each_old_or_new(
            &format!("fail-after:{n}"),
            &relative(&d, d.snapshot()),
            &old,
            &reference,
        );

        // Same command again: no false drift refusal, the work completes.
        let stdout = run_ok(&mut d.cmd("regenerate", &["--external-url", NEW_URL]));
        assert!(
            stdout.contains("an earlier run was interrupted"),
            "{stdout}"
        );
        let now = relative(&d, d.snapshot());
        for (path, bytes) in &reference {
            if !(path.ends_with(".crt")
                || path.ends_with(".key")
                || path.ends_with("cellsctl.yaml"))
            {
                assert_eq!(
                    now.get(path),
                    Some(bytes),
                    "fail-after:{n}: {path} after the resumed run"
                );
            }
        }
        assert_cells_pki_consistent(&d);
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
        let stdout = run_ok(&mut d.cmd("regenerate", &[]));
        assert!(
            stdout.contains("Nothing to change."),
            "fail-after:{n}: {stdout}"
        );
    }
}

#[test]
fn sigkill_mid_apply_then_the_next_run_finishes() {
    let reference = reference_after_url_change();
    let d = init_tutorial("2.11.7");
    let old = relative(&d, d.snapshot());
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("cellsctl"));
    cmd.args([
        "regenerate",
        "--non-interactive",
        "--external-url",
        NEW_URL,
        "--root",
    ])
    .arg(d.root())
    .env("CELLSCTL_TEST_FAULT", "pause-after:3:30")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let mut child = Child(cmd.spawn().expect("spawn"));
    // Wait until three files are new (the pause), then kill it hard.
    let start = std::time::Instant::now();
    loop {
        let now = relative(&d, d.snapshot());
        let changed = now
            .iter()
            .filter(|(p, b)| {
                old.get(*p) != Some(*b) && !p.ends_with("intent") && !p.contains("/.cellsctl-")
            })
            .count();
        if changed >= 3 {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 20,
            "the run never reached its pause"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.0.kill().expect("SIGKILL");
    let _ = child.0.wait();
    assert_each_old_or_new("SIGKILL", &relative(&d, d.snapshot()), &old, &reference);
    assert!(
        d.path("/etc/cellsctl/cellsctl.intent").exists(),
        "the intent record survives the kill"
    );

    // A temp file as a crash mid-write would leave it.
    std::fs::write(d.path("/etc/caddy/.cellsctl-AbC123"), "half").expect("write");
    let stdout = run_ok(&mut d.cmd("regenerate", &["--external-url", NEW_URL]));
    assert!(
        stdout.contains("Removed a temporary file left by an interrupted run"),
        "{stdout}"
    );
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
    assert_cells_pki_consistent(&d);
    assert_eq!(
        d.read("/etc/caddy/Caddyfile").as_bytes(),
        reference["etc/caddy/Caddyfile"].as_slice()
    );
}

#[test]
fn deleted_file_is_recreated_only_with_restore() {
    let d = init_tutorial("2.11.7");
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    std::fs::remove_file(d.path("/etc/caddy/Caddyfile")).expect("rm");
    let before = d.snapshot();
    let out = d.cmd("regenerate", &[]).output().expect("run");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deleted by hand") && err.contains("--restore"),
        "{err}"
    );
    assert_eq!(d.snapshot(), before, "nothing written");
    // --force is about edits; it does not bring deleted files back.
    assert_eq!(
        d.cmd("regenerate", &["--force"])
            .output()
            .expect("run")
            .status
            .code(),
        Some(3)
    );
    let stdout = run_ok(&mut d.cmd("regenerate", &["--restore"]));
    assert!(stdout.contains("restore"), "{stdout}");
    assert_eq!(d.read("/etc/caddy/Caddyfile"), caddyfile);
}

/// A tmpfs mounted for one test, unmounted on drop (even when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let is_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        if !is_root {
            if std::env::var_os("CI").is_some() {
                panic!("CI runs as root: mounting a tmpfs is required");
            }
            eprintln!("SKIP: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("mount point").keep();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Tmpfs(dir))
    }

    fn remount_read_only(&self) {
        let out = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "remount ro: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn snapshot_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).expect("read"));
            }
        }
    }
    out
}

#[test]
fn read_only_target_fails_cleanly() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.extend(["--root".into(), fs.0.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(cellsctl().arg("init").args(&args));
    fs.remount_read_only();
    let out = cellsctl()
        .args(["regenerate", "--root"])
        .arg(&fs.0)
        .args(["--external-url", NEW_URL])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&fs.0.display().to_string()) && err.contains("Read-only file system"),
        "{err}"
    );
    // (Nothing can have changed on a read-only mount; what this proves is the
    // clean exit 1 naming the path, instead of a panic or a partial report.)
}

#[test]
fn full_disk_fails_cleanly() {
    // Room for a few files but not all of them.
    let Some(fs) = Tmpfs::mount("20k") else {
        return;
    };
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.extend(["--root".into(), fs.0.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cellsctl().arg("init").args(&args).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&fs.0.display().to_string()) && err.contains("No space left on device"),
        "{err}"
    );
    // Whatever was written is whole: a file that exists has its final content.
    let reference = init_tutorial("2.11.7");
    for (path, bytes) in snapshot_of(&fs.0) {
        let rel = path
            .strip_prefix(&fs.0)
            .expect("below")
            .display()
            .to_string();
        assert!(!rel.contains(".cellsctl-"), "temp file left: {rel}");
        if rel.ends_with(".crt") || rel.ends_with(".key") {
            assert!(is_pem(&bytes), "{rel} is not whole");
        } else if !rel.ends_with("cellsctl.intent") {
            assert_eq!(
                bytes,
                std::fs::read(reference.path(&rel)).expect("reference"),
                "{rel} is not whole"
            );
        }
    }
}
