//! End to end through real Caddy (2.6.2 and 2.11.7), both upstream TLS
//! modes, to the stand-in for Cells: the public Host arrives intact, gRPC
//! (unary, server and client streaming) works over HTTP/2 with trailers, a
//! websocket echoes, a 256 MiB upload streams through without being
//! buffered, and a gRPC stream idle for 75 s survives (and, with the fix
//! removed from a 2.11.7 Caddyfile, does not). Loopback only; every process
//! is stopped when its guard drops.

use crate::common::*;
use crate::standin;
use bytes::Bytes;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Site {
    d: Deployment,
    site: SocketAddr,
    http: SocketAddr,
    root_file: std::path::PathBuf,
    authority: String,
    root_pem: String,
    _caddy: Child,
    _xdg: tempfile::TempDir,
    standin: standin::StandIn,
}

/// Renders with cellsctl, starts the stand-in and Caddy (as `caddy` when root).
async fn bring_up(
    version: &str,
    caddy: &std::path::Path,
    upstream: &str,
    edit: impl Fn(String) -> String,
) -> Site {
    bring_up_with(version, caddy, upstream, edit, &[], false).await
}

/// As `bring_up`, with more cellsctl flags, and optionally a stand-in
/// without TLS (Cells with TLS offloaded to the proxy).
async fn bring_up_with(
    version: &str,
    caddy: &std::path::Path,
    upstream: &str,
    edit: impl Fn(String) -> String,
    extra: &[String],
    plain_standin: bool,
) -> Site {
    let [site, http, admin, cells] = free_ports::<4>();
    let d = Deployment::new();
    open_up(d.root());
    let url = format!("https://cells.localhost:{site}");
    let bind = format!("127.0.0.1:{cells}");
    let args = [
        "--external-url",
        &url,
        "--bind",
        &bind,
        "--public-tls",
        "internal",
        "--upstream-tls",
        upstream,
        "--caddy-version",
        version,
        "--admin-password-file",
        &d.secret_file("admin"),
        "--db-password-file",
        &d.secret_file("db"),
    ]
    .map(String::from);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(extra.iter().map(String::as_str));
    run_ok(
        d.cmd("init", &args)
            .env("CELLSCTL_PROMETHEUS_PASSWORD", PROM_PASSWORD),
    );

    let (cert, key) = if upstream == "ca" {
        (
            d.read("/etc/cells/tls/cells.crt"),
            d.read("/etc/cells/tls/cells.key"),
        )
    } else {
        // Cells' own self-signed certificate, which Caddy does not verify.
        let own = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("self-signed");
        (own.cert.pem(), own.signing_key.serialize_pem())
    };
    let standin = if plain_standin {
        standin::start_plain(bind.parse().expect("addr")).await
    } else {
        standin::start(bind.parse().expect("addr"), &cert, &key).await
    };

    let xdg = tempfile::tempdir().expect("xdg");
    open_up(xdg.path());
    let file = d.root().join("Caddyfile.e2e");
    std::fs::write(
        &file,
        edit(for_test_machine(&caddyfile_below_root(&d), admin, http)),
    )
    .expect("write");
    let mut cmd = Command::new(caddy);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("XDG_DATA_HOME", xdg.path())
        .env("XDG_CONFIG_HOME", xdg.path())
        .env("HOME", xdg.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
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
                "Caddy {version} exited: {status} (files it reads must be readable by user caddy)"
            );
        }
        if root_file.exists() && tokio::net::TcpStream::connect(site_addr).await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Caddy {version} not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The site certificate may lag the listener a little.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let root_pem = std::fs::read_to_string(&root_file).expect("Caddy's local root");
    Site {
        d,
        site: site_addr,
        http: format!("127.0.0.1:{http}").parse().expect("addr"),
        root_file,
        authority: format!("cells.localhost:{site}"),
        root_pem,
        _caddy: caddy,
        _xdg: xdg,
        standin,
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

async fn get(s: &Site) -> (u16, String) {
    let mut client = standin::h2_client(s.site, "cells.localhost", &s.root_pem).await;
    let req = hyper::Request::builder()
        .uri(format!("https://{}/", s.authority))
        .body(http_body_util::BodyExt::boxed(
            http_body_util::BodyExt::map_err(http_body_util::Empty::<Bytes>::new(), |never| {
                match never {}
            }),
        ))
        .expect("request");
    let resp = client.send_request(req).await.expect("GET through Caddy");
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

async fn websocket_echo(s: &Site) -> String {
    let mut tls = standin::connect(s.site, "cells.localhost", &s.root_pem, b"http/1.1").await;
    let request = format!(
        "GET /ws/echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.authority
    );
    tls.write_all(request.as_bytes())
        .await
        .expect("send upgrade");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.expect("read response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "websocket upgrade refused:\n{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    tls.write_all(&standin::ws_frame(
        b"ping through caddy",
        Some([1, 2, 3, 4]),
    ))
    .await
    .expect("send frame");
    let echoed = standin::read_ws_frame(&mut tls).await.expect("echo");
    String::from_utf8_lossy(&echoed).to_string()
}

/// 256 MiB in 1 MiB chunks; the stand-in must see data before the client is
/// done sending (Caddy streams, it does not buffer the body).
async fn upload(s: &Site) {
    const MIB: usize = 1 << 20;
    let mut client = standin::h2_client(s.site, "cells.localhost", &s.root_pem).await;
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(4);
    let seen = s.standin.seen.clone();
    let sender = tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; MIB]);
        let mut streamed_before_end = false;
        for i in 0..256 {
            tx.send(Ok(hyper::body::Frame::data(chunk.clone())))
                .await
                .expect("send chunk");
            if i == 64 {
                // Give the proxy a moment, then look: bytes must be arriving already.
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(10) {
                    if seen.uploaded.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                        streamed_before_end = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        streamed_before_end
    });
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("https://{}/upload", s.authority))
        .body(http_body_util::BodyExt::boxed(ChannelBody(rx)))
        .expect("request");
    let resp = client
        .send_request(req)
        .await
        .expect("upload through Caddy");
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert!(
        sender.await.expect("sender"),
        "the stand-in saw nothing after 64 MiB were sent: Caddy buffers uploads"
    );
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), (256 * MIB).to_string());
}

struct ChannelBody(tokio::sync::mpsc::Receiver<Result<hyper::body::Frame<Bytes>, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_real_caddy_to_the_stand_in() {
    for (version, caddy) in caddy_binaries() {
        for upstream in ["ca", "skip-verify"] {
            let what = format!("Caddy {version}, upstream {upstream}");
            let s = bring_up(version, &caddy, upstream, |c| c).await;

            let (status, body) = get(&s).await;
            assert_eq!((status, body.as_str()), (200, "cells stand-in"), "{what}");
            let hosts = s.standin.seen.hosts.lock().expect("lock").clone();
            let (host, http) = hosts.last().expect("a request arrived").clone();
            assert_eq!(
                host, s.authority,
                "{what}: the public Host (with its port) must reach Cells"
            );
            assert_eq!(http, "HTTP/2.0", "{what}: Caddy must speak HTTP/2 to Cells");

            let mut client = standin::h2_client(s.site, "cells.localhost", &s.root_pem).await;
            let (st, replies, grpc) = standin::grpc_call(
                &mut client,
                &s.authority,
                "/test.Echo/Unary",
                messages(&["hello"]),
            )
            .await;
            assert_eq!(
                (st.as_u16(), replies, grpc.as_deref()),
                (200, vec!["hello".to_string()], Some("0")),
                "{what}: unary"
            );
            let (_, replies, grpc) = standin::grpc_call(
                &mut client,
                &s.authority,
                "/test.Echo/ServerStream",
                messages(&["go"]),
            )
            .await;
            assert_eq!(
                (replies, grpc.as_deref()),
                (
                    vec!["reply 1".into(), "reply 2".into(), "reply 3".into()],
                    Some("0")
                ),
                "{what}: server streaming"
            );
            let (_, replies, grpc) = standin::grpc_call(
                &mut client,
                &s.authority,
                "/test.Echo/ClientStream",
                messages(&["a", "b", "c"]),
            )
            .await;
            assert_eq!(
                (replies, grpc.as_deref()),
                (vec!["3 messages: abc".to_string()], Some("0")),
                "{what}: client streaming"
            );

            assert_eq!(
                websocket_echo(&s).await,
                "ping through caddy",
                "{what}: websocket"
            );
            if upstream == "ca" {
                upload(&s).await;
            }
            drop(s);
        }
    }
}

/// Caddy 2.11.6+ aborts a request body idle for 60 s; the rendered Caddyfile
/// turns that off. All three runs at once, so the suite waits 75 s once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_stream_idle_for_75_seconds_survives() {
    let caddies = caddy_binaries();
    let mut runs = Vec::new();
    for (version, caddy) in &caddies {
        runs.push((
            format!("Caddy {version}"),
            version.to_string(),
            caddy.clone(),
            true,
        ));
        if *version == "2.11.7" {
            // The same Caddyfile with the fix taken out must fail: proof the test can see the trap.
            runs.push((
                format!("Caddy {version} without the fix"),
                version.to_string(),
                caddy.clone(),
                false,
            ));
        }
    }
    let tasks = runs.into_iter().map(|(what, version, caddy, fixed)| {
        tokio::spawn(async move {
            let unfix = move |c: String| {
                if fixed {
                    c
                } else {
                    c.replace(
                        "\t\ttimeouts {\n\t\t\tread_body_idle -1s\n\t\t\twrite_idle -1s\n\t\t}\n",
                        "",
                    )
                }
            };
            let s = bring_up(&version, &caddy, "ca", unfix).await;
            assert_eq!(
                fixed,
                std::fs::read_to_string(s.d.root().join("Caddyfile.e2e"))
                    .expect("read")
                    .contains("read_body_idle")
                    || version == "2.6.2"
            );
            let mut client = standin::h2_client(s.site, "cells.localhost", &s.root_pem).await;
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tx.send(Bytes::from_static(b"first ")).await.expect("send");
            let sender = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(75)).await;
                let _ = tx.send(Bytes::from_static(b"second")).await;
            });
            // A broken stream may also just hang: the working ones answer right
            // after the 75 s, so 95 s is plenty.
            let call = standin::grpc_call(&mut client, &s.authority, "/test.Echo/ClientStream", rx);
            let result = match tokio::time::timeout(Duration::from_secs(95), call).await {
                Ok(r) => r,
                Err(_) => (
                    hyper::StatusCode::GATEWAY_TIMEOUT,
                    vec!["no answer after 95 s".to_string()],
                    None,
                ),
            };
            let _ = sender.await;
            (what, fixed, result)
        })
    });
    for task in tasks {
        let (what, fixed, (status, replies, grpc)) = task.await.expect("run");
        let ok = status == 200
            && grpc.as_deref() == Some("0")
            && replies == vec!["2 messages: first second".to_string()];
        if fixed {
            assert!(
                ok,
                "{what}: the idle stream broke: {status} {replies:?} grpc-status {grpc:?}"
            );
        } else {
            assert!(
                !ok,
                "{what}: expected the 60 s idle abort, but the stream survived"
            );
        }
    }
}

/// A stand-in for Prometheus: answers 200 on every path, plain HTTP.
async fn fake_prometheus(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    })
}

/// `cellsctl verify` against the live set-up: (exit code, output). Runs on
/// this worker thread, letting the runtime's other thread serve the stand-in.
fn verify(s: &Site, password: bool) -> (Option<i32>, String) {
    tokio::task::block_in_place(|| {
        let mut cmd = cellsctl();
        cmd.arg("verify")
            .arg("--root")
            .arg(s.d.root())
            .arg("--connect")
            .arg(s.site.to_string())
            .arg("--connect-http")
            .arg(s.http.to_string())
            .arg("--ca")
            .arg(&s.root_file);
        if password {
            cmd.arg("--prometheus-password-file")
                .arg(s.d.secret_file("prom"));
        }
        let out = cmd.output().expect("run verify");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_live_and_names_what_is_broken() {
    let Some((_, caddy)) = caddy_binaries().into_iter().find(|(v, _)| *v == "2.11.7") else {
        return;
    };
    let [prom] = free_ports::<1>();
    let prom_addr: SocketAddr = format!("127.0.0.1:{prom}").parse().expect("addr");
    let _prometheus = fake_prometheus(prom_addr).await;
    let extra: Vec<String> = [
        "--prometheus",
        "--prometheus-user",
        "sysadminUser",
        "--bcrypt-cost",
        "4",
        "--prometheus-listen",
        &prom_addr.to_string(),
    ]
    .map(String::from)
    .to_vec();

    // Healthy.
    let mut s = bring_up_with("2.11.7", &caddy, "ca", |c| c, &extra, false).await;
    let (code, out) = verify(&s, true);
    assert_eq!(code, Some(0), "{out}");
    for check in [
        "dns",
        "https",
        "http2",
        "redirect",
        "upstream",
        "grpc",
        "websocket",
        "prometheus auth",
        "prometheus login",
        "upstream certificate",
    ] {
        assert!(
            out.contains(&format!("ok    {check}:")),
            "{check} did not pass:\n{out}"
        );
    }

    // Cells stopped: the checks that need it fail, by name.
    s.standin = standin::start_plain("127.0.0.1:0".parse().expect("addr")).await;
    let (code, out) = verify(&s, false);
    assert_eq!(code, Some(1), "{out}");
    for check in ["upstream", "grpc", "websocket", "upstream certificate"] {
        assert!(
            out.contains(&format!("FAIL  {check}:")),
            "{check} not reported:\n{out}"
        );
    }
    assert!(out.contains("ok    prometheus auth"), "{out}");
    drop(s);

    // TLS terminated at Caddy, plain HTTP to Cells: gRPC breaks.
    let offload = |c: String| {
        let start = c
            .find("\t\treverse_proxy https://")
            .expect("upstream block");
        let end = start + c[start..].find("\n\t\t}\n").expect("block end") + "\n\t\t}\n".len();
        let dial = c[start..]
            .split_whitespace()
            .nth(1)
            .expect("dial")
            .trim_start_matches("https://")
            .to_string();
        format!("{}\t\treverse_proxy {dial}\n{}", &c[..start], &c[end..])
    };
    let s = bring_up_with("2.11.7", &caddy, "ca", offload, &extra, true).await;
    assert!(!std::fs::read_to_string(s.d.root().join("Caddyfile.e2e"))
        .expect("read")
        .contains("reverse_proxy https://"));
    let (code, out) = verify(&s, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("ok    upstream:"),
        "plain GETs still work:\n{out}"
    );
    assert!(
        out.contains("FAIL  grpc:") && out.contains("text/plain"),
        "{out}"
    );
    assert!(out.contains("FAIL  upstream certificate:"), "{out}");
    drop(s);

    // The basic auth removed: Prometheus is open, and verify says so.
    let no_auth = |c: String| {
        let start = c.find("\t\tbasic_auth {").expect("auth block");
        let end = start + c[start..].find("\t\t}\n").expect("end") + "\t\t}\n".len();
        format!("{}{}", &c[..start], &c[end..])
    };
    let s = bring_up_with("2.11.7", &caddy, "ca", no_auth, &extra, false).await;
    let (code, out) = verify(&s, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL  prometheus auth:") && out.contains("answered 200 without credentials"),
        "{out}"
    );
}
