//! A stand-in for Pydio Cells, for the end-to-end tests: TLS with the
//! certificate cellsctl issued (or its own self-signed one), HTTP/1.1 and
//! HTTP/2 on one port, a gRPC service written by hand (unary, server
//! streaming, client streaming), a websocket echo under /ws/, an upload sink,
//! a download source (`/download?bytes=N`, for bench/datapath), and a record
//! of the Host header each request arrived with. Plus the client
//! side: HTTP/1.1 and HTTP/2 over TLS through Caddy, trusting Caddy's local CA.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// What the stand-in saw.
#[derive(Default)]
pub struct Seen {
    /// (Host or :authority, HTTP version) of every request.
    pub hosts: Mutex<Vec<(String, String)>>,
    /// Bytes received by /upload so far (watched while uploading).
    pub uploaded: AtomicU64,
}

pub struct StandIn {
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs_from_pem(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

fn key_from_pem(pem: &str) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("PEM key")
}

/// Starts the stand-in without TLS, as Cells would run with TLS offloaded
/// to the proxy (the set-up Pydio warns breaks Cells Sync).
pub async fn start_plain(addr: SocketAddr) -> StandIn {
    serve(addr, None).await
}

/// Starts the stand-in on `addr` with this certificate and key (PEM).
pub async fn start(addr: SocketAddr, cert_pem: &str, key_pem: &str) -> StandIn {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs_from_pem(cert_pem), key_from_pem(key_pem))
        .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    serve(
        addr,
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
    )
    .await
}

/// Serves HTTP/1.1 and HTTP/2 on `addr`, over TLS when an acceptor is given.
async fn serve(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> StandIn {
    let listener = TcpListener::bind(addr).await.expect("bind the stand-in");
    let seen = Arc::new(Seen::default());
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        // Connections live in this set: stopping the stand-in drops it, which
        // ends them too (Caddy keeps upstream connections alive).
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let tls = tls.clone();
            let seen = seen2.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, seen.clone()));
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                match tls {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = builder.serve_connection_with_upgrades(io, service).await;
                    }
                    None => {
                        let io = hyper_util::rt::TokioIo::new(tcp);
                        let _ = builder.serve_connection_with_upgrades(io, service).await;
                    }
                }
            });
        }
    });
    StandIn { seen, task }
}

fn full(body: impl Into<Bytes>) -> BoxBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

async fn handle(req: Request<Incoming>, seen: Arc<Seen>) -> Result<Response<BoxBody>, Infallible> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    seen.hosts
        .lock()
        .expect("lock")
        .push((host.clone(), format!("{:?}", req.version())));
    let is_grpc = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes().starts_with(b"application/grpc"));
    let path = req.uri().path().to_string();
    let response = if is_grpc && req.version() != hyper::Version::HTTP_2 {
        // As grpc-go (Cells) does: gRPC only over HTTP/2.
        Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "text/plain")
            .body(full("gRPC requires HTTP/2"))
            .expect("response")
    } else if is_grpc {
        grpc(req, &path).await
    } else if path.starts_with("/ws/") {
        websocket(req)
    } else if path == "/upload" {
        upload(req, &seen).await
    } else if path == "/download" {
        download(req.uri().query())
    } else {
        Response::builder()
            .header("x-seen-host", host)
            .body(full("cells stand-in"))
            .expect("response")
    };
    Ok(response)
}

async fn upload(req: Request<Incoming>, seen: &Seen) -> Response<BoxBody> {
    let mut body = req.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(data) = f.data_ref() {
                    total += data.len() as u64;
                    seen.uploaded.store(total, Ordering::SeqCst);
                }
            }
            Err(e) => {
                return Response::builder()
                    .status(500)
                    .body(full(e.to_string()))
                    .expect("response")
            }
        }
    }
    Response::builder()
        .body(full(total.to_string()))
        .expect("response")
}

/// `/download?bytes=N`: N zero bytes, streamed from one static chunk, so a
/// large download costs the server no memory and little CPU.
fn download(query: Option<&str>) -> Response<BoxBody> {
    let size = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("bytes="))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(size) = size else {
        return Response::builder()
            .status(400)
            .body(full("usage: /download?bytes=N"))
            .expect("response");
    };
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(hyper::header::CONTENT_LENGTH, size)
        .body(Zeros(size).boxed())
        .expect("response")
}

/// A body of this many zero bytes.
struct Zeros(u64);

impl hyper::body::Body for Zeros {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        static CHUNK: [u8; 64 * 1024] = [0; 64 * 1024];
        if self.0 == 0 {
            return std::task::Poll::Ready(None);
        }
        let len = self.0.min(CHUNK.len() as u64) as usize;
        self.0 -= len as u64;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..len])))))
    }
    fn is_end_stream(&self) -> bool {
        self.0 == 0
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0)
    }
}

/// A gRPC message frame: compressed flag, length, bytes.
pub fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + msg.len());
    b.extend_from_slice(&[0]);
    b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    b.extend_from_slice(msg);
    b.freeze()
}

/// Splits whole gRPC frames off `buf`.
pub fn take_frames(buf: &mut BytesMut) -> Vec<Bytes> {
    let mut out = Vec::new();
    while buf.len() >= 5 {
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        buf.advance(5);
        out.push(buf.split_to(len).freeze());
    }
    out
}

/// /test.Echo/Unary echoes; /ServerStream answers 3 messages; /ClientStream
/// answers once with how many messages arrived and their concatenation.
async fn grpc(req: Request<Incoming>, path: &str) -> Response<BoxBody> {
    let mut body = req.into_body();
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    buf.extend_from_slice(d);
                    messages.extend(take_frames(&mut buf));
                }
            }
            Err(_) => break,
        }
    }
    let replies: Vec<Bytes> = match path {
        "/test.Echo/Unary" => messages.iter().take(1).cloned().collect(),
        "/test.Echo/ServerStream" => (1..=3).map(|i| Bytes::from(format!("reply {i}"))).collect(),
        "/test.Echo/ClientStream" => {
            let joined: Vec<u8> = messages.iter().flat_map(|m| m.to_vec()).collect();
            vec![Bytes::from(format!(
                "{} messages: {}",
                messages.len(),
                String::from_utf8_lossy(&joined)
            ))]
        }
        _ => vec![],
    };
    let status = if path.starts_with("/test.Echo/") {
        "0"
    } else {
        "12"
    };
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("grpc-status", status.parse().expect("header"));
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = replies
        .iter()
        .map(|r| Ok(Frame::data(grpc_frame(r))))
        .chain(std::iter::once(Ok(Frame::trailers(trailers))))
        .collect();
    Response::builder()
        .header("content-type", "application/grpc")
        .body(futures_stream(frames).boxed())
        .expect("response")
}

/// A ready-made stream of frames (no futures crate needed).
fn futures_stream(
    frames: Vec<Result<Frame<Bytes>, std::io::Error>>,
) -> impl hyper::body::Body<Data = Bytes, Error = std::io::Error> + Send + Sync + 'static {
    struct Frames(std::collections::VecDeque<Result<Frame<Bytes>, std::io::Error>>);
    impl hyper::body::Body for Frames {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Ready(self.0.pop_front())
        }
    }
    Frames(frames.into())
}

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn ws_accept(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let digest = sha1::Sha1::digest(format!("{key}{WS_GUID}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Answers the upgrade, then echoes one text frame.
fn websocket(mut req: Request<Incoming>) -> Response<BoxBody> {
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|k| k.to_str().ok())
        .map(String::from)
    else {
        return Response::builder()
            .status(400)
            .body(full("no websocket key"))
            .expect("response");
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        if let Ok(payload) = read_ws_frame(&mut io).await {
            let _ = io.write_all(&ws_frame(&payload, None)).await;
            let _ = io.flush().await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", ws_accept(&key))
        .body(full(""))
        .expect("response")
}

/// A final text frame; masked when a mask is given (client to server).
pub fn ws_frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x81];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Reads one (small) frame and returns its unmasked payload.
pub async fn read_ws_frame<R: tokio::io::AsyncRead + Unpin>(
    io: &mut R,
) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await?;
    let masked = head[1] & 0x80 != 0;
    let mut len = (head[1] & 0x7f) as usize;
    if len == 126 {
        let mut ext = [0u8; 2];
        io.read_exact(&mut ext).await?;
        len = u16::from_be_bytes(ext) as usize;
    }
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok(payload)
}

/// A TLS connection to Caddy's site, with this ALPN, trusting `root_pem`.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs_from_pem(root_pem) {
        roots.add(cert).expect("root certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to Caddy");
    let name =
        rustls::pki_types::ServerName::try_from(server_name.to_string()).expect("server name");
    connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake with Caddy")
}

/// An HTTP/2 client connection to Caddy (driven in the background).
pub async fn h2_client(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
) -> hyper::client::conn::http2::SendRequest<BoxBody> {
    let tls = connect(addr, server_name, root_pem, b"h2").await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "Caddy speaks HTTP/2"
    );
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    send
}

/// Sends a gRPC call whose request messages come from `messages` (a channel,
/// so a test can pause between them); returns (status, reply messages, grpc-status).
pub async fn grpc_call(
    client: &mut hyper::client::conn::http2::SendRequest<BoxBody>,
    authority: &str,
    method: &str,
    mut messages: tokio::sync::mpsc::Receiver<Bytes>,
) -> (StatusCode, Vec<String>, Option<String>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        while let Some(m) = messages.recv().await {
            if tx.send(Ok(Frame::data(grpc_frame(&m)))).await.is_err() {
                return;
            }
        }
    });
    let body = ChannelBody(rx).boxed();
    let req = Request::builder()
        .method("POST")
        .uri(format!("https://{authority}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .expect("request");
    client.ready().await.expect("connection ready");
    let resp = match client.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                vec![format!("request failed: {e}")],
                None,
            )
        }
    };
    let status = resp.status();
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    let mut grpc_status = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    buf.extend_from_slice(d);
                    replies.extend(
                        take_frames(&mut buf)
                            .iter()
                            .map(|b| String::from_utf8_lossy(b).to_string()),
                    );
                }
                if let Some(t) = f.trailers_ref() {
                    grpc_status = t
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                }
            }
            Err(e) => {
                replies.push(format!("stream error: {e}"));
                break;
            }
        }
    }
    (status, replies, grpc_status)
}

/// An mpsc receiver as a request body: frames arrive when the test sends them.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}
