//! The client side of the live checks: TLS with chosen roots and ALPN, and
//! one request over HTTP/2 or HTTP/1.1 (hyper), each bounded by a timeout.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{HeaderMap, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub(super) const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;
pub(super) type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

pub(super) fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// The system's trust store (Debian's bundle) when asked, plus any extra roots.
pub(super) fn roots(extra: Option<&str>, system: bool) -> rustls::RootCertStore {
    let mut store = rustls::RootCertStore::empty();
    if system {
        if let Ok(bundle) = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt") {
            store.add_parsable_certificates(pem_certs(&bundle));
        }
    }
    if let Some(pem) = extra {
        store.add_parsable_certificates(pem_certs(pem));
    }
    store
}

/// A TCP connection; the error is `None` when the address did not answer in time.
pub(super) async fn tcp_connect(
    addr: SocketAddr,
) -> Result<tokio::net::TcpStream, Option<std::io::Error>> {
    match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(connected) => connected.map_err(Some),
        Err(_) => Err(None),
    }
}

pub(super) async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    roots: rustls::RootCertStore,
    alpn: &[u8],
) -> Result<Tls, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let tcp = tcp_connect(addr).await.map_err(|e| match e {
        Some(e) => format!("cannot connect to {addr}: {e}"),
        None => format!("no answer from {addr} within 10 s"),
    })?;
    tokio::time::timeout(TIMEOUT, connector.connect(server_name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// A response: status, headers, body and trailers.
pub(super) type Answer = (u16, HeaderMap, Bytes, Option<HeaderMap>);

/// One request over HTTP/2 (ALPN h2).
pub(super) async fn h2_request(tls: Tls, req: Request<Body>) -> Result<Answer, String> {
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(conn);
    let resp = tokio::time::timeout(TIMEOUT, send.send_request(req))
        .await
        .map_err(|_| "no response within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| "body timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    Ok((status, headers, collected.to_bytes(), trailers))
}

/// One HTTP/1.1 request (origin-form path, `host` as the Host header);
/// the status and headers of the answer, whose body is not read.
pub(super) async fn h1_request<S>(
    stream: S,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, HeaderMap), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // Upgrades allowed, so a 101 for a websocket is a normal answer.
    tokio::spawn(conn.with_upgrades());
    let mut req = Request::builder().uri(path).header("host", host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(empty()).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(TIMEOUT, send.send_request(req))
        .await
        .map_err(|_| "no response within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((resp.status().as_u16(), resp.headers().clone()))
}

/// The headers of a websocket upgrade request.
pub(super) const WEBSOCKET_UPGRADE: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-version", "13"),
];
