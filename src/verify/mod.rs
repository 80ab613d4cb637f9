//! `cellsctl verify`: live checks against a running deployment, from the
//! outside in: DNS, the public certificate, the HTTP redirect, Cells through
//! the proxy, gRPC, websockets, Prometheus' auth, and the upstream
//! certificate. Each check says pass or fail, why, and what to look at.

mod http;

use crate::answers::{Answers, ExternalUrl, Scheme};
use crate::check::{finding, Finding, Status};
use base64::Engine;
use bytes::Bytes;
use http::{
    empty, h1_request, h2_request, roots, tcp_connect, tls_connect, Answer, WEBSOCKET_UPGRADE,
};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use std::net::SocketAddr;

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
    pub prometheus: Option<PrometheusProbe>,
    /// Cells' own address and the cellsctl CA, to check the upstream certificate.
    /// In cluster mode, each node (named); one unnamed Cells otherwise.
    pub upstream: Vec<Upstream>,
}

/// One Cells, probed directly: where, its node name, the CA it must chain to.
pub struct Upstream {
    pub node: Option<String>,
    pub addr: SocketAddr,
    pub ca: Option<String>,
}

/// Prometheus behind the proxy: its path, and the login when the password is known.
pub struct PrometheusProbe {
    pub path: String,
    pub user: String,
    pub password: Option<String>,
}

impl Target {
    /// The deployment in these answers (when known) at `url`, resolved by
    /// DNS; `ca` is cellsctl's CA when Cells' certificate is checked against it.
    pub fn new(
        url: &ExternalUrl,
        a: Option<&Answers>,
        prometheus_password: Option<String>,
        ca: Option<String>,
    ) -> Target {
        let prometheus = a
            .and_then(|a| a.prometheus.as_ref())
            .map(|p| PrometheusProbe {
                path: p.path.to_string(),
                user: p.user.to_string(),
                password: prometheus_password,
            });
        Target {
            host: url.host.san_form(),
            authority: url.host_port(),
            http_host: url.host.url_form(),
            plain_http: url.scheme == Scheme::Http,
            port: url.port.unwrap_or(match url.scheme {
                Scheme::Https => 443,
                Scheme::Http => 80,
            }),
            connect: None,
            connect_http: None,
            extra_roots: None,
            prometheus,
            upstream: match a.map(|a| (a, &a.cluster)) {
                None => Vec::new(),
                Some((a, None)) => vec![Upstream {
                    node: None,
                    addr: a.bind.dial(),
                    ca,
                }],
                Some((_, Some(c))) => c
                    .nodes
                    .iter()
                    .map(|n| Upstream {
                        node: Some(n.name.to_string()),
                        addr: n.addr,
                        ca: ca.clone(),
                    })
                    .collect(),
            },
        }
    }
}

fn pass(check: &str, detail: impl Into<String>) -> Finding {
    finding(check, Status::Pass, detail)
}

fn fail(check: &str, detail: impl Into<String>, hint: &str) -> Finding {
    finding(check, Status::Fail, format!("{}; {hint}", detail.into()))
}

fn skipped(check: &str, detail: &str) -> Finding {
    finding(check, Status::Skipped, detail)
}

/// The `Authorization` header for basic auth.
fn basic_auth(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Runs every check; the findings in order.
pub async fn run(t: &Target) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(addr) = dns(t, &mut out).await else {
        return out;
    };
    if t.plain_http {
        out.extend(run_plain(t, addr).await);
        out.extend(upstream_certificate(t).await);
        return out;
    }
    let https_ok = public_tls(t, addr, &mut out).await;
    out.push(redirect(t, addr).await);
    if https_ok {
        out.extend(through_https(t, addr).await);
    } else {
        let mut dependent = vec!["http2", "upstream", "grpc", "websocket"];
        if t.prometheus.is_some() {
            dependent.push("prometheus auth");
        }
        for check in dependent {
            out.push(skipped(
                check,
                "needs the HTTPS connection that failed above",
            ));
        }
    }
    out.extend(upstream_certificate(t).await);
    out
}

/// The address to dial: `--connect`, or the host's first DNS answer.
async fn dns(t: &Target, out: &mut Vec<Finding>) -> Option<SocketAddr> {
    if let Some(a) = t.connect {
        out.push(pass("dns", format!("not resolved: --connect {a} given")));
        return Some(a);
    }
    match tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map(|mut it| it.next())
    {
        Ok(Some(a)) => {
            out.push(pass("dns", format!("{} resolves to {}", t.host, a.ip())));
            Some(a)
        }
        _ => {
            out.push(fail(
                "dns",
                format!("{} does not resolve", t.host),
                "check the DNS record, or use --connect HOST:PORT to test before DNS is live",
            ));
            None
        }
    }
}

/// The public certificate, and HTTP/2 offered; the checks through the site need both.
async fn public_tls(t: &Target, addr: SocketAddr, out: &mut Vec<Finding>) -> bool {
    match tls_connect(addr, &t.host, roots(t.extra_roots.as_deref(), true), b"h2").await {
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
    }
}

/// Plain HTTP on port 80 redirects to the HTTPS site.
async fn redirect(t: &Target, addr: SocketAddr) -> Finding {
    let http_addr = t
        .connect_http
        .unwrap_or_else(|| SocketAddr::new(addr.ip(), 80));
    let tcp = match tcp_connect(http_addr).await {
        Ok(tcp) => tcp,
        Err(e) => {
            let why = e.map_or("timed out".to_string(), |e| e.to_string());
            return fail(
                "redirect",
                format!("cannot reach {http_addr}: {why}"),
                "is port 80 open? ACME needs it too",
            );
        }
    };
    match h1_request(tcp, "/verify", &t.http_host, &[("connection", "close")]).await {
        Ok((status, headers)) => {
            let location = headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim();
            if (status == 301 || status == 308)
                && location.starts_with(&format!("https://{}/", t.authority))
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
            format!("{http_addr} did not answer HTTP: {e}"),
            "Caddy should redirect port 80 to HTTPS",
        ),
    }
}

/// The checks that go through the proxy's HTTPS site.
async fn through_https(t: &Target, addr: SocketAddr) -> Vec<Finding> {
    let mut out = vec![
        upstream(t, addr).await,
        grpc(t, addr).await,
        websocket(t, addr).await,
    ];
    if let Some(p) = &t.prometheus {
        out.extend(prometheus(t, addr, p).await);
    }
    out
}

/// A request over HTTP/2 to the public site.
async fn h2(t: &Target, addr: SocketAddr, req: Request<http::Body>) -> Result<Answer, String> {
    let tls = tls_connect(addr, &t.host, roots(t.extra_roots.as_deref(), true), b"h2").await?;
    h2_request(tls, req).await
}

/// Cells answers through the proxy (anything but 502-504), over HTTP/2.
async fn upstream(t: &Target, addr: SocketAddr) -> Finding {
    let req = Request::builder()
        .uri(format!("https://{}/", t.authority))
        .body(empty())
        .map_err(|e| e.to_string());
    match async { h2(t, addr, req?).await }.await {
        Ok((status, ..)) if (502..=504).contains(&status) => fail("upstream", format!("the proxy answered {status}"), "Cells is not reachable from Caddy: is cells.service running, on the bind address, with TLS?"),
        Ok((status, ..)) => pass("upstream", format!("Cells answered {status} through the proxy")),
        Err(e) => fail("upstream", e, "see Caddy's log"),
    }
}

/// gRPC through the proxy: any gRPC status, not an HTML page or a 502.
async fn grpc(t: &Target, addr: SocketAddr) -> Finding {
    let req = Request::builder()
        .method("POST")
        .uri(format!(
            "https://{}/grpc.health.v1.Health/Check",
            t.authority
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(
            Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
                .map_err(|never| match never {})
                .boxed(),
        )
        .map_err(|e| e.to_string());
    match async { h2(t, addr, req?).await }.await {
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
    }
}

/// `/ws/` upgrades to a websocket (HTTP/1.1 over TLS).
async fn websocket(t: &Target, addr: SocketAddr) -> Finding {
    let answer = async {
        let tls = tls_connect(
            addr,
            &t.host,
            roots(t.extra_roots.as_deref(), true),
            b"http/1.1",
        )
        .await?;
        h1_request(tls, "/ws/event", &t.authority, &WEBSOCKET_UPGRADE).await
    };
    websocket_finding(answer.await, |status| {
        let reason = hyper::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        format!("HTTP/1.1 {status} {reason}")
    })
}

/// 101 passes; anything else fails, the answer shown as `shown` spells it.
fn websocket_finding(
    answer: Result<(u16, hyper::HeaderMap), String>,
    shown: impl Fn(u16) -> String,
) -> Finding {
    match answer {
        Ok((101, _)) => pass("websocket", "/ws/ upgrades"),
        Ok((status, _)) => fail(
            "websocket",
            format!("answered {}", shown(status)),
            "websockets under /ws/ must reach Cells",
        ),
        Err(e) => fail("websocket", e, "websockets under /ws/ must reach Cells"),
    }
}

/// Prometheus demands auth (401 without), and accepts it (200 with the password).
async fn prometheus(t: &Target, addr: SocketAddr, p: &PrometheusProbe) -> Vec<Finding> {
    let path = &p.path;
    let probe = |auth: Option<String>| async move {
        let mut req = Request::builder().uri(format!("https://{}{path}/-/ready", t.authority));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        h2(t, addr, req.body(empty()).map_err(|e| e.to_string())?)
            .await
            .map(|r| r.0)
    };
    let mut out = vec![prometheus_auth(path, probe(None).await)];
    if let Some(pw) = &p.password {
        out.push(match probe(Some(basic_auth(&p.user, pw))).await {
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
    out
}

/// Without credentials, Prometheus must answer 401.
fn prometheus_auth(path: &str, answer: Result<u16, String>) -> Finding {
    match answer {
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
    }
}

/// Cells' own certificate chains to the cellsctl CA.
async fn upstream_certificate(t: &Target) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in &t.upstream {
        let (check, who) = match &u.node {
            None => (
                "upstream certificate".to_string(),
                format!("Cells at {}", u.addr),
            ),
            Some(n) => (format!("node {n}"), format!("node {n} at {}", u.addr)),
        };
        out.push(match &u.ca {
            Some(ca) => {
                let name = u.addr.ip().to_string();
                match tls_connect(u.addr, &name, roots(Some(ca), false), b"h2").await {
                    Ok(_) => pass(&check, format!("{who} serves a certificate from the cellsctl CA")),
                    Err(e) => fail(&check, format!("{who}: {e}"), "is cells.service running there, using /etc/cells/tls/cells.crt (CELLS_SITE_TLS_CERT_FILE)?"),
                }
            }
            None if u.node.is_some() => match tcp_connect(u.addr).await {
                Ok(_) => pass(&check, format!("{who} answers (skip-verify mode: its certificate is not checked)")),
                Err(e) => fail(&check, format!("{who} is down: {}", e.map_or("timed out".to_string(), |e| e.to_string())), "is cells.service running there?"),
            },
            None => pass(&check, "skip-verify mode: Cells' own certificate is not checked"),
        });
    }
    out
}

/// A plain-HTTP site (`--public-tls off`): Cells through the proxy, the
/// websocket and Prometheus' auth over HTTP/1.1; gRPC needs TLS.
async fn run_plain(t: &Target, addr: SocketAddr) -> Vec<Finding> {
    let get = |path: &'static str, headers: &'static [(&'static str, &'static str)]| async move {
        let path = match (path, &t.prometheus) {
            ("prometheus", Some(p)) => format!("{}/-/ready", p.path),
            _ => path.to_string(),
        };
        let tcp = tcp_connect(addr).await.map_err(|e| match e {
            Some(e) => format!("cannot connect to {addr}: {e}"),
            None => "timed out".to_string(),
        })?;
        h1_request(tcp, &path, &t.authority, headers).await
    };
    let mut out = vec![finding("https", Status::Warn, "plain HTTP site (--public-tls off): passwords cross the network in clear and Cells Sync cannot work")];
    out.push(match get("/", &[("connection", "close")]).await {
        Ok((status, _)) if (502..=504).contains(&status) => fail(
            "upstream",
            format!("the proxy answered {status}"),
            "Cells is not reachable from Caddy",
        ),
        Ok((status, _)) => pass(
            "upstream",
            format!("Cells answered {status} through the proxy"),
        ),
        Err(e) => fail("upstream", e, "is Caddy running?"),
    });
    out.push(skipped(
        "grpc",
        "gRPC (Cells Sync) needs TLS and HTTP/2 through the proxy",
    ));
    out.push(websocket_finding(
        get("/ws/event", &WEBSOCKET_UPGRADE).await,
        |status| status.to_string(),
    ));
    if let Some(p) = &t.prometheus {
        let path = &p.path;
        let answer = get("prometheus", &[("connection", "close")]).await;
        out.push(prometheus_auth(path, answer.map(|(status, _)| status)));
    }
    out
}

#[cfg(test)]
mod basic_auth_tests {
    #[test]
    fn the_header_is_rfc_7617s() {
        assert_eq!(
            super::basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
