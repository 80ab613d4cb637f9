//! The Caddyfile, rendered for one Caddy version (see the Caddy reference:
//! directive names, the upstream CA option, the Host header and the idle
//! body timeout all differ between releases).

use super::{paths, render_template};
use crate::answers::{Answers, CaddyVersion, PublicTls, UpstreamTls};
use crate::error::Error;
use serde::Serialize;

/// What the targeted Caddy release needs or accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Serialize)]
struct PrometheusSite {
    path: String,
    user: String,
    password_hash: String,
    dial: String,
}

#[derive(Serialize)]
struct Context {
    caddy_version: String,
    idle_timeouts_off: bool,
    site_address: String,
    tls_line: Option<String>,
    prometheus: Option<PrometheusSite>,
    basic_auth: &'static str,
    upstream: String,
    keep_host: bool,
    trust_ca: Option<String>,
}

pub fn render(a: &Answers) -> Result<String, Error> {
    let features = CaddyFeatures::of(a.caddy_version);
    let tls_line = match &a.public_tls {
        PublicTls::Acme { email: Some(email) } => Some(format!("tls {email}")),
        PublicTls::Acme { email: None } | PublicTls::Off => None,
        PublicTls::Internal => Some("tls internal".to_string()),
        PublicTls::Custom { cert, key } => Some(format!("tls {cert} {key}")),
    };
    let trust_ca = match a.upstream_tls {
        UpstreamTls::Ca if features.trust_pool => {
            Some(format!("tls_trust_pool file {}", paths::CA_CERT))
        }
        UpstreamTls::Ca => Some(format!("tls_trusted_ca_certs {}", paths::CA_CERT)),
        UpstreamTls::SkipVerify => None,
    };
    let ctx = Context {
        caddy_version: a.caddy_version.to_string(),
        idle_timeouts_off: features.idle_body_timeout,
        site_address: a.external_url.to_string(),
        tls_line,
        prometheus: a.prometheus.as_ref().map(|p| PrometheusSite {
            path: p.path.to_string(),
            user: p.user.to_string(),
            password_hash: p.password_hash.to_string(),
            dial: p.listen.dial().to_string(),
        }),
        basic_auth: if features.basic_auth_underscore {
            "basic_auth"
        } else {
            "basicauth"
        },
        upstream: format!("https://{}", a.bind.dial()),
        keep_host: features.rewrites_upstream_host,
        trust_ca,
    };
    // Optional lines leave a blank line after an opening brace; caddy fmt
    // removes those, and its output is the shape we keep.
    Ok(render_template("Caddyfile.j2", ctx)?.replace("{\n\n", "{\n"))
}
