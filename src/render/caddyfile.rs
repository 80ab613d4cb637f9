//! The Caddyfile, rendered for one Caddy version (see the Caddy reference:
//! directive names, the upstream CA option, the Host header and the idle
//! body timeout all differ between releases). This module states the facts;
//! `templates/Caddyfile.j2` spells the directives.

use super::{paths, render_template, templates};
use crate::answers::{Answers, CaddyVersion, PublicTls, UpstreamTls};
use crate::error::Error;
use serde::Serialize;

/// What the targeted Caddy release needs or accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CaddyFeatures {
    /// `basic_auth` (2.8+) instead of `basicauth`.
    pub basic_auth_underscore: bool,
    /// `tls_trust_pool file` (2.8+) instead of `tls_trusted_ca_certs`.
    pub trust_pool: bool,
    /// 2.11+ replaces the Host header for TLS upstreams unless told not to.
    pub rewrites_upstream_host: bool,
    /// 2.11.6+ aborts requests with a body idle for 60 s, and knows `read_body_idle`.
    pub idle_body_timeout: bool,
}

impl CaddyFeatures {
    pub fn of(v: CaddyVersion) -> CaddyFeatures {
        CaddyFeatures {
            basic_auth_underscore: v >= CaddyVersion::new(2, 8, 0),
            trust_pool: v >= CaddyVersion::new(2, 8, 0),
            rewrites_upstream_host: v >= CaddyVersion::new(2, 11, 0),
            idle_body_timeout: v >= CaddyVersion::new(2, 11, 6),
        }
    }
}

/// How the public certificate is obtained; every key is always present.
#[derive(Serialize)]
struct Tls {
    mode: String,
    email: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Serialize)]
struct PrometheusSite {
    path: String,
    user: String,
    password_hash: String,
    dial: String,
}

/// How Caddy spreads users over the nodes of a cluster. There is no
/// endpoint every stock Cells node serves for an active health check
/// (Pydio's `/pprofs` needs CELLS_ENABLE_PPROF), so health is passive: a
/// node that fails a dial is left for `fail_duration`, and the request is
/// retried on another node within `lb_try_duration`. Status codes do not
/// count: one 504 from Cells' own gateway must not take a node out.
#[derive(Serialize)]
struct Pool {
    cookie: &'static str,
    try_duration: &'static str,
    try_interval: &'static str,
    fail_duration: &'static str,
    max_fails: u32,
    dial_timeout: &'static str,
}

const POOL: Pool = Pool {
    cookie: "cells_node",
    try_duration: "5s",
    try_interval: "250ms",
    fail_duration: "30s",
    max_fails: 1,
    dial_timeout: "3s",
};

#[derive(Serialize)]
struct Context {
    caddy_version: String,
    caddy: CaddyFeatures,
    site_address: String,
    tls: Tls,
    prometheus: Option<PrometheusSite>,
    /// Every Cells to proxy to (one, or each node of a cluster).
    upstream: String,
    /// Cluster mode: pin sessions, leave a dead node, retry elsewhere.
    pool: Option<Pool>,
    /// The CA Caddy verifies Cells against; none with skip-verify.
    trusted_ca: Option<&'static str>,
}

pub fn render(a: &Answers) -> Result<String, Error> {
    let (email, cert, key) = match &a.public_tls {
        PublicTls::Acme { email } => (email.as_ref().map(|e| e.to_string()), None, None),
        PublicTls::Custom { cert, key } => (None, Some(cert.to_string()), Some(key.to_string())),
        PublicTls::Internal | PublicTls::Off => (None, None, None),
    };
    let ctx = Context {
        caddy_version: a.caddy_version.to_string(),
        caddy: CaddyFeatures::of(a.caddy_version),
        site_address: a.external_url.to_string(),
        tls: Tls {
            mode: a.public_tls.mode().to_string(),
            email,
            cert,
            key,
        },
        prometheus: a.prometheus.as_ref().map(|p| PrometheusSite {
            path: p.path.to_string(),
            user: p.user.to_string(),
            password_hash: p.password_hash.to_string(),
            dial: p.listen.dial().to_string(),
        }),
        upstream: match &a.cluster {
            None => format!("https://{}", a.bind.dial()),
            Some(c) => c
                .nodes
                .iter()
                .map(|n| format!("https://{}", n.addr))
                .collect::<Vec<_>>()
                .join(" "),
        },
        pool: a.cluster.as_ref().map(|_| POOL),
        trusted_ca: (a.upstream_tls == UpstreamTls::Ca).then_some(paths::CA_CERT),
    };
    render_template(templates::CADDYFILE, ctx)
}
