//! Step 1: what the deployment needs on this host, checked before anything
//! is written; each miss named with how to get it. And the guard every run
//! that reloads Caddy passes first: the new Caddyfile, validated by the
//! installed caddy.

use super::{exec, Provisioner};
use crate::answers::{Host, PublicTls};
use crate::error::Error;
use crate::plan::Plan;
use crate::render::paths;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

const STEP: &str = "preflight";

impl Provisioner<'_> {
    pub(super) fn preflight(&mut self) -> Result<(), Error> {
        let mut seen = Vec::new();
        if !nix::unistd::geteuid().is_root() {
            return Err(self.fail(
                STEP,
                "not running as root",
                "run cellsctl as root (sudo cellsctl …)",
            ));
        }
        let caddy = self.caddy_installed()?;
        seen.push(format!("caddy {}", self.answers.caddy_version));
        self.cells_binary()?;
        seen.push(format!("Cells binary {}", self.answers.cells.binary));
        if self.answers.prometheus.is_some() && which::which("prometheus").is_err() {
            return Err(self.fail(
                STEP,
                "prometheus is not installed (--prometheus is on)",
                "apt-get install prometheus, or turn Prometheus off with --no-prometheus",
            ));
        }
        self.database_reachable()?;
        seen.push(format!("database at {}", self.answers.database.host));
        self.bind_free()?;
        seen.push(format!("{} free for Cells", self.answers.bind));
        if let Err(why) = caddyfile_guard(&caddy, self.plan) {
            return Err(self.fail(STEP, why, "correct the answers (for a custom certificate: put the certificate and key in place first); nothing was written and Caddy keeps its current site"));
        }
        seen.push("the new Caddyfile validates".into());
        self.record(STEP, super::Status::Done, seen.join(", "));
        Ok(())
    }

    /// caddy on PATH, and the release the Caddyfile is rendered for.
    fn caddy_installed(&mut self) -> Result<PathBuf, Error> {
        let Ok(caddy) = which::which("caddy") else {
            return Err(self.fail(STEP, "caddy is not installed", "apt-get install caddy"));
        };
        let version = exec::run(
            crate::ui::tool(&caddy).arg("version"),
            b"",
            Duration::from_secs(20),
        );
        let installed = match version {
            Ok(ran) if ran.ok() => ran
                .stdout
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_start_matches('v')
                .to_string(),
            Ok(ran) => {
                return Err(self.fail(
                    STEP,
                    format!("`caddy version` failed: {}", ran.message()),
                    "reinstall caddy: apt-get install --reinstall caddy",
                ))
            }
            Err(e) => {
                return Err(self.fail(
                    STEP,
                    format!("`caddy version`: {e}"),
                    "reinstall caddy: apt-get install --reinstall caddy",
                ))
            }
        };
        let rendered = self.answers.caddy_version.to_string();
        if installed != rendered {
            return Err(self.fail(
                STEP,
                format!("the Caddyfile would be rendered for Caddy {rendered}, but {} is Caddy {installed}", caddy.display()),
                &format!("pass --caddy-version {installed} (a version given once is kept in the state), or install Caddy {rendered}"),
            ));
        }
        Ok(caddy)
    }

    fn cells_binary(&mut self) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(self.answers.cells.binary.as_str());
        let why = match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(()),
            Ok(m) if m.is_file() => "is not executable".to_string(),
            Ok(_) => "is not a file".to_string(),
            Err(e) => format!("cannot be used: {e}"),
        };
        Err(self.fail(
            STEP,
            format!("the Cells binary {} {why}", path.display()),
            "download Cells (linux-amd64) from https://pydio.com/en/download and install it there with mode 0755, or give --cells-binary PATH",
        ))
    }

    /// A local database answers root over its unix socket; a remote one
    /// accepts TCP connections.
    fn database_reachable(&mut self) -> Result<(), Error> {
        let db = &self.answers.database;
        if !is_local(&db.host.0) {
            let addr = format!("{}:{}", db.host, db.port);
            let reachable = std::net::ToSocketAddrs::to_socket_addrs(&addr)
                .ok()
                .and_then(|mut a| a.next())
                .is_some_and(|a| {
                    std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok()
                });
            if !reachable {
                return Err(self.fail(STEP, format!("the database at {addr} does not answer"), "start the database server, or check --db-host/--db-port and the firewall between the hosts"));
            }
        }
        let Some(client) = ["mariadb", "mysql"]
            .iter()
            .find_map(|c| which::which(c).ok())
        else {
            return Err(self.fail(
                STEP,
                "no MariaDB/MySQL client (mariadb or mysql) on PATH",
                if is_local(&db.host.0) {
                    "apt-get install mariadb-server"
                } else {
                    "apt-get install mariadb-client"
                },
            ));
        };
        if is_local(&db.host.0) {
            match super::database::as_root(&client, "SELECT 1") {
                Ok(_) => {}
                Err(why) => {
                    return Err(self.fail(STEP, format!("MariaDB does not answer root over its unix socket: {why}"), "apt-get install mariadb-server, then systemctl enable --now mariadb (cellsctl logs in as root over the socket, Debian's default)"));
                }
            }
        }
        self.sql_client = Some(client);
        Ok(())
    }

    /// Nothing but cells.service itself listens on Cells' port.
    fn bind_free(&mut self) -> Result<(), Error> {
        let bind = self.answers.bind.0;
        let Some(holder) = listener(bind) else {
            return Ok(());
        };
        let own = cells_pids();
        match holder {
            Holder::Process(pid, _) if own.contains(&pid) => Ok(()),
            Holder::Process(pid, comm) => Err(self.fail(
                STEP,
                format!("{bind} is already in use by {comm} (pid {pid}), not by cells.service"),
                "stop that program, or give Cells another --bind",
            )),
            Holder::Unknown => Err(self.fail(
                STEP,
                format!("{bind} is already in use (by a process outside this host's view)"),
                "free the port, or give Cells another --bind",
            )),
        }
    }
}

/// Whether the database is on this host (reached as root over the socket).
pub(super) fn is_local(host: &Host) -> bool {
    match host {
        Host::Dns(d) => d == "localhost",
        Host::Ip(ip) => ip.is_loopback(),
    }
}

enum Holder {
    Process(u32, String),
    Unknown,
}

/// The process listening on (or on a wildcard covering) `bind`, if any.
fn listener(bind: SocketAddr) -> Option<Holder> {
    let mut inodes = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            if *state != "0A" {
                continue;
            }
            if let Some((ip, port)) = parse_proc_addr(local, v6) {
                let overlaps = ip == bind.ip() || ip.is_unspecified() || bind.ip().is_unspecified();
                if port == bind.port() && overlaps {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    Some(owner_of(&inodes).unwrap_or(Holder::Unknown))
}

/// `0100007F:1F90` (IPv4, little-endian words) or the 32-hex-digit IPv6 form.
fn parse_proc_addr(s: &str, v6: bool) -> Option<(IpAddr, u16)> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).map(u32::swap_bytes))
        .collect::<Result<_, _>>()
        .ok()?;
    let ip = match (v6, words.as_slice()) {
        (false, [w]) => IpAddr::from(w.to_be_bytes()),
        (true, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The process holding one of these sockets.
fn owner_of(inodes: &[String]) -> Option<Holder> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    let comm = std::fs::read_to_string(entry.path().join("comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    return Some(Holder::Process(pid, comm));
                }
            }
        }
    }
    None
}

/// The processes of cells.service (its cgroup), empty when it is not running.
fn cells_pids() -> Vec<u32> {
    let cgroup = exec::run(
        crate::ui::tool("systemctl").args(["show", "-P", "ControlGroup", "cells.service"]),
        b"",
        Duration::from_secs(10),
    )
    .ok()
    .filter(|r| r.ok())
    .map(|r| r.stdout.trim().to_string())
    .unwrap_or_default();
    if cgroup.is_empty() {
        return Vec::new();
    }
    [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
    ]
    .iter()
    .find_map(|base| std::fs::read_to_string(format!("{base}{cgroup}/cgroup.procs")).ok())
    .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
    .unwrap_or_default()
}

/// The planned Caddyfile, validated by `caddy` before it is written, with
/// the planned CA certificate in place of the one it names (which may not
/// be on disk yet). Caddy's message when it is rejected.
pub fn caddyfile_guard(caddy: &Path, plan: &Plan) -> Result<(), String> {
    let planned = |path: &str| plan.files.iter().find(|f| f.path == path);
    let Some(caddyfile) = planned(paths::CADDYFILE) else {
        return Ok(());
    };
    let scratch = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
    let mut text = String::from_utf8_lossy(&caddyfile.contents).into_owned();
    if let Some(ca) = planned(paths::CA_CERT) {
        let copy = scratch.path().join("ca.crt");
        std::fs::write(&copy, &ca.contents).map_err(|e| format!("temp file: {e}"))?;
        text = text.replace(paths::CA_CERT, &copy.display().to_string());
    }
    let file = scratch.path().join("Caddyfile");
    std::fs::write(&file, text).map_err(|e| format!("temp file: {e}"))?;
    // As root, judged as the `caddy` user Caddy runs as (with its groups):
    // a certificate only root can read must fail here, not at the reload.
    let mut cmd = match caddy_account() {
        Some(uid) => {
            for p in [scratch.path(), &file, &scratch.path().join("ca.crt")] {
                if p.exists() {
                    std::os::unix::fs::chown(p, Some(uid), None)
                        .map_err(|e| format!("temp file: {e}"))?;
                }
            }
            let mut c = crate::ui::tool("runuser");
            c.args(["-u", "caddy", "--"]).arg(caddy);
            c
        }
        None => crate::ui::tool(caddy),
    };
    let ran = exec::run(
        cmd.args(["validate", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("XDG_DATA_HOME", scratch.path())
            .env("XDG_CONFIG_HOME", scratch.path())
            .env("HOME", scratch.path()),
        b"",
        Duration::from_secs(60),
    )
    .map_err(|e| format!("`caddy validate`: {e}"))?;
    if ran.ok() {
        return Ok(());
    }
    let why = ran
        .stderr
        .lines()
        .chain(ran.stdout.lines())
        .rfind(|l| l.contains("Error") || l.contains("error"))
        .unwrap_or(ran.stderr.trim())
        .to_string();
    Err(format!(
        "{} rejects the new Caddyfile: {why}",
        caddy.display()
    ))
}

/// The `caddy` user's uid, when cellsctl runs as root and that user exists
/// (Debian's package creates it) and `runuser` is there to become it.
fn caddy_account() -> Option<u32> {
    if !nix::unistd::geteuid().is_root() || which::which("runuser").is_err() {
        return None;
    }
    let user = nix::unistd::User::from_name("caddy").ok().flatten()?;
    Some(user.uid.as_raw())
}

/// Whether `tls internal` is used: verify then trusts Caddy's local CA.
pub(super) fn internal_tls(public: &PublicTls) -> bool {
    matches!(public, PublicTls::Internal)
}

#[cfg(test)]
mod preflight_tests {
    use super::*;

    #[test]
    fn proc_net_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F90", false),
            Some((IpAddr::from([127, 0, 0, 1]), 8080))
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000000000000:01BB", true),
            Some(("::".parse().unwrap(), 443))
        );
        assert_eq!(
            parse_proc_addr("0000000000000000FFFF00000100007F:1F90", true),
            Some((IpAddr::from([127, 0, 0, 1]), 8080))
        );
    }

    /// The installed caddy judges the planned Caddyfile, with the planned
    /// CA in place of the one not on disk yet; a missing custom
    /// certificate is rejected with Caddy's reason.
    #[test]
    fn the_guard_runs_the_installed_caddy_on_the_planned_file() {
        let Ok(caddy) = which::which("caddy") else {
            assert!(std::env::var_os("CI").is_none(), "caddy is needed under CI");
            eprintln!("SKIP: no caddy on PATH");
            return;
        };
        let out = std::process::Command::new(&caddy)
            .arg("version")
            .output()
            .unwrap();
        let installed = String::from_utf8_lossy(&out.stdout);
        let version = installed
            .split_whitespace()
            .next()
            .unwrap()
            .trim_start_matches('v');
        let mut a: crate::answers::Answers =
            serde_yaml::from_str(include_str!("../../tests/fixtures/answers.yaml")).unwrap();
        a.caddy_version = crate::answers::parsed(version);
        a.upstream_tls = crate::answers::UpstreamTls::Ca;
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let pki = crate::pki::ensure(
            None,
            None,
            &a.external_url.host,
            &crate::pki::wanted_sans(&a),
            a.cert_days,
            now,
        )
        .unwrap();
        let plan_for = |a: &crate::answers::Answers| {
            crate::render::plan(
                a,
                &crate::render::RenderInputs {
                    install_secrets: None,
                    pki: Some(&pki),
                    cluster_pki: None,
                },
            )
            .unwrap()
        };
        assert_eq!(caddyfile_guard(&caddy, &plan_for(&a)), Ok(()));
        a.public_tls = PublicTls::Custom {
            cert: crate::answers::parsed("/nonexistent/cells.pem"),
            key: crate::answers::parsed("/nonexistent/cells.key"),
        };
        let why = caddyfile_guard(&caddy, &plan_for(&a)).unwrap_err();
        assert!(
            why.contains("rejects the new Caddyfile") && why.contains("/nonexistent/cells.pem"),
            "{why}"
        );
    }

    #[test]
    fn a_listener_is_found_with_its_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        match listener(addr) {
            Some(Holder::Process(pid, _)) => assert_eq!(pid, std::process::id()),
            _ => panic!("this test's own listener on {addr} is found"),
        }
        drop(l);
        assert!(listener(addr).is_none());
    }
}
