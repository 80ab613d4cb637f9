//! Local attackers: cellsctl runs as root next to other users. Each test
//! mounts an attack as an unprivileged user (created here; commands run as
//! them with `setpriv`) and shows it fails: the attack itself, or its
//! precondition refused. They need root, run one at a time, and under
//! `CI=true` a run without root fails them rather than skipping.

use crate::common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// The Cells user of these deployments, and another local user.
const CELLS_USER: &str = "ctl-pydio";
const MALLORY: &str = "ctl-mallory";

static SERIAL: Mutex<()> = Mutex::new(());

/// Root, the two users, and the other attack tests kept out while it lasts.
fn attack() -> Option<MutexGuard<'static, ()>> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if run_as("root").is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("the attack tests need root (CI runs them as root)");
        }
        eprintln!("SKIP: the attack tests need root");
        return None;
    }
    for user in [CELLS_USER, MALLORY] {
        let known = Command::new("id").arg(user).output().expect("id");
        if !known.status.success() {
            let made = Command::new("useradd")
                .args(["--system", "--user-group", "--no-create-home"])
                .args(["--shell", "/usr/sbin/nologin", user])
                .status()
                .expect("useradd");
            assert!(made.success(), "useradd {user}");
        }
    }
    Some(guard)
}

/// `script` run by `sh` as this user (its own group, no other privilege).
fn as_user(user: &str, script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
        .args(["/bin/sh", "-c", script])
        .output()
        .expect("setpriv")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o7777
}

fn owner(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("exists").uid()
}

/// A deployment whose Cells user is `CELLS_USER`, below a root other users
/// can traverse (as `/` is on a server).
fn deployment(extra: &[&str]) -> Deployment {
    let d = Deployment::new();
    open_up(d.root());
    let mut args = tutorial_args(&d, "2.11.7");
    args.extend(["--cells-user", CELLS_USER].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut d.cmd("init", &args));
    d
}

/// `cellsctl check` on this deployment (no validators): exit code and stdout.
fn check(d: &Deployment) -> (Option<i32>, String) {
    let out = cellsctl()
        .args(["check", "--root"])
        .arg(d.root())
        .env("PATH", "/nonexistent")
        .output()
        .expect("check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn code(out: &std::process::Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A file of root's that the attacks aim at.
fn root_only_file(d: &Deployment) -> std::path::PathBuf {
    let target = d.secrets.path().join("root-only");
    std::fs::write(&target, "root's secret\n").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    target
}

/// (1) A working dir that is, holds or lies inside a directory of root's
/// files would be given to the Cells user: refused, nothing written.
#[test]
fn the_working_dir_cannot_take_over_a_managed_directory() {
    let Some(_serial) = attack() else { return };
    for wd in [
        "/etc/cells",
        "/etc/cells/tls",
        "/etc/cellsctl",
        "/etc/cellsctl/pki",
        "/etc/caddy",
        "/etc/prometheus",
        "/etc/systemd/system/prometheus.service.d",
        "/etc",
        "/etc/systemd",
        "/etc/cells/data",
        "/etc/systemd/system.conf.d",
        "/usr/local/cells",
    ] {
        let d = Deployment::new();
        open_up(d.root());
        let mut args = tutorial_args(&d, "2.11.7");
        args.extend(["--cells-user", CELLS_USER, "--cells-working-dir", wd].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, err) = code(&d.cmd("init", &args).output().expect("run"));
        assert_eq!(status, Some(2), "{wd}: {err}");
        assert!(err.contains("--cells-working-dir"), "{wd}: {err}");
        assert!(d.snapshot().is_empty(), "{wd}: nothing written");
    }
    // The default stays the Cells user's own, and root's directories root's.
    let d = deployment(&[]);
    let (uid, _) = run_as(CELLS_USER).expect("user");
    assert_eq!(owner(&d.path("/var/cells")), uid);
    for dir in ["/etc/cells", "/etc/cells/tls"] {
        let tried = as_user(
            CELLS_USER,
            &format!("touch {}/planted", d.path(dir).display()),
        );
        assert!(!tried.status.success(), "the Cells user wrote into {dir}");
    }
}

/// (2, 4) A managed directory the Cells user owns lets it swap install.yml
/// for a link to a file of root's while a run is under way; the run would
/// then give that file to the Cells user. Such a directory (or one others
/// can write, or a parent of one) is refused before anything is done, and
/// `check` fails it. (That owner and mode never follow a swapped path is
/// the unit test `a_swapped_path_is_not_followed`.)
#[test]
fn directories_others_can_change_are_refused() {
    let Some(_serial) = attack() else { return };
    let d = deployment(&[]);
    let target = root_only_file(&d);
    let cells = d.path("/etc/cells");
    let (uid, gid) = run_as(CELLS_USER).expect("user");
    std::os::unix::fs::chown(&cells, Some(uid), Some(gid)).expect("chown");
    // install.yml loosened (its owner may), so the run fixes its mode; the
    // attacker swaps it once the run has written its intent record.
    let install = d.path("/etc/cells/install.yml");
    let loosened = as_user(CELLS_USER, &format!("chmod 0640 {}", install.display()));
    assert!(loosened.status.success());
    let intent = d.path("/etc/cellsctl/cellsctl.intent");
    let swap = format!(
        "for i in $(seq 100); do [ -e {intent} ] && break; sleep 0.05; done; \
         [ -e {intent} ] && ln -sf {target} {install}.new && mv -f {install}.new {install}",
        intent = intent.display(),
        target = target.display(),
        install = install.display()
    );
    let attacker = std::thread::spawn(move || as_user(CELLS_USER, &swap));
    let out = d
        .cmd("regenerate", &["--caddy-version", "2.6.2"])
        .env("CELLSCTL_TEST_FAULT", "pause-after:1:3")
        .output()
        .expect("run");
    let _ = attacker.join();
    let (status, err) = code(&out);
    assert_eq!(status, Some(3), "{err}");
    assert!(
        err.contains(&format!("{}: owned by {CELLS_USER}", cells.display())),
        "{err}"
    );
    assert_eq!(
        (owner(&target), mode(&target)),
        (0, 0o600),
        "root's file untouched"
    );
    assert!(!intent.exists(), "refused before the first write");

    // Writable by others, or a parent below the root writable by a group.
    std::os::unix::fs::chown(&cells, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(d.path("/etc/caddy"), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    std::os::unix::fs::chown(d.path("/etc"), None, Some(gid)).expect("chgrp");
    std::fs::set_permissions(d.path("/etc"), std::fs::Permissions::from_mode(0o775))
        .expect("chmod");
    let planted = as_user(
        CELLS_USER,
        &format!("touch {}/etc/cells-planted", d.root().display()),
    );
    assert!(planted.status.success(), "the group can write /etc");
    let (status, err) = code(&d.cmd("regenerate", &[]).output().expect("run"));
    assert_eq!(status, Some(3), "{err}");
    assert!(
        err.contains("/etc/caddy: writable by others (mode 0777)"),
        "{err}"
    );
    assert!(
        err.contains("/etc: writable by its group (mode 0775)"),
        "{err}"
    );
    let (checked, text) = check(&d);
    assert_eq!(checked, Some(1), "{text}");
    assert!(text.contains("FAIL  directory "), "{text}");
}

/// (4) Key material replaced by someone else (here through a loose pki
/// directory) is a hand edit: refused, and adopted only with --force.
#[test]
fn a_swapped_ca_is_not_adopted_silently() {
    let Some(_serial) = attack() else { return };
    let d = deployment(&[]);
    let theirs = deployment(&[]);
    let pki = d.path("/etc/cellsctl/pki");
    let (uid, gid) = run_as(MALLORY).expect("user");
    std::os::unix::fs::chown(&pki, Some(uid), Some(gid)).expect("chown");
    for f in ["ca.crt", "ca.key"] {
        let file = theirs.path(&format!("/etc/cellsctl/pki/{f}"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let replaced = as_user(
            MALLORY,
            &format!(
                "cp {} {}/{f}.new && mv -f {}/{f}.new {}/{f}",
                file.display(),
                pki.display(),
                pki.display(),
                pki.display()
            ),
        );
        assert!(replaced.status.success(), "{replaced:?}");
    }
    let (status, err) = code(&d.cmd("regenerate", &[]).output().expect("run"));
    assert_eq!(status, Some(3), "{err}");
    assert!(err.contains("pki: owned by ctl-mallory"), "{err}");
    // With the directory back to root, the keys themselves are still refused.
    std::os::unix::fs::chown(&pki, Some(0), Some(0)).expect("chown");
    let (status, err) = code(&d.cmd("regenerate", &[]).output().expect("run"));
    assert_eq!(status, Some(3), "{err}");
    assert!(err.contains("ca.key: edited by hand"), "{err}");
    assert!(err.contains("ca.crt: edited by hand"), "{err}");
    // The advice says what --force would do with them, and how to start over.
    assert!(
        err.contains("--force would keep") && err.contains("--restore"),
        "{err}"
    );
    assert!(!err.contains("--force to overwrite"), "{err}");
    // --force takes them, says so, and signs the Cells certificate with them.
    let stdout = run_ok(&mut d.cmd("regenerate", &["--force"]));
    assert!(stdout.contains("taken as it is (--force)"), "{stdout}");
    assert_eq!(
        d.read("/etc/cellsctl/pki/ca.crt"),
        theirs.read("/etc/cellsctl/pki/ca.crt")
    );
    assert_cells_pki_consistent(&d);
    let stdout = run_ok(&mut d.cmd("regenerate", &[]));
    assert!(stdout.contains("Nothing to change."), "{stdout}");
}

/// (5) The Cells user owns install.yml: it edits and opens it to everyone;
/// the backup --force keeps is root's and private, and `check` names it.
#[test]
fn backups_of_secrets_stay_private() {
    let Some(_serial) = attack() else { return };
    let d = deployment(&[]);
    let install = d.path("/etc/cells/install.yml");
    let opened = as_user(
        CELLS_USER,
        &format!(
            "echo '# mine' >> {f} && chmod 0644 {f}",
            f = install.display()
        ),
    );
    assert!(opened.status.success(), "{opened:?}");
    let (status, _) = code(&d.cmd("regenerate", &[]).output().expect("run"));
    assert_eq!(status, Some(3));
    let stdout = run_ok(&mut d.cmd("regenerate", &["--force"]));
    assert!(stdout.contains("backup: "), "{stdout}");
    let backup = std::fs::read_dir(d.path("/etc/cells"))
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("install.yml.cellsctl-bak."))
        .expect("a backup");
    assert_eq!((owner(&backup), mode(&backup)), (0, 0o600));
    let read = as_user(MALLORY, &format!("cat {}", backup.display()));
    assert!(!read.status.success(), "another user read the passwords");
    let (checked, text) = check(&d);
    assert_eq!(checked, Some(0), "a warning, not a failure: {text}");
    assert!(
        text.contains(&format!("WARN  backup {}", backup.display())) && text.contains("rm "),
        "{text}"
    );
}

/// (6) What the Cells user can make of install.yml (huge, deeply nested) is
/// not read: exit 1 naming it, nothing written; a certificate that is due
/// is still renewed.
#[test]
fn install_yml_cannot_make_the_run_read_forever() {
    let Some(_serial) = attack() else { return };
    // What cellsctl writes itself is always read back, brackets and all.
    let brackets = Deployment::new();
    std::fs::write(brackets.secrets.path().join("admin"), "x[[[[[[[[[[1'{{{{\n").expect("write");
    let mut args = tutorial_args(&brackets, "2.11.7");
    args.extend(["--cells-user", CELLS_USER].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut brackets.cmd("init", &args));
    run_ok(&mut brackets.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org"],
    ));

    let d = deployment(&[]);
    let install = d.path("/etc/cells/install.yml");
    let managed = |d: &Deployment| {
        let mut all = d.snapshot();
        all.remove(&d.path("/etc/cells/install.yml"));
        all
    };
    for (what, script) in [
        ("huge", format!("truncate -s 64M {}", install.display())),
        (
            "nested",
            format!(
                "printf 'a: ' > {f} && head -c 60000 /dev/zero | tr '\\0' '[' >> {f}",
                f = install.display()
            ),
        ),
    ] {
        let made = as_user(CELLS_USER, &script);
        assert!(made.status.success(), "{what}: {made:?}");
        let before = managed(&d);
        let (status, err) = code(
            &d.cmd(
                "regenerate",
                &["--external-url", "https://files.example.org"],
            )
            .output()
            .expect("run"),
        );
        assert_eq!(status, Some(1), "{what}: {err}");
        assert!(err.contains("/etc/cells/install.yml: it "), "{what}: {err}");
        assert_eq!(managed(&d), before, "{what}: nothing written");
        // `check` reads it no further either: drift, named.
        let (checked, text) = check(&d);
        assert_eq!(checked, Some(3), "{what}: {text}");
        assert!(
            text.contains("FAIL  drift /etc/cells/install.yml"),
            "{what}: {text}"
        );
    }
    // 800 days on, the certificate is due: renewed, and nothing else.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(800);
    let cert = d.read("/etc/cells/tls/cells.crt");
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    let (status, err) = code(
        &d.cmd(
            "regenerate",
            &["--external-url", "https://files.example.org"],
        )
        .env("CELLSCTL_TEST_NOW", later.unix_timestamp().to_string())
        .output()
        .expect("run"),
    );
    assert_eq!(status, Some(1), "{err}");
    assert_ne!(d.read("/etc/cells/tls/cells.crt"), cert, "renewed");
    assert_eq!(d.read("/etc/caddy/Caddyfile"), caddyfile, "not rewritten");
}

/// (7) One run at a time: a second run waits for the first; another user
/// cannot hold the lock to stop the timer's runs.
#[test]
fn overlapping_runs_take_turns() {
    let Some(_serial) = attack() else { return };
    let d = deployment(&[]);
    let start = std::time::Instant::now();
    let mut first = d.cmd(
        "regenerate",
        &["--external-url", "https://files.example.org"],
    );
    first.env("CELLSCTL_TEST_FAULT", "pause-after:1:3");
    let first = std::thread::spawn(move || first.output().expect("run"));
    // The second starts while the first is paused mid-write.
    let intent = d.path("/etc/cellsctl/cellsctl.intent");
    while !intent.exists() {
        assert!(start.elapsed().as_secs() < 20, "the first run never wrote");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = d
        .cmd(
            "regenerate",
            &["--external-url", "https://other.example.org"],
        )
        .output()
        .expect("run");
    let first = first.join().expect("first run");
    assert!(first.status.success(), "{:?}", code(&first));
    let (status, err) = code(&second);
    assert_eq!(status, Some(0), "{err}");
    assert!(
        err.contains("waiting for another cellsctl run to finish"),
        "the second run did not wait: {err}"
    );
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(
        caddyfile.contains("https://other.example.org {"),
        "{caddyfile}"
    );
    assert!(d
        .read("/etc/systemd/system/cells.service")
        .contains("other.example.org"));
    // A lock held too long: the run gives up, naming it.
    let held = std::fs::File::open(d.path("/etc/cellsctl/cellsctl.lock")).expect("open");
    let held = nix::fcntl::Flock::lock(held, nix::fcntl::FlockArg::LockExclusive).expect("flock");
    let out = d
        .cmd("regenerate", &[])
        .env("CELLSCTL_TEST_LOCK_WAIT", "1")
        .output()
        .expect("run");
    drop(held);
    let (status, err) = code(&out);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("another cellsctl is running"), "{err}");
    let lock = d.path("/etc/cellsctl/cellsctl.lock");
    assert_eq!((owner(&lock), mode(&lock)), (0, 0o600));
    let blocked = as_user(MALLORY, &format!("flock -n {} true", lock.display()));
    assert!(!blocked.status.success(), "another user took the lock");
}

/// (8) Under umask 000, every directory cellsctl creates gets its own mode.
#[test]
fn created_directories_ignore_the_umask() {
    let Some(_serial) = attack() else { return };
    let d = Deployment::new();
    open_up(d.root());
    let root = d.root().join("new/deeper");
    let mut args = tutorial_args(&d, "2.11.7");
    args.extend(
        [
            "--cells-user",
            CELLS_USER,
            "--cells-working-dir",
            "/srv/cells/data",
        ]
        .map(String::from),
    );
    let out = Command::new("/bin/sh")
        .args(["-c", "umask 000 && exec \"$@\"", "sh"])
        .arg(assert_cmd::cargo::cargo_bin!("cellsctl"))
        .args(["init", "--non-interactive", "--root"])
        .arg(&root)
        .args(&args)
        .env("PATH", "/nonexistent")
        .output()
        .expect("run");
    assert!(out.status.success(), "{:?}", code(&out));
    for dir in [
        "",
        "etc",
        "etc/systemd",
        "etc/systemd/system",
        "etc/cellsctl",
        "srv",
        "srv/cells",
    ] {
        assert_eq!(mode(&root.join(dir)), 0o755, "{dir}");
    }
    assert_eq!(mode(&d.root().join("new")), 0o755);
    assert_eq!(mode(&root.join("srv/cells/data")), 0o751);
    let planted = as_user(MALLORY, &format!("touch {}/etc/planted", root.display()));
    assert!(!planted.status.success(), "another user wrote into etc");
}

/// (9) `--json` output lands in logs: it holds no hash of a file with secrets
/// (everything else in install.yml is public, so its hash would let anyone
/// test password guesses offline).
#[test]
fn json_tells_no_hash_of_secrets() {
    let Some(_serial) = attack() else { return };
    let d = Deployment::new();
    let mut args = tutorial_args(&d, "2.11.7");
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = run_ok(&mut d.cmd("init", &args));
    for f in [
        "/etc/cells/install.yml",
        "/etc/cellsctl/pki/ca.key",
        "/etc/cells/tls/cells.key",
    ] {
        use sha2::Digest;
        let hash = format!(
            "{:x}",
            sha2::Sha256::digest(std::fs::read(d.path(f)).expect("read"))
        );
        assert!(!log.contains(&hash), "{f}'s hash is in the output");
    }
}

/// (10) The smaller ones: a state naming a path outside the root is not
/// followed by `check`; no core dump can carry a password out; a weak
/// bcrypt cost, for a hash every local user can read, is warned about.
#[test]
fn smaller_openings_are_closed() {
    let Some(_serial) = attack() else { return };
    let d = deployment(&[]);
    // A FIFO outside the root, named in the state: reading it would hang.
    let fifo = d.secrets.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let ups = "/..".repeat(d.root().components().count() - 1);
    let outside = format!("{ups}{}", fifo.display());
    let state = d.read("/etc/cellsctl/cellsctl.yaml").replace(
        "files:\n",
        &format!("files:\n  {outside}:\n    sha256: 00\n"),
    );
    std::fs::write(d.path("/etc/cellsctl/cellsctl.yaml"), state).expect("write");
    let checked = Command::new("/usr/bin/timeout")
        .arg("20")
        .arg(assert_cmd::cargo::cargo_bin!("cellsctl"))
        .args(["check", "--root"])
        .arg(d.root())
        .env("PATH", "/nonexistent")
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&checked.stdout);
    assert_ne!(checked.status.code(), Some(124), "check hung on the FIFO");
    assert!(!text.contains("fifo"), "{text}");

    // Not dumpable: /proc/PID of a process of MALLORY's belongs to root.
    // (A copy of the binary any user can run, wherever the build lives.)
    let bin = tempfile::tempdir().expect("dir");
    open_up(bin.path());
    let copy = bin.path().join("cellsctl");
    std::fs::copy(assert_cmd::cargo::cargo_bin!("cellsctl"), &copy).expect("copy");
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "echo PID=$$; exec \"$@\"", "sh", "setpriv"])
        .args([
            "--reuid",
            MALLORY,
            "--regid",
            MALLORY,
            "--init-groups",
            "--",
        ])
        .arg(&copy)
        .args(["init", "--root", "/nonexistent-root"])
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).expect("pty");
    let (_, pid) = p.exp_regex("PID=[0-9]+").expect("the pid");
    p.exp_string("External URL").expect("the first question");
    let status = format!("/proc/{}/status", pid.trim_start_matches("PID="));
    let proc_owner = owner(Path::new(&status));
    p.send_control('c').expect("Ctrl-C");
    let _ = p.exp_eof();
    assert_eq!(
        proc_owner, 0,
        "cellsctl, run by {MALLORY}, can dump its memory"
    );

    // The Caddyfile is everyone's to read, with the hash in it.
    let caddyfile = d.path("/etc/caddy/Caddyfile");
    let read = as_user(
        MALLORY,
        &format!("grep -c sysadminUser {}", caddyfile.display()),
    );
    assert!(read.status.success(), "the hash is readable by any user");
    let stdout = run_ok(&mut d.cmd("regenerate", &[]));
    assert!(
        stdout.contains("hashed with bcrypt cost 4") && stdout.contains("10 or more"),
        "{stdout}"
    );
}
