//! `cellsctl verify`: live checks against a running deployment, from the
//! outside in: DNS, the public certificate, the HTTP redirect, Cells through
//! the proxy, gRPC, websockets, Prometheus' auth, and the upstream
//! certificate. Each check says pass or fail, why, and what to look at.

use crate::check::{Finding, Status};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where and how to probe.
pub struct Target {
    /// The public host (IPv6 without brackets), for DNS and the TLS name.
    pub host: String,
    /// `host[:port]` as a client sends it (IPv6 in brackets; no default port).
    pub authority: String,
    /// The host as sent to port 80 (IPv6 in brackets).
    pub http_host: String,
    pub port: u16,
    /// The site is plain HTTP (`--public-tls off`).
    pub plain_http: bool,
    /// Dial this instead of resolving the host (--connect).
    pub connect: Option<SocketAddr>,
    /// Where plain HTTP is served (default: the HTTPS address with port 80).
    pub connect_http: Option<SocketAddr>,
    /// Extra trusted roots (PEM), e.g. Caddy's internal CA.
    pub extra_roots: Option<String>,
    /// Prometheus path and basic auth.
    pub prometheus: Option<(String, String, Option<String>)>,
    /// Cells' own address and the cellsctl CA, to check the upstream certificate.
    pub upstream: Option<(SocketAddr, Option<String>)>,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn pass(check: &str, detail: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        status: Status::Pass,
        detail: detail.into(),
    }
}

fn fail(check: &str, detail: impl Into<String>, hint: &str) -> Finding {
    Finding {
        check: check.into(),
        status: Status::Fail,
        detail: format!("{}; {hint}", detail.into()),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// The system's trust store (Debian's bundle) plus any extra roots.
fn roots(extra: Option<&str>, system: bool) -> rustls::RootCertStore {
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

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    roots: rustls::RootCertStore,
    alpn: &[u8],
) -> Result<Tls, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let tcp = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no answer from {addr} within 10 s"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tokio::time::timeout(TIMEOUT, connector.connect(server_name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// One request over HTTP/2 (ALPN h2); returns status, headers, body and trailers.
async fn h2_request(
    tls: Tls,
    req: Request<Body>,
) -> Result<(u16, hyper::HeaderMap, Bytes, Option<hyper::HeaderMap>), String> {
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
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

/// One HTTP/1.1 request on a raw stream; returns the response head.
async fn h1_head<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    request: &str,
) -> Result<String, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let read = async {
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
            let mut b = [0u8; 1];
            if stream.read(&mut b).await.map_err(|e| e.to_string())? == 0 {
                break;
            }
            head.push(b[0]);
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .map_err(|_| "no response within 10 s".to_string())??;
    Ok(String::from_utf8_lossy(&head).to_string())
}

fn basic(user: &str, password: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// Runs every check; the findings in order.
pub async fn run(t: &Target) -> Vec<Finding> {
    let mut out = Vec::new();
    let authority = t.authority.clone();

    // DNS.
    let addr = match t.connect {
        Some(a) => {
            out.push(pass("dns", format!("not resolved: --connect {a} given")));
            a
        }
        None => {
            match tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map(|mut it| it.next())
            {
                Ok(Some(a)) => {
                    out.push(pass("dns", format!("{} resolves to {}", t.host, a.ip())));
                    a
                }
                _ => {
                    out.push(fail("dns", format!("{} does not resolve", t.host), "check the DNS record, or use --connect HOST:PORT to test before DNS is live"));
                    return out;
                }
            }
        }
    };

    if t.plain_http {
        out.extend(run_plain(t, addr).await);
        out.extend(upstream_certificate(t).await);
        return out;
    }

    // The public certificate; the checks through it need it.
    let public_roots = || roots(t.extra_roots.as_deref(), true);
    let https_ok = match tls_connect(addr, &t.host, public_roots(), b"h2").await {
        Ok(tls) => {
            let alpn = tls
                .get_ref()
                .1
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).to_string());
            out.push(pass("https", format!("certificate valid for {}", t.host)));
            out.push(match alpn.as_deref() {
                Some("h2") => pass("http2", "the proxy speaks HTTP/2"),
                other => fail(
                    "http2",
                    format!("ALPN gave {other:?}"),
                    "Cells Sync needs HTTP/2 through the proxy",
                ),
            });
            true
        }
        Err(e) => {
            out.push(fail("https", e, "is Caddy running, and is the certificate issued? (with Caddy's internal CA pass --ca)"));
            false
        }
    };

    // HTTP redirects to HTTPS.
    let http_addr = t
        .connect_http
        .unwrap_or_else(|| SocketAddr::new(addr.ip(), 80));
    let redirect = async {
        let mut tcp = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(http_addr))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        h1_head(
            &mut tcp,
            &format!(
                "GET /verify HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                t.http_host
            ),
        )
        .await
    };
    out.push(match redirect.await {
        Ok(head) => {
            let status = head.split_whitespace().nth(1).unwrap_or("");
            let location = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("location:")
                        .then(|| l[9..].trim().to_string())
                })
                .unwrap_or_default();
            if (status == "301" || status == "308")
                && location.starts_with(&format!("https://{authority}/"))
            {
                pass(
                    "redirect",
                    format!("http://{} answers {status} to {location}", t.http_host),
                )
            } else {
                fail(
                    "redirect",
                    format!("HTTP answered {status} {location}"),
                    "Caddy should redirect port 80 to HTTPS",
                )
            }
        }
        Err(e) => fail(
            "redirect",
            format!("cannot reach {http_addr}: {e}"),
            "is port 80 open? ACME needs it too",
        ),
    });

    if https_ok {
        out.extend(through_https(t, addr).await);
    } else {
        let mut dependent = vec!["http2", "upstream", "grpc", "websocket"];
        if t.prometheus.is_some() {
            dependent.push("prometheus auth");
        }
        for check in dependent {
            out.push(Finding {
                check: check.into(),
                status: Status::Skipped,
                detail: "needs the HTTPS connection that failed above".into(),
            });
        }
    }
    out.extend(upstream_certificate(t).await);
    out
}

/// The checks that go through the proxy's HTTPS site.
async fn through_https(t: &Target, addr: SocketAddr) -> Vec<Finding> {
    let mut out = Vec::new();
    let authority = t.authority.clone();
    let public_roots = || roots(t.extra_roots.as_deref(), true);

    // Cells through the proxy, over HTTP/2.
    let get = async {
        let tls = tls_connect(addr, &t.host, public_roots(), b"h2").await?;
        let req = Request::builder()
            .uri(format!("https://{authority}/"))
            .body(empty())
            .map_err(|e| e.to_string())?;
        h2_request(tls, req).await
    };
    out.push(match get.await {
        Ok((status, _, _, _)) if (502..=504).contains(&status) => fail("upstream", format!("the proxy answered {status}"), "Cells is not reachable from Caddy: is cells.service running, on the bind address, with TLS?"),
        Ok((status, _, _, _)) => pass("upstream", format!("Cells answered {status} through the proxy")),
        Err(e) => fail("upstream", e, "see Caddy's log"),
    });

    // gRPC through the proxy: any gRPC status, not an HTML page or a 502.
    let grpc = async {
        let tls = tls_connect(addr, &t.host, public_roots(), b"h2").await?;
        let req = Request::builder()
            .method("POST")
            .uri(format!("https://{authority}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(
                Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .map_err(|e| e.to_string())?;
        h2_request(tls, req).await
    };
    out.push(match grpc.await {
        Ok((status, headers, _, trailers)) => {
            let grpc_status = trailers
                .as_ref()
                .and_then(|t| t.get("grpc-status"))
                .or_else(|| headers.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match grpc_status {
                Some(s) if content_type.starts_with("application/grpc") => {
                    pass("grpc", format!("a gRPC answer (grpc-status {s})"))
                }
                _ => fail(
                    "grpc",
                    format!("HTTP {status}, content-type {content_type:?}, no grpc-status"),
                    "gRPC needs HTTP/2 and TLS from Caddy to Cells (no TLS offloading)",
                ),
            }
        }
        Err(e) => fail("grpc", e, "gRPC needs HTTP/2 end to end"),
    });

    // Websockets.
    let ws = async {
        let mut tls = tls_connect(addr, &t.host, public_roots(), b"http/1.1").await?;
        h1_head(&mut tls, &format!("GET /ws/event HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")).await
    };
    out.push(match ws.await {
        Ok(head) if head.starts_with("HTTP/1.1 101") => pass("websocket", "/ws/ upgrades"),
        Ok(head) => fail(
            "websocket",
            format!("answered {}", head.lines().next().unwrap_or("")),
            "websockets under /ws/ must reach Cells",
        ),
        Err(e) => fail("websocket", e, "websockets under /ws/ must reach Cells"),
    });

    // Prometheus demands auth (and accepts it).
    if let Some((path, user, password)) = &t.prometheus {
        let authority = &authority;
        let probe = |auth: Option<String>| async move {
            let tls = tls_connect(addr, &t.host, public_roots(), b"h2").await?;
            let mut req = Request::builder().uri(format!("https://{authority}{path}/-/ready"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            h2_request(tls, req.body(empty()).map_err(|e| e.to_string())?)
                .await
                .map(|r| r.0)
        };
        out.push(match probe(None).await {
            Ok(401) => pass(
                "prometheus auth",
                format!("{path} answers 401 without credentials"),
            ),
            Ok(s) => fail(
                "prometheus auth",
                format!("{path} answered {s} without credentials"),
                "Prometheus must be behind basic auth",
            ),
            Err(e) => fail("prometheus auth", e, "see Caddy's log"),
        });
        if let Some(pw) = password {
            out.push(match probe(Some(basic(user, pw))).await {
                Ok(200) => pass(
                    "prometheus login",
                    format!("{path} answers 200 with the password"),
                ),
                Ok(s) => fail(
                    "prometheus login",
                    format!("answered {s} with the password"),
                    "is prometheus.service running with cellsctl's drop-in?",
                ),
                Err(e) => fail("prometheus login", e, "see Caddy's log"),
            });
        }
    }

    out
}

/// Cells' own certificate chains to the cellsctl CA.
async fn upstream_certificate(t: &Target) -> Vec<Finding> {
    let mut out = Vec::new();
    match &t.upstream {
        Some((cells, Some(ca))) => {
            let name = cells.ip().to_string();
            out.push(match tls_connect(*cells, &name, roots(Some(ca), false), b"h2").await {
                Ok(_) => pass("upstream certificate", format!("Cells at {cells} serves a certificate from the cellsctl CA")),
                Err(e) => fail("upstream certificate", format!("{cells}: {e}"), "is cells.service using /etc/cells/tls/cells.crt (CELLS_SITE_TLS_CERT_FILE)?"),
            });
        }
        Some((_, None)) => out.push(pass(
            "upstream certificate",
            "skip-verify mode: Cells' own certificate is not checked",
        )),
        None => {}
    }
    out
}

/// A plain-HTTP site (`--public-tls off`): Cells through the proxy, the
/// websocket and Prometheus' auth over HTTP/1.1; gRPC needs TLS.
async fn run_plain(t: &Target, addr: SocketAddr) -> Vec<Finding> {
    let head = |request: String| async move {
        let mut tcp = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        h1_head(&mut tcp, &request).await
    };
    let status = |h: &str| h.split_whitespace().nth(1).unwrap_or("").to_string();
    let host = &t.authority;
    let mut out = vec![Finding {
        check: "https".into(),
        status: Status::Warn,
        detail: "plain HTTP site (--public-tls off): passwords cross the network in clear and Cells Sync cannot work".into(),
    }];
    out.push(
        match head(format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ))
        .await
        {
            Ok(h) if ["502", "503", "504"].contains(&status(&h).as_str()) => fail(
                "upstream",
                format!("the proxy answered {}", status(&h)),
                "Cells is not reachable from Caddy",
            ),
            Ok(h) => pass(
                "upstream",
                format!("Cells answered {} through the proxy", status(&h)),
            ),
            Err(e) => fail("upstream", e, "is Caddy running?"),
        },
    );
    out.push(Finding {
        check: "grpc".into(),
        status: Status::Skipped,
        detail: "gRPC (Cells Sync) needs TLS and HTTP/2 through the proxy".into(),
    });
    out.push(match head(format!("GET /ws/event HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")).await {
        Ok(h) if status(&h) == "101" => pass("websocket", "/ws/ upgrades"),
        Ok(h) => fail("websocket", format!("answered {}", status(&h)), "websockets under /ws/ must reach Cells"),
        Err(e) => fail("websocket", e, "websockets under /ws/ must reach Cells"),
    });
    if let Some((path, _, _)) = &t.prometheus {
        out.push(
            match head(format!(
                "GET {path}/-/ready HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ))
            .await
            {
                Ok(h) if status(&h) == "401" => pass(
                    "prometheus auth",
                    format!("{path} answers 401 without credentials"),
                ),
                Ok(h) => fail(
                    "prometheus auth",
                    format!("{path} answered {} without credentials", status(&h)),
                    "Prometheus must be behind basic auth",
                ),
                Err(e) => fail("prometheus auth", e, "see Caddy's log"),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_auth_header() {
        assert_eq!(
            super::basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(super::basic("a", "b"), "Basic YTpi");
    }
}
