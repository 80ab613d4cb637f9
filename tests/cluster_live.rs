//! Cluster mode, live: real Caddy (2.6.2 and 2.11.7) with the rendered pool
//! in front of three stand-in Cells nodes on 127.0.0.11-13 (same port), each
//! serving the certificate and key from its own `node-bundle`. A client that
//! keeps its `cells_node` cookie stays on one node; new clients spread; the
//! node a client is pinned to dies and that client's requests all succeed on
//! another node, while `cellsctl verify` names that node as down (and, before,
//! found every node serving its certificate); the node comes back and new clients reach it again once
//! `fail_duration` has passed (not before); gRPC and a websocket pass through
//! the pool; nodes with a certificate not from cellsctl's CA get no request
//! (502). Both versions run at once, so the suite waits for `fail_duration`
//! once. Loopback only; every process is stopped when its guard drops.

use crate::common::*;
use crate::standin;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODES: [(&str, &str); 3] = [
    ("node1", "127.0.0.11"),
    ("node2", "127.0.0.12"),
    ("node3", "127.0.0.13"),
];
/// The Caddyfile's `fail_duration`.
const FAIL_DURATION: Duration = Duration::from_secs(30);
/// How long after the failed dial a new client must reach the node again.
const BACK_WITHIN: Duration = Duration::from_secs(40);
const COOKIE: &str = "cells_node";

struct Node {
    name: &'static str,
    addr: SocketAddr,
    cert: String,
    key: String,
    standin: Option<standin::StandIn>,
}

struct Pool {
    _caddy: Child,
    what: String,
    site: SocketAddr,
    authority: String,
    root_pem: String,
    nodes: Vec<Node>,
    log: PathBuf,
    _xdg: tempfile::TempDir,
    _d: Deployment,
}

/// One visitor: a connection to Caddy and a one-cookie jar.
struct Client {
    conn: hyper::client::conn::http2::SendRequest<standin::BoxBody>,
    cookie: Option<String>,
}

/// What one GET through the pool gave: status (or the error), which node
/// recorded it, and the `cells_node` cookie Caddy set, if any.
#[derive(Debug)]
struct Answer {
    status: Result<u16, String>,
    node: Option<usize>,
    set_cookie: Option<String>,
}

/// Runs `cellsctl node-bundle NAME` and unpacks its tar in memory: path -> bytes.
fn bundle(d: &Deployment, name: &str) -> BTreeMap<String, Vec<u8>> {
    let out = cellsctl()
        .env("PATH", "/nonexistent")
        .arg("node-bundle")
        .arg(name)
        .arg("--root")
        .arg(d.root())
        .args(d.install_secret_args())
        .output()
        .expect("run node-bundle");
    assert!(
        out.status.success(),
        "node-bundle {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("entry path").display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("entry bytes");
        files.insert(path, bytes);
    }
    files
}

/// A file of a bundle, named by its absolute deployment path, as text.
fn bundle_text(files: &BTreeMap<String, Vec<u8>>, name: &str, path: &str) -> String {
    let bytes = files
        .get(path.trim_start_matches('/'))
        .unwrap_or_else(|| panic!("{name}'s bundle has no {path}: {:?}", files.keys()));
    String::from_utf8(bytes.clone()).expect("UTF-8")
}

/// The value of `Environment=KEY=VALUE` in a unit.
fn unit_env<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| {
            l.strip_prefix("Environment=")?
                .strip_prefix(&format!("{key}="))
        })
        .unwrap_or_else(|| panic!("no Environment={key}= in the unit:\n{unit}"))
}

/// Renders the cluster, takes each node's certificate, key and bind from its
/// bundle, starts the stand-ins and Caddy (as `caddy` when root).
async fn bring_up(version: &str, caddy: &Path) -> Pool {
    let what = format!("Caddy {version}");
    let [site, http, admin, port] = free_ports::<4>();
    let d = Deployment::new();
    open_up(d.root());
    let secrets = d.secrets.path();
    std::fs::write(secrets.join("vault"), "vault-token-123\n").expect("write secret");
    std::fs::write(
        secrets.join("mongo"),
        "mongodb://cells:mongo-pass@127.0.0.1:27017/cells\n",
    )
    .expect("write secret");
    std::fs::write(secrets.join("s3"), "s3-secret-456\n").expect("write secret");
    let url = format!("https://cells.localhost:{site}");
    let mut args: Vec<String> = [
        "--external-url",
        &url,
        "--public-tls",
        "internal",
        "--caddy-version",
        version,
        "--etcd-url",
        "etcd://127.0.0.1:2379",
        "--nats-url",
        "nats://127.0.0.1:4222",
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--vault-url",
        "vault://127.0.0.1:8200",
        "--vault-token-file",
        &d.secret_file("vault"),
        "--mongodb-dsn-file",
        &d.secret_file("mongo"),
        "--s3-endpoint",
        "http://127.0.0.1:9000",
        "--s3-access-key",
        "cells-access",
        "--s3-secret-key-file",
        &d.secret_file("s3"),
    ]
    .map(String::from)
    .to_vec();
    for (name, ip) in NODES {
        args.push("--node".into());
        args.push(format!("{name}={ip}:{port}"));
    }
    args.extend(d.install_secret_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bundles: Vec<_> = tokio::task::block_in_place(|| {
        run_ok(&mut d.cmd("init", &args));
        NODES.map(|(name, _)| bundle(&d, name))
    })
    .into();
    let caddyfile = d.read("/etc/caddy/Caddyfile");
    assert!(
        caddyfile.contains(&format!("lb_policy cookie {COOKIE}")),
        "{what}: the pool pins sessions with the cookie {COOKIE}:\n{caddyfile}"
    );

    let mut nodes = Vec::new();
    for ((name, ip), files) in NODES.into_iter().zip(&bundles) {
        let unit = bundle_text(files, name, "/etc/systemd/system/cells.service");
        let addr: SocketAddr = unit_env(&unit, "CELLS_SITE_BIND")
            .parse()
            .expect("CELLS_SITE_BIND is IP:PORT");
        assert_eq!(
            addr,
            format!("{ip}:{port}").parse().expect("addr"),
            "{name}"
        );
        let cert = bundle_text(files, name, unit_env(&unit, "CELLS_SITE_TLS_CERT_FILE"));
        let key = bundle_text(files, name, unit_env(&unit, "CELLS_SITE_TLS_KEY_FILE"));
        let standin = Some(standin::start(addr, &cert, &key).await);
        nodes.push(Node {
            name,
            addr,
            cert,
            key,
            standin,
        });
    }
    let certs: BTreeSet<&str> = nodes.iter().map(|n| n.cert.as_str()).collect();
    assert_eq!(certs.len(), 3, "each node has its own certificate");

    let xdg = tempfile::tempdir().expect("xdg");
    open_up(xdg.path());
    let file = d.root().join("Caddyfile.cluster");
    std::fs::write(
        &file,
        for_test_machine(&caddyfile_below_root(&d), admin, http),
    )
    .expect("write");
    let log = d.root().join("caddy.log");
    let log_file = std::fs::File::create(&log).expect("caddy log");
    let mut cmd = Command::new(caddy);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("XDG_DATA_HOME", xdg.path())
        .env("XDG_CONFIG_HOME", xdg.path())
        .env("HOME", xdg.path())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    if let Some((uid, gid)) = run_as("caddy") {
        std::os::unix::fs::chown(xdg.path(), Some(uid), Some(gid)).expect("chown xdg");
        cmd.uid(uid).gid(gid);
    }
    let mut caddy = Child(cmd.spawn().expect("start caddy"));
    let root_file = xdg.path().join("caddy/pki/authorities/local/root.crt");
    let site_addr: SocketAddr = format!("127.0.0.1:{site}").parse().expect("addr");
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = caddy.0.try_wait() {
            panic!(
                "{what} exited: {status}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if root_file.exists() && tokio::net::TcpStream::connect(site_addr).await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The site certificate may lag the listener a little.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let root_pem = std::fs::read_to_string(&root_file).expect("Caddy's local root");
    Pool {
        _caddy: caddy,
        what,
        site: site_addr,
        authority: format!("cells.localhost:{site}"),
        root_pem,
        nodes,
        log,
        _xdg: xdg,
        _d: d,
    }
}

impl Pool {
    /// The end of Caddy's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("--- Caddy log (last lines) ---\n{tail}")
    }

    /// Requests each node has recorded (a stopped node: 0).
    fn counts(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                n.standin
                    .as_ref()
                    .map_or(0, |s| s.seen.hosts.lock().expect("lock").len())
            })
            .collect()
    }

    /// Every Host the running nodes recorded.
    fn hosts(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.standin.as_ref())
            .flat_map(|s| {
                s.seen
                    .hosts
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|(h, _)| h.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// A new visitor: a new TLS connection to Caddy, no cookie.
    async fn client(&self) -> Client {
        Client {
            conn: standin::h2_client(self.site, "cells.localhost", &self.root_pem).await,
            cookie: None,
        }
    }

    /// GET / with the client's cookie; keeps the cookie Caddy sets, as a browser does.
    async fn get(&self, client: &mut Client) -> Answer {
        let before = self.counts();
        let mut req = hyper::Request::builder().uri(format!("https://{}/", self.authority));
        if let Some(c) = &client.cookie {
            req = req.header(hyper::header::COOKIE, format!("{COOKIE}={c}"));
        }
        let req = req
            .body(http_body_util::BodyExt::boxed(
                http_body_util::BodyExt::map_err(http_body_util::Empty::<Bytes>::new(), |never| {
                    match never {}
                }),
            ))
            .expect("request");
        let status = match client.conn.send_request(req).await {
            Err(e) => Err(e.to_string()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let set_cookie = resp
                    .headers()
                    .get_all(hyper::header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(|v| {
                        let pair = v.split(';').next()?.trim();
                        pair.strip_prefix(&format!("{COOKIE}=")).map(String::from)
                    });
                match http_body_util::BodyExt::collect(resp.into_body()).await {
                    Err(e) => Err(format!("{status}, body: {e}")),
                    Ok(_) => {
                        if let Some(c) = &set_cookie {
                            client.cookie = Some(c.clone());
                        }
                        let after = self.counts();
                        let node = (0..after.len()).find(|&i| after[i] > before[i]);
                        return Answer {
                            status: Ok(status),
                            node,
                            set_cookie,
                        };
                    }
                }
            }
        };
        Answer {
            status,
            node: None,
            set_cookie: None,
        }
    }

    /// `cellsctl verify` through Caddy (Caddy's local root trusted): its
    /// stdout. Run off the runtime's threads, which serve the stand-ins.
    async fn verify(&self) -> String {
        let ca = self._d.root().join("caddy-local-root.crt");
        std::fs::write(&ca, &self.root_pem).expect("write Caddy's root");
        let mut cmd = cellsctl();
        cmd.arg("verify")
            .arg("--root")
            .arg(self._d.root())
            .arg("--connect")
            .arg(self.site.to_string())
            .arg("--ca")
            .arg(&ca);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run verify"))
            .await
            .expect("verify thread");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn name(&self, node: Option<usize>) -> &str {
        node.map_or("no node", |i| self.nodes[i].name)
    }

    /// Stops a node (its listener and every connection) and waits until its
    /// address refuses connections.
    async fn kill(&mut self, i: usize) {
        self.nodes[i].standin = None;
        let start = Instant::now();
        while tokio::net::TcpStream::connect(self.nodes[i].addr)
            .await
            .is_ok()
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{}: {} still accepts connections",
                self.what,
                self.nodes[i].name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let the aborted connection tasks finish closing too.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    async fn websocket_echo(&self) -> String {
        let mut tls =
            standin::connect(self.site, "cells.localhost", &self.root_pem, b"http/1.1").await;
        let request = format!(
            "GET /ws/echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.authority
        );
        tls.write_all(request.as_bytes())
            .await
            .expect("send upgrade");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if let Err(e) = tls.read_exact(&mut byte).await {
                return format!("no upgrade: {e}");
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            return format!("upgrade refused:\n{head}");
        }
        tls.write_all(&standin::ws_frame(
            b"ping through the pool",
            Some([9, 8, 7, 6]),
        ))
        .await
        .expect("send frame");
        match standin::read_ws_frame(&mut tls).await {
            Ok(echoed) => String::from_utf8_lossy(&echoed).to_string(),
            Err(e) => format!("no echo: {e}"),
        }
    }
}

fn messages(list: &[&'static str]) -> tokio::sync::mpsc::Receiver<Bytes> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for m in list {
        tx.try_send(Bytes::from_static(m.as_bytes()))
            .expect("queue");
    }
    rx
}

/// Seconds, for the timing line.
fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Steps 1 to 6 against one Caddy version; returns its timing line.
async fn exercise(version: String, caddy: PathBuf) -> String {
    let t0 = Instant::now();
    let mut p = bring_up(&version, &caddy).await;
    let what = p.what.clone();
    let up = t0.elapsed();

    // 1. A client that keeps its cookie stays on the node of its first answer.
    let t = Instant::now();
    let mut pinned = p.client().await;
    let first = p.get(&mut pinned).await;
    assert_eq!(
        first.status,
        Ok(200),
        "{what}: first request\n{}",
        p.log_tail()
    );
    let home = first
        .node
        .unwrap_or_else(|| panic!("{what}: no node recorded the first request"));
    assert!(
        first.set_cookie.is_some(),
        "{what}: no {COOKIE} cookie on the first answer"
    );
    for n in 1..=20 {
        let a = p.get(&mut pinned).await;
        assert!(
            a.status == Ok(200) && a.node == Some(home),
            "{what}: request {n} with the cookie of {} went to {} ({:?})",
            p.name(Some(home)),
            p.name(a.node),
            a.status
        );
    }

    // 2. New clients (no cookie) are spread over the nodes, each given a cookie.
    let mut spread = BTreeMap::new();
    for n in 1..=30 {
        let mut c = p.client().await;
        let a = p.get(&mut c).await;
        assert_eq!(
            a.status,
            Ok(200),
            "{what}: new client {n}\n{}",
            p.log_tail()
        );
        assert!(
            a.set_cookie.is_some(),
            "{what}: new client {n} got no {COOKIE} cookie"
        );
        *spread.entry(p.name(a.node).to_string()).or_insert(0) += 1;
    }
    assert!(
        spread.len() >= 2 && !spread.contains_key("no node"),
        "{what}: 30 new clients were not spread over the nodes: {spread:?}"
    );
    let sticky = t.elapsed();

    // `verify` probes each node directly: all answer with their certificate.
    let report = p.verify().await;
    for n in &p.nodes {
        let line = format!(
            "ok    node {}: node {} at {} serves a certificate from the cellsctl CA",
            n.name, n.name, n.addr
        );
        assert!(report.contains(&line), "{what}: {line}\n{report}");
    }

    // 3. The pinned node dies: every next request of its client succeeds
    //    elsewhere, and the client is pinned again to one other node.
    let t = Instant::now();
    p.kill(home).await;
    let failed_dial = Instant::now();
    let mut after = Vec::new();
    for n in 1..=30 {
        let a = p.get(&mut pinned).await;
        assert!(
            a.status == Ok(200) && a.node.is_some_and(|i| i != home),
            "{what}: request {n} after {} died: {:?} from {}\n{}",
            p.name(Some(home)),
            a.status,
            p.name(a.node),
            p.log_tail()
        );
        after.push(a.node);
    }
    let new_home: BTreeSet<&str> = after.iter().map(|&i| p.name(i)).collect();
    assert_eq!(
        new_home.len(),
        1,
        "{what}: after the failover the client moved between nodes: {after:?}"
    );
    let failover = t.elapsed();
    // `verify` names the node that is down, and only that one (after the
    // failover: its requests through Caddy no longer reach the dead node,
    // so they cannot move the time it was marked down).
    let report = p.verify().await;
    let down = format!(
        "FAIL  node {}: node {} at {}",
        p.name(Some(home)),
        p.name(Some(home)),
        p.nodes[home].addr
    );
    assert!(report.contains(&down), "{what}: {down}\n{report}");
    assert_eq!(report.matches("FAIL  node ").count(), 1, "{what}: {report}");

    // 4. The node comes back (same address, same certificate): new clients
    //    reach it again once fail_duration has passed since the failed dial,
    //    and not before (the failed dial marked it down).
    let node = &p.nodes[home];
    let standin = standin::start(node.addr, &node.cert, &node.key).await;
    p.nodes[home].standin = Some(standin);
    let mut polls = 0;
    let back_after = loop {
        let mut c = p.client().await;
        let a = p.get(&mut c).await;
        polls += 1;
        assert_eq!(
            a.status,
            Ok(200),
            "{what}: new client {polls} while {} comes back\n{}",
            p.name(Some(home)),
            p.log_tail()
        );
        if a.node == Some(home) {
            break failed_dial.elapsed();
        }
        assert!(
            failed_dial.elapsed() < BACK_WITHIN,
            "{what}: {} back for {}, yet no new client reached it within {} of the failed dial ({polls} tried)\n{}",
            p.name(Some(home)),
            secs(failed_dial.elapsed()),
            secs(BACK_WITHIN),
            p.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        back_after >= FAIL_DURATION - Duration::from_secs(1),
        "{what}: a new client reached {} {} after its failed dial: it was not marked down for fail_duration",
        p.name(Some(home)),
        secs(back_after)
    );

    // 5. gRPC (unary and a server stream) and a websocket through the pool.
    let t = Instant::now();
    let mut client = p.client().await;
    let (st, replies, grpc) = standin::grpc_call(
        &mut client.conn,
        &p.authority,
        "/test.Echo/Unary",
        messages(&["hello pool"]),
    )
    .await;
    assert_eq!(
        (st.as_u16(), replies, grpc.as_deref()),
        (200, vec!["hello pool".to_string()], Some("0")),
        "{what}: gRPC unary through the pool"
    );
    let (st, replies, grpc) = standin::grpc_call(
        &mut client.conn,
        &p.authority,
        "/test.Echo/ServerStream",
        messages(&["go"]),
    )
    .await;
    assert_eq!(
        (st.as_u16(), replies, grpc.as_deref()),
        (
            200,
            vec!["reply 1".into(), "reply 2".into(), "reply 3".into()],
            Some("0")
        ),
        "{what}: gRPC server stream through the pool"
    );
    assert_eq!(
        p.websocket_echo().await,
        "ping through the pool",
        "{what}: websocket through the pool"
    );
    // Every node saw the public Host, port included.
    assert_eq!(
        p.hosts(),
        BTreeSet::from([p.authority.clone()]),
        "{what}: the Host reaching the nodes"
    );
    let streams = t.elapsed();

    // 6. Caddy verifies the nodes against cellsctl's CA: nodes serving
    //    self-signed certificates get no request, the visitor a 502.
    let t = Instant::now();
    for i in 0..p.nodes.len() {
        p.kill(i).await;
    }
    for node in &mut p.nodes {
        let own = rcgen::generate_simple_self_signed(vec![
            node.addr.ip().to_string(),
            "localhost".into(),
        ])
        .expect("self-signed");
        node.standin = Some(
            standin::start(node.addr, &own.cert.pem(), &own.signing_key.serialize_pem()).await,
        );
    }
    let mut c = p.client().await;
    let a = p.get(&mut c).await;
    assert_eq!(
        (a.status.clone(), p.counts()),
        (Ok(502), vec![0, 0, 0]),
        "{what}: nodes with certificates not from cellsctl's CA must not be used\n{}",
        p.log_tail()
    );
    let negative = t.elapsed();

    drop(p);
    format!(
        "{what}: up {}, sticky+spread {} ({spread:?}), failover {}, back after {} from the failed dial ({polls} new clients polled), gRPC+websocket {}, foreign-cert 502 {}, total {}",
        secs(up),
        secs(sticky),
        secs(failover),
        secs(back_after),
        secs(streams),
        secs(negative),
        secs(t0.elapsed())
    )
}

/// Issue 13, proof 1: the pool, live, on both Caddy versions at once (each
/// waits for fail_duration; in parallel the suite pays that once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_pins_spreads_fails_over_and_recovers() {
    let runs: Vec<_> = caddy_binaries()
        .into_iter()
        .map(|(version, caddy)| tokio::spawn(exercise(version.to_string(), caddy)))
        .collect();
    for run in runs {
        match run.await {
            Ok(timings) => eprintln!("{timings}"),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("{e}"),
        }
    }
}
