//! The answers model: validated newtypes and the resolved `Answers` struct.
//!
//! Every value that reaches a Caddyfile, YAML or unit file is one of the
//! newtypes below. They are allow-lists: a value that could inject a
//! directive, a key or a line cannot be constructed, so nothing downstream
//! checks again. Each `FromStr` error says what is accepted; clap and the
//! layering code prefix it with the flag's name.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Implements `Display`, `Serialize` (as the string form) and `Deserialize`
/// (through `FromStr`, so a hand-edited state file is validated too).
macro_rules! string_newtype_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// For newtypes around a `String`: `Display` as the string, plus the serde
/// impls above.
macro_rules! string_newtype {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        string_newtype_serde!($t);
    };
}

// For the other answer modules (the cluster's).
pub(crate) use string_newtype;
pub(crate) use string_newtype_serde;

/// For a number within bounds: `FromStr` (the error says what is
/// accepted), `Display`, and the serde impls above.
macro_rules! bounded_number {
    ($t:ident($int:ty), $range:expr, $accepted:expr) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.parse::<$int>() {
                    Ok(n) if ($range).contains(&n) => Ok($t(n)),
                    _ => Err($accepted.into()),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
        string_newtype_serde!($t);
    };
}

fn is_printable_ascii_no_space(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

/// A DNS host name, lower case ASCII (IDN hosts in their `xn--` form).
fn valid_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        // A name made only of digits and dots would be read as an IPv4 address.
        && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A host: DNS name or IP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Dns(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses `name`, `1.2.3.4` or `[::1]`/`::1`.
    pub(crate) fn parse_bare(s: &str) -> Option<Host> {
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        let lower = s.to_ascii_lowercase();
        valid_dns_name(&lower).then_some(Host::Dns(lower))
    }

    /// The form used inside a URL or `host:port`: IPv6 in brackets.
    pub fn url_form(&self) -> String {
        match self {
            Host::Dns(d) => d.clone(),
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// The form used in a certificate SAN: no brackets.
    pub fn san_form(&self) -> String {
        match self {
            Host::Dns(d) => d.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url_form())
    }
}

/// A database host: a DNS name or an IP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbHost(pub Host);

impl FromStr for DbHost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !is_printable_ascii_no_space(s) {
            return Err(
                "expected a host name or IP address (ASCII letters, digits, '-', '.')".into(),
            );
        }
        Host::parse_bare(s)
            .map(DbHost)
            .ok_or_else(|| "expected a host name (e.g. db.internal) or an IP address".into())
    }
}

impl fmt::Display for DbHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.san_form())
    }
}
string_newtype_serde!(DbHost);

/// The public scheme of the external URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

/// The public URL of the Cells site: scheme, host and optional port only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalUrl {
    pub scheme: Scheme,
    pub host: Host,
    /// `None` for the scheme's default port.
    pub port: Option<u16>,
}

impl ExternalUrl {
    /// `host` or `host:port`, as a client sends it in the Host header.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host.url_form()),
            None => self.host.url_form(),
        }
    }
}

impl FromStr for ExternalUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str =
            "expected https://HOST or https://HOST:PORT (no path, query, fragment or user info)";
        if s.is_empty() {
            return Err(format!("empty; {ACCEPTED}"));
        }
        if !s.is_ascii() {
            return Err(format!(
                "contains non-ASCII characters; write an internationalised host in its xn-- form; {ACCEPTED}"
            ));
        }
        if !is_printable_ascii_no_space(s) {
            return Err(format!("contains spaces or control characters; {ACCEPTED}"));
        }
        if !s.contains("://") {
            return Err(format!("'{s}' has no scheme; {ACCEPTED}"));
        }
        let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e}); {ACCEPTED}"))?;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(format!("scheme '{other}' is not supported; {ACCEPTED}")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("user info is not allowed; {ACCEPTED}"));
        }
        if url.query().is_some() || url.fragment().is_some() || s.contains('?') || s.contains('#') {
            return Err(format!("query and fragment are not allowed; {ACCEPTED}"));
        }
        if url.path() != "/" || s.trim_end_matches('/').matches('/').count() > 2 {
            return Err(format!("a path is not allowed; {ACCEPTED}"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => {
                let lower = d.to_ascii_lowercase();
                if !valid_dns_name(&lower) {
                    return Err(format!("'{d}' is not a valid host name; {ACCEPTED}"));
                }
                Host::Dns(lower)
            }
            Some(url::Host::Ipv4(v4)) => Host::Ip(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Host::Ip(IpAddr::V6(v6)),
            None => return Err(format!("no host; {ACCEPTED}")),
        };
        if let Host::Ip(ip) = &host {
            if ip.is_unspecified() {
                return Err(format!("{ip} cannot be a public address; {ACCEPTED}"));
            }
        }
        // `url` drops the scheme's default port; an explicit one is kept.
        let port = url.port();
        if port == Some(0) {
            return Err(format!("port 0 is not allowed; {ACCEPTED}"));
        }
        // Caddy refuses these ("scheme and port violate convention").
        match (scheme, port) {
            (Scheme::Https, Some(80)) => {
                return Err(format!("https on port 80 is not allowed; {ACCEPTED}"))
            }
            (Scheme::Http, Some(443)) => {
                return Err(format!("http on port 443 is not allowed; {ACCEPTED}"))
            }
            _ => {}
        }
        Ok(ExternalUrl { scheme, host, port })
    }
}

impl fmt::Display for ExternalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        write!(f, "{scheme}://{}", self.host_port())
    }
}
string_newtype_serde!(ExternalUrl);

/// An IP socket address to listen on (`127.0.0.1:8080`, `0.0.0.0:8080`,
/// `[::1]:8080`); never a host name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl ListenAddr {
    /// The address a local client dials: loopback when listening on all interfaces.
    pub fn dial(&self) -> SocketAddr {
        let ip = match self.0.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.0.port())
    }

    /// The IP, when it names one interface (not 0.0.0.0 or ::).
    pub fn specific_ip(&self) -> Option<IpAddr> {
        let ip = self.0.ip();
        (!ip.is_unspecified()).then_some(ip)
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str =
            "expected IP:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 (an IP address, not a host name; port 1-65535)";
        let addr: SocketAddr = s
            .parse()
            .map_err(|_| format!("'{}' is not an IP:PORT; {ACCEPTED}", s.escape_default()))?;
        if addr.port() == 0 {
            return Err(format!("port 0 is not allowed; {ACCEPTED}"));
        }
        if let SocketAddr::V6(v6) = addr {
            if v6.scope_id() != 0 || v6.flowinfo() != 0 {
                return Err(format!("IPv6 zone ids are not supported; {ACCEPTED}"));
            }
        }
        Ok(ListenAddr(addr))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
string_newtype_serde!(ListenAddr);

/// A loopback IP:PORT (127.0.0.0/8 or ::1): where Prometheus listens, so
/// that the only way in is through Caddy's basic auth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopbackAddr(ListenAddr);

impl LoopbackAddr {
    pub fn dial(&self) -> SocketAddr {
        self.0 .0
    }
}

impl FromStr for LoopbackAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let addr: ListenAddr = s.parse()?;
        if addr.0.ip().is_loopback() {
            Ok(LoopbackAddr(addr))
        } else {
            Err(format!(
                "{addr} is not a loopback address; expected 127.0.0.1:PORT or [::1]:PORT, so that the only way to Prometheus is through Caddy's basic auth"
            ))
        }
    }
}

impl fmt::Display for LoopbackAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
string_newtype_serde!(LoopbackAddr);

/// An e-mail address for the ACME account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl FromStr for Email {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str = "expected an address like tls@example.com (letters, digits and . _ + - before the @, a host name after it)";
        let (local, domain) = s
            .split_once('@')
            .ok_or_else(|| format!("no '@'; {ACCEPTED}"))?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
        if !local_ok || !valid_dns_name(&domain.to_ascii_lowercase()) {
            return Err(ACCEPTED.into());
        }
        if !domain.contains('.') {
            return Err(format!("the domain needs a dot; {ACCEPTED}"));
        }
        Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }
}

string_newtype!(Email);

/// A login name for basic auth or the Cells admin: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl FromStr for Username {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(Username(s.to_string()))
        } else {
            Err("expected 1-64 characters: ASCII letters, digits, '.', '_', '-', starting with a letter or digit".into())
        }
    }
}

string_newtype!(Username);

/// A Linux system user or group name (Debian's default NAME_REGEX).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemUser(String);

impl FromStr for SystemUser {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && (s.as_bytes()[0].is_ascii_lowercase() || s.as_bytes()[0] == b'_')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
        if ok {
            Ok(SystemUser(s.to_string()))
        } else {
            Err("expected a system user name: 1-32 characters, lower-case letters, digits, '_' or '-', starting with a letter or '_'".into())
        }
    }
}

string_newtype!(SystemUser);

/// An absolute, normalised path made of safe characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbsPath(String);

impl AbsPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path with `rest` (already safe, relative) appended.
    pub fn join(&self, rest: &str) -> AbsPath {
        AbsPath(format!("{}/{rest}", self.0))
    }
}

impl FromStr for AbsPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str = "expected an absolute path like /var/cells: ASCII letters, digits, '.', '_', '-', '+' and '/', no '..', no trailing '/'";
        if !s.starts_with('/') || s.len() < 2 || s.len() > 1024 {
            return Err(ACCEPTED.into());
        }
        let chars_ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+/".contains(&b));
        let parts_ok = s[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.starts_with('-'));
        if chars_ok && parts_ok {
            Ok(AbsPath(s.to_string()))
        } else {
            Err(ACCEPTED.into())
        }
    }
}

string_newtype!(AbsPath);

/// A URL path prefix like `/prometheus`: one or more safe segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPath(String);

impl UrlPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UrlPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str = "expected a path like /prometheus: '/' followed by ASCII letters, digits, '.', '_', '-', '~' (segments separated by '/', no trailing '/')";
        let ok = s.starts_with('/')
            && s.len() >= 2
            && s.len() <= 256
            && s[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b))
            });
        if ok {
            Ok(UrlPath(s.to_string()))
        } else {
            Err(ACCEPTED.into())
        }
    }
}

string_newtype!(UrlPath);

/// A database or database user name for MySQL/MariaDB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbIdent(String);

impl FromStr for DbIdent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(DbIdent(s.to_string()))
        } else {
            Err("expected 1-64 characters: ASCII letters, digits or '_'".into())
        }
    }
}

string_newtype!(DbIdent);

/// A TCP port, 1-65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port(pub u16);

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(Port(p)),
            _ => Err("expected a port number 1-65535".into()),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
string_newtype_serde!(Port);

/// Lifetime of the Cells certificate in days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertDays(pub u32);

impl CertDays {
    /// Certificates are renewed when fewer days than this remain.
    pub const RENEW_BEFORE_DAYS: u32 = 30;
}

bounded_number!(CertDays(u32), 31..=3650, "expected a number of days from 31 to 3650 (the CA lives 10 years; renewal starts 30 days before expiry)");

/// A bcrypt cost factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BcryptCost(pub u32);

bounded_number!(
    BcryptCost(u32),
    4..=20,
    "expected a bcrypt cost from 4 to 20 (Caddy's default is 14)"
);

/// A raw bcrypt hash (`$2a$`, `$2b$` or `$2y$`), the form Caddy reads as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BcryptHash(String);

impl BcryptHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cost factor the hash was made with (`$2b$14$...` is 14).
    pub fn cost(&self) -> u32 {
        self.0[4..6].parse().unwrap_or(0)
    }
}

impl FromStr for BcryptHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str = "expected a raw bcrypt hash like $2a$14$ followed by 53 characters of [./A-Za-z0-9] (the output of `caddy hash-password` or `cellsctl hash-password`)";
        let b = s.as_bytes();
        let ok = b.len() == 60
            && b[0] == b'$'
            && b[1] == b'2'
            && b"aby".contains(&b[2])
            && b[3] == b'$'
            && b[4].is_ascii_digit()
            && b[5].is_ascii_digit()
            && (4..=31).contains(&((b[4] - b'0') * 10 + (b[5] - b'0')))
            && b[6] == b'$'
            && b[7..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/');
        if ok {
            Ok(BcryptHash(s.to_string()))
        } else {
            Err(ACCEPTED.into())
        }
    }
}

string_newtype!(BcryptHash);

/// The Caddy release a Caddyfile is rendered for (2.6 and newer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CaddyVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl CaddyVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        CaddyVersion {
            major,
            minor,
            patch,
        }
    }
}

impl FromStr for CaddyVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str = "expected a Caddy version X.Y.Z from 2.6.0 on, e.g. 2.6.2 or 2.11.7";
        let core = s.strip_prefix('v').unwrap_or(s);
        // Pre-release suffixes (2.11.0-beta.1) target the release they lead to.
        let core = core.split(['-', '+']).next().unwrap_or(core);
        let nums: Vec<u32> = core
            .split('.')
            .map(|n| {
                if n.is_empty() || n.len() > 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    n.parse().ok()
                }
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("'{}' is not a version; {ACCEPTED}", s.escape_default()))?;
        let [major, minor, patch] = nums[..] else {
            return Err(format!("'{}' is not X.Y.Z; {ACCEPTED}", s.escape_default()));
        };
        let v = CaddyVersion::new(major, minor, patch);
        if major != 2 || minor < 6 {
            return Err(format!("Caddy {v} is not supported; {ACCEPTED}"));
        }
        Ok(v)
    }
}

impl fmt::Display for CaddyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}
string_newtype_serde!(CaddyVersion);

/// How Caddy gets the public certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum PublicTls {
    /// Automatic HTTPS with ACME (Let's Encrypt / ZeroSSL), optional account e-mail.
    Acme { email: Option<Email> },
    /// Caddy's local CA.
    Internal,
    /// Certificate and key files the admin provides.
    Custom { cert: AbsPath, key: AbsPath },
    /// Plain HTTP (Cells Sync cannot work).
    Off,
}

/// `FromStr` and `Display` in the words of the flag's values (clap's
/// `ValueEnum` names), for the defaults table and the wizard.
macro_rules! value_enum_text {
    ($t:ty) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t as clap::ValueEnum>::from_str(s, false)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match clap::ValueEnum::to_possible_value(self) {
                    Some(value) => f.write_str(value.get_name()),
                    None => Ok(()),
                }
            }
        }
    };
}

/// `--public-tls`: which of the `PublicTls` modes, without its details.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicTlsMode {
    /// Automatic HTTPS from Let's Encrypt/ZeroSSL.
    Acme,
    /// Caddy's own local CA.
    Internal,
    /// Your certificate and key files (--public-cert, --public-key).
    Custom,
    /// Plain HTTP: the Cells Sync client cannot work.
    Off,
}
value_enum_text!(PublicTlsMode);

impl PublicTls {
    pub fn mode(&self) -> PublicTlsMode {
        match self {
            PublicTls::Acme { .. } => PublicTlsMode::Acme,
            PublicTls::Internal => PublicTlsMode::Internal,
            PublicTls::Custom { .. } => PublicTlsMode::Custom,
            PublicTls::Off => PublicTlsMode::Off,
        }
    }
}

/// A feature switched by a pair of flags (`--prometheus`/`--no-prometheus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toggle {
    On,
    Off,
}

impl FromStr for Toggle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(Toggle::On),
            "off" => Ok(Toggle::Off),
            _ => Err("expected on or off".into()),
        }
    }
}

impl fmt::Display for Toggle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Toggle::On => "on",
            Toggle::Off => "off",
        })
    }
}

/// How Caddy talks TLS to Cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// cellsctl issues a private CA and a Cells certificate; Caddy verifies it.
    Ca,
    /// Cells makes its own self-signed certificate; Caddy skips verification.
    SkipVerify,
}
value_enum_text!(UpstreamTls);

/// Prometheus behind the proxy with basic auth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prometheus {
    pub listen: LoopbackAddr,
    pub path: UrlPath,
    pub user: Username,
    pub password_hash: BcryptHash,
    pub bcrypt_cost: BcryptCost,
    /// `None`: the default under the Cells working dir.
    pub targets_file: Option<AbsPath>,
}

/// Database connection settings (the password is a secret, not stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    pub host: DbHost,
    pub port: Port,
    pub name: DbIdent,
    pub user: DbIdent,
}

/// Where and as whom Cells runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellsRuntime {
    pub binary: AbsPath,
    pub user: SystemUser,
    pub working_dir: AbsPath,
}

/// Every answer, validated. The one source of truth for rendering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    pub external_url: ExternalUrl,
    pub bind: ListenAddr,
    pub public_tls: PublicTls,
    pub upstream_tls: UpstreamTls,
    pub cert_days: CertDays,
    pub prometheus: Option<Prometheus>,
    pub admin_login: Username,
    pub database: Database,
    pub cells: CellsRuntime,
    pub caddy_version: CaddyVersion,
    /// Where cellsctl is installed, for the renewal timer's unit (absent
    /// from states written before it was an answer: the default then).
    #[serde(default = "default_cellsctl_binary")]
    pub cellsctl_binary: AbsPath,
    /// Cluster mode (`--node` twice or more): absent for a single node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::Cluster>,
}

fn default_cellsctl_binary() -> AbsPath {
    crate::inputs::Layer::defaults()
        .cellsctl_binary
        .clone()
        .expect("every answer with a default value has it in Layer::defaults (unit-tested)")
}

impl Answers {
    /// The file Cells writes its metrics targets to.
    pub fn prometheus_targets_file(&self, p: &Prometheus) -> AbsPath {
        p.targets_file
            .clone()
            .unwrap_or_else(|| self.cells.working_dir.join(TARGETS_FILE_IN_WORKING_DIR))
    }
}

/// Where Cells writes its Prometheus targets, below its working dir, unless
/// `--prometheus-targets-file` says otherwise (Pydio's docs disagree between versions).
pub const TARGETS_FILE_IN_WORKING_DIR: &str = "services/pydio.gateway.metrics/prom_clients.json";

/// Parses a value a test knows to be valid.
#[cfg(test)]
pub(crate) fn parsed<T: FromStr<Err = String>>(s: &str) -> T {
    match s.parse() {
        Ok(v) => v,
        Err(e) => panic!("{s:?} is invalid: {e}"),
    }
}

#[cfg(test)]
mod newtype_tests {
    use super::*;

    #[test]
    fn external_url_accepts_host_and_port_only() {
        let u: ExternalUrl = "https://Cells.Example.com".parse().unwrap();
        assert_eq!(u.to_string(), "https://cells.example.com");
        let u: ExternalUrl = "https://cells.localhost:18443/".parse().unwrap();
        assert_eq!(u.to_string(), "https://cells.localhost:18443");
        let u: ExternalUrl = "https://cells.example.com:443".parse().unwrap();
        assert_eq!(u.port, None);
        let u: ExternalUrl = "https://[::1]:8443".parse().unwrap();
        assert_eq!(u.host_port(), "[::1]:8443");
        for bad in [
            "cells.example.com",
            "https://u:p@cells.example.com",
            "https://cells.example.com/cells",
            "https://cells.example.com?x=1",
            "https://cells.example.com#x",
            "ftp://cells.example.com",
            "https://cells.example.com:0",
            "https://cells.example.com:65536",
            "https://cells.exa\nmple.com",
            "https://{$HOME}.example.com",
            "https://cells.ex{ample.com",
            "https://céll.example.com",
            "https://0.0.0.0",
            "",
        ] {
            assert!(bad.parse::<ExternalUrl>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn listen_addr_needs_an_ip() {
        assert!("localhost:8080".parse::<ListenAddr>().is_err());
        assert!("127.0.0.1:0".parse::<ListenAddr>().is_err());
        assert!("::1:8080".parse::<ListenAddr>().is_err());
        let a: ListenAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(a.dial().to_string(), "127.0.0.1:8080");
        let a: ListenAddr = "[::]:8080".parse().unwrap();
        assert_eq!(a.dial().to_string(), "[::1]:8080");
    }

    #[test]
    fn prometheus_listens_on_loopback_only() {
        assert!("127.0.0.1:9090".parse::<LoopbackAddr>().is_ok());
        assert!("[::1]:9090".parse::<LoopbackAddr>().is_ok());
        for bad in [
            "0.0.0.0:9090",
            "10.0.0.1:9090",
            "[::]:9090",
            "localhost:9090",
        ] {
            assert!(bad.parse::<LoopbackAddr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn paths_and_names_are_allow_listed() {
        assert!("/var/cells".parse::<AbsPath>().is_ok());
        for bad in [
            "var/cells",
            "/var/../etc",
            "/var/cells/",
            "/var/ce lls",
            "/var/%h",
            "/",
            "/a//b",
        ] {
            assert!(bad.parse::<AbsPath>().is_err(), "{bad:?} accepted");
        }
        assert!("sysadminUser".parse::<Username>().is_ok());
        for bad in ["", "a:b", "{x}", "a b", "-a", "é"] {
            assert!(bad.parse::<Username>().is_err(), "{bad:?} accepted");
        }
        assert!("/prometheus".parse::<UrlPath>().is_ok());
        for bad in ["prometheus", "/", "/a/", "/a*", "/{x}"] {
            assert!(bad.parse::<UrlPath>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn caddy_versions() {
        assert_eq!(
            "v2.11.7".parse::<CaddyVersion>().unwrap(),
            CaddyVersion::new(2, 11, 7)
        );
        assert_eq!(
            "2.6.2".parse::<CaddyVersion>().unwrap(),
            CaddyVersion::new(2, 6, 2)
        );
        assert!("2.5.0".parse::<CaddyVersion>().is_err());
        assert!("1.0.4".parse::<CaddyVersion>().is_err());
        assert!("2.11".parse::<CaddyVersion>().is_err());
    }

    #[test]
    fn bcrypt_hash_shape() {
        let h = "$2a$14$Zkwf4TqY9kGocZWpg0/cjOcE93R/iJs1YC4rlLYXIHX.ikBbv1tFm";
        assert!(h.parse::<BcryptHash>().is_ok());
        assert!("$2a$14$short".parse::<BcryptHash>().is_err());
        assert!(format!("{}{{", &h[..59]).parse::<BcryptHash>().is_err());
    }
}
