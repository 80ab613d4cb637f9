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
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&mut d.cmd("init", &args));

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
    let standin = standin::start(bind.parse().expect("addr"), &cert, &key).await;

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
