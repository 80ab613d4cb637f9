//! Reads the JSON that `caddy adapt --adapter caddyfile` makes of a
//! hand-written Caddyfile (never the Caddyfile text itself): the site, its
//! public TLS, the Cells upstream and a Prometheus route, each with the JSON
//! path it was read from, and one line for everything else, which
//! cellsctl's rendering would drop.
//!
//! What cellsctl renders, and so what is read rather than dropped: one site
//! (`tls EMAIL` / `tls internal` / `tls CERT KEY`), optionally a Prometheus
//! route (a path matcher, basic auth, a `reverse_proxy`), the Cells
//! `reverse_proxy` (`transport http { tls; tls_insecure_skip_verify |
//! tls_trusted_ca_certs | tls_trust_pool file }`, `header_up Host
//! {hostport}`), the global `servers { timeouts { read_body_idle;
//! write_idle } }`, and Caddy's HTTP->HTTPS redirect. Subroutes (`handle`,
//! `route`), bare `vars` wrappers, `group`, `terminal` and the site's host
//! matcher are structure.

use base64::Engine;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashSet};

/// Where a value was read from: a JSON path in the adapted config, e.g.
/// `apps.http.servers.srv0.routes[0].handle[0].routes[1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<T> {
    pub value: T,
    pub from: String,
}

/// How Caddy gets the public certificate of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicTls {
    Acme { email: Option<String> },
    Internal,
    Custom { cert: String, key: String },
}

/// The Cells `reverse_proxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// As written in the JSON, e.g. `localhost:8080` (an `https://` upstream
    /// address becomes its host:port plus `tls`).
    pub dial: String,
    pub skip_verify: bool,
    /// The CA file of `tls_trusted_ca_certs FILE` or `tls_trust_pool file FILE`.
    pub trusted_ca: Option<String>,
    /// Caddy talks TLS to Cells.
    pub tls: bool,
}

/// A path-matched `reverse_proxy` to Prometheus, with its basic auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusRoute {
    /// The prefix, e.g. `/prometheus` for `/prometheus*` or
    /// `/prometheus /prometheus/*`.
    pub path: String,
    /// The path matcher as written, e.g. `["/prometheus*"]`.
    pub matcher: Vec<String>,
    pub dial: String,
    pub user: Option<String>,
    /// Raw `$2a$`/`$2b$`/`$2y$` bcrypt: decoded when the Caddyfile gave it
    /// base64-encoded (as the tutorial does), kept when already raw. `None`
    /// when there is no basic auth or the hash is not bcrypt (then `dropped`
    /// says so).
    pub hash: Option<String>,
}

/// What `read` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The site address host, and `:PORT` when not the scheme's default,
    /// e.g. `cells.example.com`. A plain-HTTP site (its server listens only
    /// on the HTTP port, or automatic HTTPS skips it) reads
    /// `http://cells.example.com`.
    pub site: Found<String>,
    /// `https://` or `http://` plus `site`.
    pub external_url: Found<String>,
    /// For a plain-HTTP site there is no TLS: `Acme { email: None }`, with a
    /// `from` that says so (see `plain_http`).
    pub tls: Found<PublicTls>,
    /// The site is served over plain HTTP (cellsctl's `--public-tls off`).
    pub plain_http: bool,
    pub upstream: Found<Upstream>,
    pub prometheus: Option<Found<PrometheusRoute>>,
    /// Everything cellsctl's rendering would drop, one human line each,
    /// ending with its JSON path in parentheses.
    pub dropped: Vec<String>,
    /// What is kept but will read differently once cellsctl renders it
    /// (e.g. the Prometheus matcher `/prometheus*` becoming `/prometheus
    /// /prometheus/*`), one human line each.
    pub notes: Vec<String>,
}

/// Reads an adapted Caddyfile. Err: not a config cellsctl can adopt, and why.
pub fn read(adapted: &Value) -> Result<Read, String> {
    read_site(adapted, None)
}

/// As `read`, choosing the site for `host` when several sites proxy to an
/// upstream (e.g. the host of `--external-url`).
pub fn read_site(adapted: &Value, host: Option<&str>) -> Result<Read, String> {
    Reader::default().run(adapted, host)
}

/// ZeroSSL's ACME directory: the second default issuer from Caddy 2.8 on.
const ZEROSSL_DIRECTORY: &str = "https://acme.zerossl.com/v2/DV90";
/// Let's Encrypt's production directory: the default ACME CA.
const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// `-1s`, the value cellsctl gives `read_body_idle` and `write_idle`.
const MINUS_ONE_SECOND_NS: i64 = -1_000_000_000;

fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (true, false) => format!("[{key:?}]"),
        (false, true) => format!("{path}.{key}"),
        (false, false) => format!("{path}[{key:?}]"),
    }
}

fn at(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        let cut = (0..=117)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// One matcher on the way from the site to a handler: the route it is on,
/// and its `match` array.
#[derive(Clone)]
struct Cond<'a> {
    route: String,
    matcher: &'a Value,
}

/// A handler that is not structure, with the matchers above it.
struct Leaf<'a> {
    path: String,
    handler: &'a Map<String, Value>,
    conds: Vec<Cond<'a>>,
}

impl Leaf<'_> {
    fn name(&self) -> &str {
        self.handler
            .get("handler")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Handlers of one site route, and the odd bits of its structure.
#[derive(Default)]
struct Walk<'a> {
    leaves: Vec<Leaf<'a>>,
    odd: Vec<(String, String)>,
}

fn walk_routes<'a>(routes: &'a Value, path: &str, conds: &[Cond<'a>], w: &mut Walk<'a>) {
    let Some(routes) = routes.as_array() else {
        w.odd
            .push(("a `routes` that is not a list".into(), path.into()));
        return;
    };
    for (i, route) in routes.iter().enumerate() {
        let rpath = at(path, i);
        let Some(r) = route.as_object() else {
            w.odd.push(("a route that is not an object".into(), rpath));
            continue;
        };
        let mut conds = conds.to_vec();
        if let Some(m) = r.get("match") {
            if m.as_array().is_none_or(|a| !a.is_empty()) {
                conds.push(Cond {
                    route: rpath.clone(),
                    matcher: m,
                });
            }
        }
        for (k, v) in r {
            match k.as_str() {
                "match" | "group" | "terminal" => {}
                "handle" => walk_handlers(v, &join(&rpath, "handle"), &conds, w),
                other => w
                    .odd
                    .push((format!("route option `{other}`"), join(&rpath, other))),
            }
        }
    }
}

fn walk_handlers<'a>(handle: &'a Value, path: &str, conds: &[Cond<'a>], w: &mut Walk<'a>) {
    let Some(handlers) = handle.as_array() else {
        w.odd
            .push(("a `handle` that is not a list".into(), path.into()));
        return;
    };
    for (j, h) in handlers.iter().enumerate() {
        let hpath = at(path, j);
        let Some(obj) = h.as_object() else {
            w.odd
                .push(("a handler that is not an object".into(), hpath));
            continue;
        };
        match obj.get("handler").and_then(Value::as_str) {
            Some("subroute") => {
                for (k, v) in obj {
                    match k.as_str() {
                        "handler" => {}
                        "routes" => walk_routes(v, &join(&hpath, "routes"), conds, w),
                        other => w
                            .odd
                            .push((format!("subroute option `{other}`"), join(&hpath, other))),
                    }
                }
            }
            Some("vars") if obj.len() == 1 => {}
            _ => w.leaves.push(Leaf {
                path: hpath,
                handler: obj,
                conds: conds.to_vec(),
            }),
        }
    }
}

/// The prefix a path matcher serves, if it is one prefix: `/p*`, `/p/*`,
/// `/p` or `/p /p/*`.
fn path_prefix(paths: &[String]) -> Option<String> {
    let ok = |p: &str| p.starts_with('/') && p.len() > 1 && !p.contains('*');
    match paths {
        [one] => {
            let p = one.strip_suffix('*').unwrap_or(one);
            let p = p.strip_suffix('/').unwrap_or(p);
            ok(p).then(|| p.to_string())
        }
        [a, b] => {
            let (exact, star) = if b.ends_with("/*") { (a, b) } else { (b, a) };
            (ok(exact) && star.strip_suffix("/*") == Some(exact.as_str())).then(|| exact.clone())
        }
        _ => None,
    }
}

/// The index in `conds` of the first matcher that is a path prefix only,
/// with the prefix and the paths as written.
fn path_cond(conds: &[Cond<'_>]) -> Option<(usize, String, Vec<String>)> {
    conds.iter().enumerate().find_map(|(i, c)| {
        let sets = c.matcher.as_array()?;
        let [set] = sets.as_slice() else { return None };
        let set = set.as_object()?;
        if set.len() != 1 {
            return None;
        }
        let paths = strings(set.get("path"));
        let prefix = path_prefix(&paths)?;
        Some((i, prefix, paths))
    })
}

/// The first upstream dial of a `reverse_proxy` that talks HTTP.
fn proxy_dial(h: &Map<String, Value>) -> Option<String> {
    if h.get("handler").and_then(Value::as_str) != Some("reverse_proxy") {
        return None;
    }
    if let Some(t) = h.get("transport") {
        if t.get("protocol").and_then(Value::as_str) != Some("http") {
            return None;
        }
    }
    h.get("upstreams")?
        .as_array()?
        .first()?
        .get("dial")?
        .as_str()
        .map(str::to_string)
}

fn port_of(dial: &str) -> Option<u16> {
    dial.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

fn is_prometheus(prefix: &str, dial: &str) -> bool {
    prefix.to_ascii_lowercase().contains("prometheus") || port_of(dial) == Some(9090)
}

fn matchers_text(conds: &[Cond<'_>]) -> String {
    if conds.is_empty() {
        return String::new();
    }
    let all: Vec<String> = conds.iter().map(|c| compact(c.matcher)).collect();
    format!(" matching {}", all.join(" then "))
}

/// A human name for a handler that cellsctl does not render.
fn describe(leaf: &Leaf<'_>) -> String {
    let h = leaf.handler;
    let what = match leaf.name() {
        "headers" => {
            let mut names = BTreeSet::new();
            for side in ["request", "response"] {
                if let Some(ops) = h.get(side).and_then(Value::as_object) {
                    for (op, v) in ops {
                        match v {
                            Value::Object(m) => names.extend(m.keys().cloned()),
                            Value::Array(a) => {
                                names.extend(a.iter().filter_map(Value::as_str).map(String::from))
                            }
                            _ => {
                                names.insert(op.clone());
                            }
                        }
                    }
                }
            }
            let names: Vec<String> = names.into_iter().collect();
            format!(
                "a `header` directive (`headers` handler: {})",
                names.join(", ")
            )
        }
        "static_response" => {
            let location = h
                .get("headers")
                .and_then(|v| v.get("Location"))
                .map(|v| strings(Some(v)).join(" "));
            match location {
                Some(l) => format!("a `redir` to {l} (`static_response` handler)"),
                None => "a `respond` (`static_response` handler)".to_string(),
            }
        }
        "file_server" => "a `file_server`".to_string(),
        "encode" => "an `encode` (`encode` handler)".to_string(),
        "rewrite" => "a `rewrite`/`uri` (`rewrite` handler)".to_string(),
        "authentication" => "a `basic_auth` (`authentication` handler)".to_string(),
        "vars" => "a `vars`/`root` (`vars` handler)".to_string(),
        "reverse_proxy" => {
            let dials: Vec<String> = h
                .get("upstreams")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.get("dial").and_then(Value::as_str))
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            if dials.is_empty() {
                "a `reverse_proxy`".to_string()
            } else {
                format!("a `reverse_proxy` to {}", dials.join(" "))
            }
        }
        "" => "a handler without a name".to_string(),
        other => format!("a `{other}` handler"),
    };
    format!("{what}{}", matchers_text(&leaf.conds))
}

/// A top-level route of a server that has hosts: a site.
struct SiteRoute<'a> {
    server: String,
    path: String,
    route: &'a Map<String, Value>,
    hosts: Vec<String>,
}

impl SiteRoute<'_> {
    fn serves(&self, host: &str) -> bool {
        lists_host(&self.hosts, host)
    }
}

/// `host` is one of `hosts`, ignoring case as Caddy does.
fn lists_host(hosts: &[String], host: &str) -> bool {
    hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// The handlers of a route (below its `handle`), with the matchers above each.
fn walk_route<'a>(route: &'a Map<String, Value>, path: &str) -> Walk<'a> {
    let mut w = Walk::default();
    if let Some(h) = route.get("handle") {
        walk_handlers(h, &join(path, "handle"), &[], &mut w);
    }
    w
}

/// The parts of the adapted config that hold sites.
struct Config<'a> {
    root: &'a Map<String, Value>,
    apps: &'a Map<String, Value>,
    http: &'a Map<String, Value>,
    servers: &'a Map<String, Value>,
    /// The global `http_port`, 80 by default: a site served only there is plain HTTP.
    http_port: u64,
    /// The global `http_port` or `https_port` is set, which moves ACME's
    /// challenge ports too (reported as the global option itself).
    alternate_ports: bool,
}

impl<'a> Config<'a> {
    /// Err: the config serves no site.
    fn of(adapted: &'a Value) -> Result<Self, String> {
        let root = adapted
            .as_object()
            .ok_or("not a Caddy JSON config (expected an object)")?;
        let apps = root
            .get("apps")
            .and_then(Value::as_object)
            .ok_or("no `apps` in the config: it serves no site")?;
        let http = apps
            .get("http")
            .and_then(Value::as_object)
            .ok_or("no `apps.http` in the config: it serves no site")?;
        let servers = http
            .get("servers")
            .and_then(Value::as_object)
            .ok_or("no `apps.http.servers` in the config: it serves no site")?;
        Ok(Config {
            root,
            apps,
            http,
            servers,
            http_port: http.get("http_port").and_then(Value::as_u64).unwrap_or(80),
            alternate_ports: http.contains_key("http_port") || http.contains_key("https_port"),
        })
    }
}

/// Every top-level route of every server: each is a site (or a catch-all).
/// Err: there is none.
fn site_routes(servers: &Map<String, Value>) -> Result<Vec<SiteRoute<'_>>, String> {
    let mut sites = Vec::new();
    for (name, srv) in servers {
        let spath = join("apps.http.servers", name);
        let Some(routes) = srv.get("routes").and_then(Value::as_array) else {
            continue;
        };
        for (i, r) in routes.iter().enumerate() {
            let Some(route) = r.as_object() else { continue };
            let hosts = route
                .get("match")
                .and_then(Value::as_array)
                .and_then(|sets| sets.first())
                .map(|set| strings(set.get("host")))
                .unwrap_or_default();
            sites.push(SiteRoute {
                server: name.clone(),
                path: at(&join(&spath, "routes"), i),
                route,
                hosts,
            });
        }
    }
    if sites.is_empty() {
        return Err("no site in the config (no route on any server)".into());
    }
    Ok(sites)
}

/// The site being adopted.
struct Site {
    /// Its index in the site routes (and their walks).
    index: usize,
    /// The host it is read for, as written in the site address.
    host: String,
    /// All its addresses.
    hosts: Vec<String>,
    /// The name of its server.
    server: String,
}

/// Some handler of the route is a `reverse_proxy` that is not Prometheus's,
/// so the site may be the Cells site.
fn proxies_to_cells(w: &Walk<'_>) -> bool {
    w.leaves.iter().any(|l| {
        proxy_dial(l.handler)
            .is_some_and(|d| path_cond(&l.conds).is_none_or(|(_, p, _)| !is_prometheus(&p, &d)))
    })
}

/// The one site that proxies to Cells, narrowed to `want` when several do
/// and `want` is one of their hosts. Err: none, several, or no host name.
fn choose_site(
    sites: &[SiteRoute<'_>],
    walks: &[Walk<'_>],
    want: Option<&str>,
) -> Result<Site, String> {
    let mut candidates: Vec<usize> = (0..sites.len())
        .filter(|&i| proxies_to_cells(&walks[i]))
        .collect();
    let want = want.filter(|host| candidates.iter().any(|&i| sites[i].serves(host)));
    if let Some(host) = want {
        candidates.retain(|&i| sites[i].serves(host));
    }
    let index = match candidates.as_slice() {
        [] => {
            return Err(format!(
                "no site has a `reverse_proxy` to Cells (sites: {})",
                site_list(sites)
            ))
        }
        [one] => *one,
        several => {
            let list: Vec<String> = several
                .iter()
                .map(|&i| format!("{} ({})", host_text(&sites[i].hosts), sites[i].path))
                .collect();
            return Err(format!(
                "several sites have a `reverse_proxy`, cannot tell which one is Cells: {}",
                list.join(", ")
            ));
        }
    };
    let route = &sites[index];
    Ok(Site {
        index,
        host: site_host(route, want)?,
        hosts: route.hosts.clone(),
        server: route.server.clone(),
    })
}

/// The host the site is read for: `want` as the site writes it, else the
/// site's first address. Err: the site has no host name.
fn site_host(site: &SiteRoute<'_>, want: Option<&str>) -> Result<String, String> {
    match (want, site.hosts.first()) {
        (Some(h), _) => Ok(site
            .hosts
            .iter()
            .find(|x| x.eq_ignore_ascii_case(h))
            .cloned()
            .unwrap_or_else(|| h.to_string())),
        (None, Some(h)) => Ok(h.clone()),
        (None, None) => Err(format!(
            "the site with the `reverse_proxy` ({}) has no host name: cellsctl needs a site address such as cells.example.com",
            site.path
        )),
    }
}

/// The Prometheus `reverse_proxy` of the site and its path matcher.
struct PrometheusLeaf {
    /// Index of the proxy in the walk's leaves.
    leaf: usize,
    /// Index of its path matcher in the leaf's conds.
    cond: usize,
    prefix: String,
    paths: Vec<String>,
}

/// The two `reverse_proxy` handlers cellsctl renders.
struct SiteProxies {
    prometheus: Option<PrometheusLeaf>,
    /// Index of the Cells proxy in the walk's leaves.
    cells: usize,
}

impl SiteProxies {
    /// Prometheus: a `reverse_proxy` under a single path-prefix matcher that
    /// looks like Prometheus. Cells: the one other `reverse_proxy` without a
    /// matcher (or the only other one). Err: either is ambiguous.
    fn find(walk: &Walk<'_>, host: &str) -> Result<Self, String> {
        let prometheus = find_prometheus(walk)?;
        let cells = find_cells(walk, prometheus.as_ref(), host)?;
        Ok(SiteProxies { prometheus, cells })
    }
}

fn find_prometheus(walk: &Walk<'_>) -> Result<Option<PrometheusLeaf>, String> {
    let mut prom: Option<PrometheusLeaf> = None;
    for (i, l) in walk.leaves.iter().enumerate() {
        let Some(dial) = proxy_dial(l.handler) else {
            continue;
        };
        let Some((cond, prefix, paths)) = path_cond(&l.conds) else {
            continue;
        };
        if !is_prometheus(&prefix, &dial) {
            continue;
        }
        if let Some(other) = &prom {
            return Err(format!(
                "several Prometheus routes: {} and {}",
                walk.leaves[other.leaf].path, l.path
            ));
        }
        prom = Some(PrometheusLeaf {
            leaf: i,
            cond,
            prefix,
            paths,
        });
    }
    Ok(prom)
}

fn find_cells(walk: &Walk<'_>, prom: Option<&PrometheusLeaf>, host: &str) -> Result<usize, String> {
    let others: Vec<usize> = (0..walk.leaves.len())
        .filter(|&i| proxy_dial(walk.leaves[i].handler).is_some())
        .filter(|&i| prom.is_none_or(|p| p.leaf != i))
        .collect();
    let unmatched: Vec<usize> = others
        .iter()
        .copied()
        .filter(|&i| walk.leaves[i].conds.is_empty())
        .collect();
    match (unmatched.as_slice(), others.as_slice()) {
        ([one], _) => Ok(*one),
        ([], [one]) => Ok(*one),
        (several, _) => {
            let pick = if several.is_empty() {
                &others
            } else {
                &unmatched
            };
            let list: Vec<String> = pick
                .iter()
                .map(|&i| describe(&walk.leaves[i]) + " (" + &walk.leaves[i].path + ")")
                .collect();
            Err(format!(
                "several `reverse_proxy` candidates for Cells in {host}: {}",
                list.join("; ")
            ))
        }
    }
}

/// The basic-auth handler that guards Prometheus: on the route of its path
/// matcher, or under the same path prefix.
fn prometheus_auth(walk: &Walk<'_>, route: &str, prefix: &str) -> Option<usize> {
    walk.leaves.iter().position(|l| {
        l.name() == "authentication"
            && (l.conds.iter().any(|c| c.route == route)
                || path_cond(&l.conds).is_some_and(|(_, p, _)| p == prefix))
    })
}

/// User and raw bcrypt hash of the Prometheus basic auth.
#[derive(Default)]
struct BasicAuth {
    user: Option<String>,
    hash: Option<String>,
}

/// The first listen address of the site's server.
struct Listen {
    path: String,
    /// Its port, if it has one.
    port: Option<u64>,
    /// The server has a listen address at all.
    any: bool,
}

/// The site's address as cellsctl writes it.
struct SiteAddress {
    site: Found<String>,
    external_url: Found<String>,
    plain_http: bool,
}

impl SiteAddress {
    /// Plain HTTP when automatic HTTPS skips the host or the server listens
    /// only on the HTTP port; the port is written when not the scheme's.
    fn read(
        srv: &Map<String, Value>,
        listen: &Listen,
        host: &str,
        http_port: u64,
        from: String,
    ) -> Self {
        let skipped = srv
            .get("automatic_https")
            .and_then(|a| a.get("skip"))
            .map(|s| strings(Some(s)))
            .unwrap_or_default();
        let plain_http =
            lists_host(&skipped, host) || (listen.any && listen.port == Some(http_port));
        let default_port = if plain_http { 80 } else { 443 };
        let site_value = match listen.port {
            Some(p) if p != default_port => format!("{host}:{p}"),
            _ => host.to_string(),
        };
        let scheme = if plain_http { "http" } else { "https" };
        SiteAddress {
            site: Found {
                value: if plain_http {
                    format!("http://{site_value}")
                } else {
                    site_value.clone()
                },
                from: from.clone(),
            },
            external_url: Found {
                value: format!("{scheme}://{site_value}"),
                from,
            },
            plain_http,
        }
    }
}

/// What the servers tell about the site beyond its routes.
#[derive(Default)]
struct ServerFindings {
    /// Certificate tags the site's TLS connection policy selects: its `tls CERT KEY`.
    used_tags: Vec<String>,
    /// Loggers of sites' `log` directives, reported with their server.
    logger_names: Vec<String>,
}

/// What the TLS app is read against.
struct TlsContext<'a> {
    site: &'a Site,
    /// Hosts of the other sites: their policies are reported with those sites.
    other_hosts: &'a [String],
    used_tags: &'a [String],
    plain_http: bool,
    listen_path: &'a str,
    alternate_ports: bool,
}

/// The subjects of a TLS automation policy.
fn policy_subjects(p: &Value) -> Vec<String> {
    strings(p.get("subjects"))
}

/// A TLS automation policy names `host`.
fn policy_covers(p: &Value, host: &str) -> bool {
    lists_host(&policy_subjects(p), host)
}

#[derive(Default)]
struct Reader {
    dropped: Vec<String>,
    seen: HashSet<String>,
    notes: Vec<String>,
}

impl Reader {
    fn drop(&mut self, what: impl Into<String>, path: &str) {
        let what = what.into();
        self.seen.insert(what.clone());
        self.dropped.push(format!("{what} ({path})"));
    }

    /// Once per `what` (global options repeat on every server and issuer).
    fn drop_once(&mut self, what: impl Into<String>, path: &str) {
        let what = what.into();
        if self.seen.insert(what.clone()) {
            self.dropped.push(format!("{what} ({path})"));
        }
    }

    fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    /// The pipeline: find the sites, choose the Cells one, read its route
    /// (Cells, Prometheus), its address, its servers and its TLS, and drop
    /// everything else. Drops and notes come out in that order.
    fn run(mut self, adapted: &Value, want: Option<&str>) -> Result<Read, String> {
        let config = Config::of(adapted)?;
        let sites = site_routes(config.servers)?;
        let walks: Vec<Walk<'_>> = sites.iter().map(|s| walk_route(s.route, &s.path)).collect();
        let site = choose_site(&sites, &walks, want)?;
        let (route, walk) = (&sites[site.index], &walks[site.index]);
        let srv_path = join("apps.http.servers", &site.server);
        let srv = config
            .servers
            .get(&site.server)
            .and_then(Value::as_object)
            .ok_or("the site's server is not an object")?;

        self.site_route(route, walk, &site.host);
        let (upstream, prometheus) = self.proxies(walk, &site.host)?;

        let listen = self.listen(srv, &srv_path);
        let site_from = format!("{}[0].host", join(&route.path, "match"));
        let address = SiteAddress::read(srv, &listen, &site.host, config.http_port, site_from);
        let redirects = self.redirect_servers(&config, &site, address.plain_http);
        let found = self.servers(config.servers, &site);
        self.other_sites(&sites, &site, &redirects);
        let other_hosts: Vec<String> = sites
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != site.index)
            .flat_map(|(_, s)| s.hosts.clone())
            .collect();
        let tls = self.tls(
            config.apps.get("tls"),
            &TlsContext {
                site: &site,
                other_hosts: &other_hosts,
                used_tags: &found.used_tags,
                plain_http: address.plain_http,
                listen_path: &listen.path,
                alternate_ports: config.alternate_ports,
            },
        );
        self.top_level(&config, &found.logger_names);
        if address.plain_http {
            self.note(format!(
                "the site is plain HTTP ({}): answer --public-tls off",
                listen.path
            ));
        }

        Ok(Read {
            site: address.site,
            external_url: address.external_url,
            tls,
            plain_http: address.plain_http,
            upstream,
            prometheus,
            dropped: self.dropped,
            notes: self.notes,
        })
    }

    /// The site's handlers: the Cells proxy, the Prometheus proxy with the
    /// basic auth before it, and every other handler dropped. Err: which
    /// proxy is Cells or Prometheus is ambiguous.
    fn proxies(
        &mut self,
        walk: &Walk<'_>,
        host: &str,
    ) -> Result<(Found<Upstream>, Option<Found<PrometheusRoute>>), String> {
        let proxies = SiteProxies::find(walk, host)?;
        let upstream = self.cells_proxy(&walk.leaves[proxies.cells]);
        let mut read = vec![Some(proxies.cells)];
        let prometheus = match &proxies.prometheus {
            Some(p) => {
                let (found, auth) = self.prometheus(walk, p);
                read.extend([Some(p.leaf), auth]);
                Some(found)
            }
            None => None,
        };
        self.other_handlers(walk, &read);
        Ok((upstream, prometheus))
    }

    /// The site route itself: cellsctl writes one address and no matcher or
    /// route option, so other addresses, matchers and options are dropped,
    /// with the odd bits of its structure.
    fn site_route(&mut self, route: &SiteRoute<'_>, walk: &Walk<'_>, host: &str) {
        let match_path = join(&route.path, "match");
        for h in &route.hosts {
            if !h.eq_ignore_ascii_case(host) {
                self.drop(
                    format!("another address of the site: {h}"),
                    &format!("{match_path}[0].host"),
                );
            }
        }
        if let Some(sets) = route.route.get("match").and_then(Value::as_array) {
            for (i, set) in sets.iter().enumerate() {
                self.site_matcher_set(set, i, &at(&match_path, i));
            }
        }
        for (k, _) in route.route.iter() {
            if !matches!(k.as_str(), "match" | "handle" | "group" | "terminal") {
                self.drop(format!("route option `{k}`"), &join(&route.path, k));
            }
        }
        for (what, path) in &walk.odd {
            self.drop(what.clone(), path);
        }
    }

    /// A matcher set of the site route: the first one's hosts are the site
    /// address; anything else in it, and any further set, is dropped.
    fn site_matcher_set(&mut self, set: &Value, i: usize, spath: &str) {
        match set.as_object() {
            Some(m) if i == 0 => {
                for (k, v) in m {
                    if k == "host" {
                        continue;
                    }
                    let what = if k == "path" {
                        format!("a path in the site address: {}", compact(v))
                    } else {
                        format!("a `{k}` matcher on the site: {}", compact(v))
                    };
                    self.drop(what, &join(spath, k));
                }
            }
            _ => self.drop(
                format!("another matcher set on the site: {}", compact(set)),
                spath,
            ),
        }
    }

    /// The Prometheus route with the basic auth that guards it (whose leaf
    /// index is returned, as it is read, not dropped). Notes where
    /// cellsctl's rendering will differ: no auth today, another matcher.
    fn prometheus(
        &mut self,
        walk: &Walk<'_>,
        prom: &PrometheusLeaf,
    ) -> (Found<PrometheusRoute>, Option<usize>) {
        let leaf = &walk.leaves[prom.leaf];
        let cond = &leaf.conds[prom.cond];
        let prefix = &prom.prefix;
        let auth = prometheus_auth(walk, &cond.route, prefix);
        let BasicAuth { user, hash } = match auth {
            Some(a) => self.basic_auth(&walk.leaves[a]),
            None => {
                self.note(format!(
                    "Prometheus at {prefix} has no basic auth today ({}): cellsctl puts it behind one",
                    cond.route
                ));
                BasicAuth::default()
            }
        };
        for (k, c) in leaf.conds.iter().enumerate() {
            if k != prom.cond {
                self.drop(
                    format!(
                        "another matcher on the Prometheus route: {}",
                        compact(c.matcher)
                    ),
                    &join(&c.route, "match"),
                );
            }
        }
        self.proxy_extras(
            leaf,
            "the Prometheus `reverse_proxy`",
            &["handler", "upstreams"],
        );
        self.note_prometheus_matcher(prom, &cond.route);
        let route = PrometheusRoute {
            path: prefix.clone(),
            matcher: prom.paths.clone(),
            dial: proxy_dial(leaf.handler).unwrap_or_default(),
            user,
            hash,
        };
        let from = cond.route.clone();
        (Found { value: route, from }, auth)
    }

    /// cellsctl matches `path PREFIX PREFIX/*`: a matcher written otherwise
    /// matches a little differently, which the user should know.
    fn note_prometheus_matcher(&mut self, prom: &PrometheusLeaf, route: &str) {
        let prefix = &prom.prefix;
        let written = prom.paths.join(" ");
        let renders = format!("{prefix} {prefix}/*");
        if written == renders {
            return;
        }
        let why = match prom.paths.as_slice() {
            [p] if p.ends_with("/*") => format!("does not match {prefix} itself"),
            [p] if p.ends_with('*') => format!("also matches {prefix}X"),
            _ => format!("does not match {prefix}/…"),
        };
        self.note(format!(
            "Prometheus matcher `path {written}` {why}; cellsctl matches `path {renders}` ({})",
            join(route, "match")
        ));
    }

    /// Every handler of the site other than those `read` is dropped.
    fn other_handlers(&mut self, walk: &Walk<'_>, read: &[Option<usize>]) {
        for (i, l) in walk.leaves.iter().enumerate() {
            if !read.contains(&Some(i)) {
                self.drop(describe(l), &l.path);
            }
        }
    }

    /// The site server's first listen address gives the site's port; a bind
    /// address and further listen addresses are dropped.
    fn listen(&mut self, srv: &Map<String, Value>, srv_path: &str) -> Listen {
        let listen = strings(srv.get("listen"));
        let path = join(srv_path, "listen");
        let mut port = None;
        for (i, l) in listen.iter().enumerate() {
            let addr = l.strip_prefix("tcp/").unwrap_or(l);
            let (bind, p) = addr.rsplit_once(':').unwrap_or(("", addr));
            if i == 0 {
                port = p.parse::<u64>().ok();
                if !bind.is_empty() {
                    self.drop(format!("a `bind` address: {bind}"), &at(&path, i));
                }
            } else {
                self.drop(format!("another listen address: {l}"), &at(&path, i));
            }
        }
        Listen {
            path,
            port,
            any: !listen.is_empty(),
        }
    }

    /// Servers that only redirect to HTTPS: Caddy's automatic redirect
    /// replaces them, so they are noted, not dropped (none for a plain-HTTP site).
    fn redirect_servers(
        &mut self,
        config: &Config<'_>,
        site: &Site,
        plain_http: bool,
    ) -> BTreeSet<String> {
        let redirects: BTreeSet<String> = config
            .servers
            .iter()
            .filter(|(name, v)| {
                **name != site.server
                    && !plain_http
                    && is_redirect_server(
                        v,
                        config.http_port,
                        &site.hosts,
                        &join("apps.http.servers", name),
                    )
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &redirects {
            self.note(format!(
                "a hand-written HTTP->HTTPS redirect ({}): Caddy's automatic redirect (308) replaces it",
                join(&join("apps.http.servers", name), "routes")
            ));
        }
        redirects
    }

    /// Every server's settings (see `server`).
    fn servers(&mut self, servers: &Map<String, Value>, site: &Site) -> ServerFindings {
        let mut found = ServerFindings::default();
        for (name, s) in servers {
            let spath = join("apps.http.servers", name);
            let Some(s) = s.as_object() else {
                self.drop("a server that is not an object", &spath);
                continue;
            };
            self.server(s, &spath, site, *name == site.server, &mut found);
        }
        found
    }

    /// Routes other than the site's: other sites, on any server (bar the
    /// redirect servers, noted already).
    fn other_sites(&mut self, sites: &[SiteRoute<'_>], site: &Site, redirects: &BTreeSet<String>) {
        for (i, s) in sites.iter().enumerate() {
            if i == site.index || redirects.contains(&s.server) {
                continue;
            }
            if s.hosts.is_empty() {
                self.drop("a site for any host name", &s.path);
            } else if s.serves(&site.host) {
                self.drop(
                    format!("another site block for {}", host_text(&s.hosts)),
                    &s.path,
                );
            } else {
                self.drop(format!("a second site: {}", host_text(&s.hosts)), &s.path);
            }
        }
    }

    /// The rest of the config: top-level keys, other apps and global
    /// `apps.http` options, none of which cellsctl renders.
    fn top_level(&mut self, config: &Config<'_>, site_loggers: &[String]) {
        for (k, v) in config.root {
            match k.as_str() {
                "apps" => {}
                "logging" => self.logging(v, site_loggers),
                "admin" => self.drop_once("global option `admin` (the admin API)", "admin"),
                "storage" => self.drop_once("global option `storage`", "storage"),
                other => self.drop_once(format!("top-level `{other}`"), other),
            }
        }
        for (k, v) in config.apps {
            match k.as_str() {
                "http" | "tls" => {}
                "pki" => self.drop_once(
                    format!("global option `skip_install_trust`/`pki`: {}", compact(v)),
                    "apps.pki",
                ),
                other => self.drop_once(format!("the `{other}` app"), &join("apps", other)),
            }
        }
        for (k, v) in config.http {
            if k != "servers" {
                self.drop_once(
                    format!("global option `{k}` {}", compact(v)),
                    &join("apps.http", k),
                );
            }
        }
    }

    /// Server-level settings: listen (read by `listen`), routes (sites),
    /// TLS connection policies of `tls CERT KEY`, logs, the idle timeouts
    /// cellsctl writes; the rest is dropped.
    fn server(
        &mut self,
        s: &Map<String, Value>,
        spath: &str,
        site: &Site,
        is_site_server: bool,
        found: &mut ServerFindings,
    ) {
        for (k, v) in s {
            let kpath = join(spath, k);
            match k.as_str() {
                "listen" | "routes" => {}
                "read_idle_timeout" | "write_idle_timeout" => self.idle_timeout(k, v, &kpath),
                "automatic_https" => self.automatic_https(v, &kpath),
                "tls_connection_policies" => {
                    let for_site = is_site_server.then_some(site);
                    self.connection_policies(v, &kpath, for_site, &mut found.used_tags)
                }
                "logs" => self.access_logs(v, &kpath, &mut found.logger_names),
                "errors" => self.drop("a `handle_errors` block", &kpath),
                other => {
                    let name = match other {
                        "read_timeout" => "timeouts read_body",
                        "read_header_timeout" => "timeouts read_header",
                        "write_timeout" => "timeouts write",
                        "idle_timeout" => "timeouts idle",
                        _ => other,
                    };
                    self.drop_once(
                        format!("global option `servers`: {name} {}", option_text(other, v)),
                        &kpath,
                    )
                }
            }
        }
    }

    /// `read_body_idle`/`write_idle`: cellsctl renders -1s on Caddy 2.11.6+,
    /// so another value is kept only as a note (once, as it repeats per server).
    fn idle_timeout(&mut self, key: &str, v: &Value, kpath: &str) {
        if v.as_i64() == Some(MINUS_ONE_SECOND_NS) {
            return;
        }
        let option = if key == "read_idle_timeout" {
            "read_body_idle"
        } else {
            "write_idle"
        };
        let note = format!(
            "global `servers {{ timeouts {{ {option} }} }}` is {}; cellsctl renders -1s (off) on Caddy 2.11.6+ and nothing before ({kpath})",
            duration_text(v)
        );
        if !self.notes.contains(&note) {
            self.note(note);
        }
    }

    /// `auto_https`: its `skip` is the http:// site addresses, read as such;
    /// the rest is dropped.
    fn automatic_https(&mut self, v: &Value, kpath: &str) {
        let Some(a) = v.as_object() else {
            self.drop_once("global option `auto_https`", kpath);
            return;
        };
        for (ak, av) in a {
            if ak != "skip" {
                self.drop_once(
                    format!("global option `auto_https`: {ak} {}", compact(av)),
                    &join(kpath, ak),
                );
            }
        }
    }

    /// TLS connection policies: the site's (on its server, by SNI) selects
    /// the certificate of `tls CERT KEY`; another site's is reported with
    /// that site; a policy without SNI is dropped.
    fn connection_policies(
        &mut self,
        v: &Value,
        kpath: &str,
        site: Option<&Site>,
        used_tags: &mut Vec<String>,
    ) {
        let Some(policies) = v.as_array() else {
            self.drop_once("TLS connection policies", kpath);
            return;
        };
        for (i, p) in policies.iter().enumerate() {
            let ppath = at(kpath, i);
            let Some(p) = p.as_object() else { continue };
            if p.is_empty() {
                continue; // the adapter's catch-all
            }
            let sni = p
                .get("match")
                .and_then(|m| m.get("sni"))
                .map(|v| strings(Some(v)))
                .unwrap_or_default();
            match site.filter(|s| sni.iter().any(|h| lists_host(&s.hosts, h))) {
                Some(site) => self.site_connection_policy(p, &ppath, &site.host, used_tags),
                // Another site's `tls CERT KEY`: reported with the site.
                None if !sni.is_empty() => {}
                None => self.drop(
                    format!(
                        "a TLS connection policy: {}",
                        compact(&Value::Object(p.clone()))
                    ),
                    &ppath,
                ),
            }
        }
    }

    /// The site's connection policy: its certificate tags and SNI matcher
    /// are `tls CERT KEY`; any other option is dropped.
    fn site_connection_policy(
        &mut self,
        p: &Map<String, Value>,
        ppath: &str,
        host: &str,
        used_tags: &mut Vec<String>,
    ) {
        for (pk, pv) in p {
            let only_one = pv.as_object().is_some_and(|o| o.len() == 1);
            match pk.as_str() {
                "certificate_selection" => {
                    let tags = pv
                        .get("any_tag")
                        .map(|t| strings(Some(t)))
                        .unwrap_or_default();
                    if tags.is_empty() || !only_one {
                        self.drop(
                            format!("a certificate selection: {}", compact(pv)),
                            &join(ppath, pk),
                        );
                    }
                    used_tags.extend(tags);
                }
                "match" if !only_one => self.drop(
                    format!("a TLS connection matcher: {}", compact(pv)),
                    &join(ppath, pk),
                ),
                "match" => {}
                other => self.drop(
                    format!("a TLS option for {host}: {other} {}", compact(pv)),
                    &join(ppath, pk),
                ),
            }
        }
    }

    /// A server's `logs`: the loggers of sites (dropped once here, and
    /// remembered so `logging` skips them); other options dropped once.
    fn access_logs(&mut self, v: &Value, kpath: &str, logger_names: &mut Vec<String>) {
        let Some(logs) = v.as_object() else {
            self.drop_once("access logs", kpath);
            return;
        };
        if logs.is_empty() {
            self.drop_once("access logs for every site", kpath);
        }
        for (lk, lv) in logs {
            match lk.as_str() {
                "logger_names" => {
                    let Some(names) = lv.as_object() else {
                        continue;
                    };
                    for (h, n) in names {
                        let list = match n {
                            Value::String(s) => vec![s.clone()],
                            other => strings(Some(other)),
                        };
                        let shown: Vec<String> =
                            list.iter().map(|n| join("logging.logs", n)).collect();
                        self.drop(
                            format!("a logger for {h}"),
                            &format!("{} / {kpath}", shown.join(", ")),
                        );
                        logger_names.extend(list);
                    }
                }
                "skip_hosts" => {}
                other => self.drop_once(
                    format!("access log option `{other}` {}", compact(lv)),
                    &join(kpath, other),
                ),
            }
        }
    }

    /// The Cells reverse_proxy: the upstream, and its other settings dropped.
    fn cells_proxy(&mut self, leaf: &Leaf<'_>) -> Found<Upstream> {
        for c in &leaf.conds {
            self.drop(
                format!("a matcher on the Cells route: {}", compact(c.matcher)),
                &join(&c.route, "match"),
            );
        }
        let mut up = Upstream {
            dial: proxy_dial(leaf.handler).unwrap_or_default(),
            skip_verify: false,
            trusted_ca: None,
            tls: false,
        };
        self.proxy_extras(
            leaf,
            "the Cells `reverse_proxy`",
            &["handler", "upstreams", "transport", "headers"],
        );
        if let Some(headers) = leaf.handler.get("headers") {
            self.upstream_headers(headers, &join(&leaf.path, "headers"));
        }
        if let Some(t) = leaf.handler.get("transport").and_then(Value::as_object) {
            self.upstream_transport(t, &join(&leaf.path, "transport"), &mut up);
        }
        Found {
            value: up,
            from: leaf.path.clone(),
        }
    }

    /// `header_up`/`header_down` of the Cells proxy: `header_up Host
    /// {hostport}` is what cellsctl renders; every other header is dropped.
    fn upstream_headers(&mut self, headers: &Value, hpath: &str) {
        let Some(sides) = headers.as_object() else {
            self.drop(format!("`header_up` {}", compact(headers)), hpath);
            return;
        };
        for (side, ops) in sides {
            let spath = join(hpath, side);
            let directive = if side == "request" {
                "header_up"
            } else {
                "header_down"
            };
            let Some(ops) = ops.as_object() else {
                self.drop(format!("`{directive}` {}", compact(ops)), &spath);
                continue;
            };
            for (op, v) in ops {
                let opath = join(&spath, op);
                let Value::Object(fields) = v else {
                    self.drop(format!("`{directive}` {op} {}", compact(v)), &opath);
                    continue;
                };
                for (name, val) in fields {
                    let keeps_host = side == "request"
                        && op == "set"
                        && name.eq_ignore_ascii_case("host")
                        && strings(Some(val)) == ["{http.request.hostport}"];
                    if !keeps_host {
                        self.drop(
                            format!("`{directive}` {op} {name} {}", compact(val)),
                            &join(&opath, name),
                        );
                    }
                }
            }
        }
    }

    /// `transport http`: its `tls` settings are read; other options dropped.
    fn upstream_transport(&mut self, t: &Map<String, Value>, tpath: &str, up: &mut Upstream) {
        for (k, v) in t {
            let kpath = join(tpath, k);
            match k.as_str() {
                "protocol" => {}
                "tls" => {
                    up.tls = true;
                    if let Some(tls) = v.as_object() {
                        self.upstream_tls(tls, &kpath, up);
                    }
                }
                other => self.drop(
                    format!("transport option `{other}` {}", option_text(other, v)),
                    &kpath,
                ),
            }
        }
    }

    /// The transport's `tls`: `tls_insecure_skip_verify`, and the CA of
    /// `tls_trusted_ca_certs` or `tls_trust_pool file`; the rest dropped.
    fn upstream_tls(&mut self, tls: &Map<String, Value>, kpath: &str, up: &mut Upstream) {
        for (tk, tv) in tls {
            let tkpath = join(kpath, tk);
            match tk.as_str() {
                "insecure_skip_verify" => up.skip_verify = tv.as_bool() == Some(true),
                "root_ca_pem_files" => {
                    up.trusted_ca = self.trusted_ca(&strings(Some(tv)), &tkpath);
                }
                "ca" => {
                    let provider = tv.get("provider").and_then(Value::as_str);
                    let files = strings(tv.get("pem_files"));
                    let only = tv
                        .as_object()
                        .is_some_and(|o| o.keys().all(|k| k == "provider" || k == "pem_files"));
                    if provider == Some("file") && only && !files.is_empty() {
                        up.trusted_ca = self.trusted_ca(&files, &tkpath);
                    } else {
                        self.drop(format!("an upstream trust pool: {}", compact(tv)), &tkpath);
                    }
                }
                other => self.drop(
                    format!("upstream TLS option `{other}` {}", compact(tv)),
                    &tkpath,
                ),
            }
        }
    }

    /// The first CA file is kept: cellsctl trusts one; the others dropped.
    fn trusted_ca(&mut self, files: &[String], path: &str) -> Option<String> {
        for f in files.iter().skip(1) {
            self.drop(format!("another trusted CA file: {f}"), path);
        }
        files.first().cloned()
    }

    /// Settings of a reverse_proxy other than `keep`, and its further upstreams.
    fn proxy_extras(&mut self, leaf: &Leaf<'_>, who: &str, keep: &[&str]) {
        for (k, v) in leaf.handler {
            if keep.contains(&k.as_str()) {
                continue;
            }
            self.drop(
                format!("option `{k}` of {who}: {}", compact(v)),
                &join(&leaf.path, k),
            );
        }
        let upath = join(&leaf.path, "upstreams");
        if let Some(ups) = leaf.handler.get("upstreams").and_then(Value::as_array) {
            for (i, u) in ups.iter().enumerate() {
                let Some(u) = u.as_object() else { continue };
                for (k, v) in u {
                    if i == 0 && k == "dial" {
                        continue;
                    }
                    let what = if k == "dial" {
                        format!("another upstream of {who}: {}", v.as_str().unwrap_or(""))
                    } else {
                        format!("upstream option `{k}` of {who}: {}", compact(v))
                    };
                    self.drop(what, &join(&at(&upath, i), k));
                }
            }
        }
    }

    /// User and raw bcrypt hash of a basic-auth handler; its other options,
    /// providers and matchers other than the Prometheus path are dropped.
    fn basic_auth(&mut self, leaf: &Leaf<'_>) -> BasicAuth {
        let mut auth = BasicAuth::default();
        for (k, v) in leaf.handler {
            let kpath = join(&leaf.path, k);
            match k.as_str() {
                "handler" => {}
                "providers" => {
                    let Some(providers) = v.as_object() else {
                        continue;
                    };
                    for (pk, pv) in providers {
                        let ppath = join(&kpath, pk);
                        if pk != "http_basic" {
                            self.drop(format!("an authentication provider `{pk}`"), &ppath);
                        } else if let Some(basic) = pv.as_object() {
                            auth = self.http_basic(basic, &ppath);
                        }
                    }
                }
                other => self.drop(
                    format!("authentication option `{other}` {}", compact(v)),
                    &kpath,
                ),
            }
        }
        for c in &leaf.conds {
            if path_cond(std::slice::from_ref(c)).is_none() {
                self.drop(
                    format!(
                        "a matcher on the Prometheus basic auth: {}",
                        compact(c.matcher)
                    ),
                    &join(&c.route, "match"),
                );
            }
        }
        auth
    }

    /// The `http_basic` provider: its first account is read (cellsctl
    /// renders one user), the others and its realm and options dropped.
    fn http_basic(&mut self, basic: &Map<String, Value>, ppath: &str) -> BasicAuth {
        let mut auth = BasicAuth::default();
        let algorithm = basic
            .get("hash")
            .and_then(|h| h.get("algorithm"))
            .and_then(Value::as_str)
            .unwrap_or("bcrypt");
        for (bk, bv) in basic {
            let bpath = join(ppath, bk);
            match bk.as_str() {
                "accounts" => {
                    let accounts = bv.as_array().map(Vec::as_slice).unwrap_or_default();
                    for (i, a) in accounts.iter().enumerate() {
                        let apath = at(&bpath, i);
                        if i == 0 {
                            auth = self.basic_auth_account(a, &apath, algorithm);
                        } else {
                            let name = a.get("username").and_then(Value::as_str);
                            self.drop(
                                format!("another basic-auth user: {}", name.unwrap_or("")),
                                &apath,
                            );
                        }
                    }
                }
                "hash" | "hash_cache" => {}
                "realm" => self.drop(format!("basic-auth realm {}", compact(bv)), &bpath),
                other => self.drop(
                    format!("basic-auth option `{other}` {}", compact(bv)),
                    &bpath,
                ),
            }
        }
        auth
    }

    /// A basic-auth account: its user, and its hash as raw bcrypt (cellsctl
    /// keeps bcrypt only; another hash is dropped and needs a new password).
    fn basic_auth_account(&mut self, a: &Value, apath: &str, algorithm: &str) -> BasicAuth {
        let name = a.get("username").and_then(Value::as_str);
        let password = a.get("password").and_then(Value::as_str);
        let mut hash = password.and_then(raw_bcrypt);
        if algorithm != "bcrypt" {
            hash = None;
            self.drop(
                format!("the {algorithm} hash of basic-auth user {}: cellsctl keeps bcrypt only, a new password is needed", name.unwrap_or("")),
                &join(apath, "password"),
            );
        } else if hash.is_none() {
            self.drop(
                format!("the basic-auth hash of {}: not a bcrypt hash ($2a$/$2b$/$2y$, raw or base64), a new password is needed", name.unwrap_or("")),
                &join(apath, "password"),
            );
        }
        if let Some(o) = a.as_object() {
            for (ak, _) in o {
                if !matches!(ak.as_str(), "username" | "password") {
                    self.drop(
                        format!("basic-auth account option `{ak}`"),
                        &join(apath, ak),
                    );
                }
            }
        }
        BasicAuth {
            user: name.map(String::from),
            hash,
        }
    }

    /// The site's public TLS from `apps.tls`, in this order: none for a
    /// plain-HTTP site, a loaded `tls CERT KEY` certificate, the site's
    /// automation policy, Caddy's default. The rest of `apps.tls` is dropped.
    fn tls(&mut self, app: Option<&Value>, ctx: &TlsContext<'_>) -> Found<PublicTls> {
        let empty = Map::new();
        let app = app.and_then(Value::as_object).unwrap_or(&empty);
        let mut found = ctx.plain_http.then(|| Found {
            value: PublicTls::Acme { email: None },
            from: format!("none: the site is plain HTTP ({})", ctx.listen_path),
        });
        for (k, v) in app {
            let kpath = join("apps.tls", k);
            match k.as_str() {
                "certificates" => self.certificates(v, &kpath, ctx, &mut found),
                "automation" => self.automation_options(v, &kpath),
                other => self.drop_once(
                    format!("global TLS option `{other}` {}", compact(v)),
                    &kpath,
                ),
            }
        }
        let found = self.automation_policies(app, ctx, found);
        found.unwrap_or_else(|| {
            let value = if gets_local_cert(&ctx.site.host) {
                PublicTls::Internal
            } else {
                PublicTls::Acme { email: None }
            };
            Found {
                value,
                from: "apps.tls (no policy for the site: Caddy's default)".into(),
            }
        })
    }

    /// `apps.tls.certificates`: `load_files` may hold the site's `tls CERT
    /// KEY`; other ways to get certificates are dropped.
    fn certificates(
        &mut self,
        v: &Value,
        kpath: &str,
        ctx: &TlsContext<'_>,
        found: &mut Option<Found<PublicTls>>,
    ) {
        let Some(certs) = v.as_object() else { return };
        for (ck, cv) in certs {
            let cpath = join(kpath, ck);
            if ck != "load_files" {
                self.drop(format!("global TLS certificates `{ck}`"), &cpath);
                continue;
            }
            let files = cv.as_array().map(Vec::as_slice).unwrap_or_default();
            for (i, f) in files.iter().enumerate() {
                self.loaded_certificate(f, at(&cpath, i), ctx, found);
            }
        }
    }

    /// A loaded certificate with a tag the site's connection policy selects
    /// is its `tls CERT KEY` (the first one, unless the site is plain HTTP);
    /// one without is another site's (reported with it) or dropped.
    fn loaded_certificate(
        &mut self,
        f: &Value,
        fpath: String,
        ctx: &TlsContext<'_>,
        found: &mut Option<Found<PublicTls>>,
    ) {
        let tagged = strings(f.get("tags"))
            .iter()
            .any(|t| ctx.used_tags.contains(t));
        let cert = f.get("certificate").and_then(Value::as_str);
        let key = f.get("key").and_then(Value::as_str);
        let mine = !ctx.plain_http && found.is_none() && tagged;
        match (mine, cert, key) {
            (true, Some(cert), Some(key)) => {
                if let Some(o) = f.as_object() {
                    for (fk, fv) in o {
                        if !matches!(fk.as_str(), "certificate" | "key" | "tags") {
                            self.drop(
                                format!("certificate option `{fk}` {}", compact(fv)),
                                &join(&fpath, fk),
                            );
                        }
                    }
                }
                *found = Some(Found {
                    value: PublicTls::Custom {
                        cert: cert.to_string(),
                        key: key.to_string(),
                    },
                    from: fpath,
                });
            }
            _ if tagged => {}
            _ => self.drop(
                format!("a certificate loaded from {}", cert.unwrap_or("?")),
                &fpath,
            ),
        }
    }

    /// Global TLS automation options (all but `policies`) are dropped.
    fn automation_options(&mut self, v: &Value, kpath: &str) {
        let Some(auto) = v.as_object() else { return };
        for (ak, av) in auto {
            if ak != "policies" {
                self.drop_once(
                    format!("global TLS automation option `{ak}` {}", compact(av)),
                    &join(kpath, ak),
                );
            }
        }
    }

    /// The site's automation policy (the one naming its host, else the
    /// catch-all) gives its TLS unless `found` already holds it; every
    /// other policy is another site's or dropped.
    fn automation_policies(
        &mut self,
        app: &Map<String, Value>,
        ctx: &TlsContext<'_>,
        mut found: Option<Found<PublicTls>>,
    ) -> Option<Found<PublicTls>> {
        let host = ctx.site.host.as_str();
        let policies = app
            .get("automation")
            .and_then(|a| a.get("policies"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mine = policies
            .iter()
            .position(|p| policy_covers(p, host))
            .or_else(|| policies.iter().position(|p| policy_subjects(p).is_empty()));
        for (i, p) in policies.iter().enumerate() {
            let path = at("apps.tls.automation.policies", i);
            if Some(i) == mine && found.is_none() {
                found = Some(Found {
                    value: self.issuers(p, &path, host, ctx.alternate_ports),
                    from: path,
                });
            } else if Some(i) == mine && policy_covers(p, host) && !ctx.plain_http {
                // `tls CERT KEY` plus a policy: the loaded certificate wins.
                self.drop(format!("a TLS automation policy for {host}"), &path);
            } else {
                self.other_policy(p, &path, ctx);
            }
        }
        found
    }

    /// An automation policy that is not the site's: another site's (reported
    /// with it) or dropped.
    fn other_policy(&mut self, p: &Value, path: &str, ctx: &TlsContext<'_>) {
        let host = ctx.site.host.as_str();
        let subs = policy_subjects(p);
        let covers = policy_covers(p, host);
        let all_others = !subs.is_empty()
            && subs
                .iter()
                .all(|s| lists_host(ctx.other_hosts, s) || lists_host(&ctx.site.hosts, s));
        if all_others && !covers {
            return; // the policy of another site, reported with it
        }
        if subs.is_empty() {
            self.drop(
                format!(
                    "a TLS automation policy for any other name (global options such as `email`, `acme_ca`, `local_certs`): {}",
                    compact(p)
                ),
                path,
            );
        } else if !covers {
            self.drop(
                format!("a TLS automation policy for {}", subs.join(" ")),
                path,
            );
        } else {
            self.drop(format!("another TLS automation policy for {host}"), path);
        }
    }

    /// What an automation policy's issuers say; their other options dropped.
    fn issuers(&mut self, p: &Value, path: &str, host: &str, alternate_ports: bool) -> PublicTls {
        let mut kind: Option<PublicTls> = None;
        if let Some(o) = p.as_object() {
            for (k, v) in o {
                if !matches!(k.as_str(), "subjects" | "issuers") {
                    self.drop(
                        format!("TLS option `{k}` for {host}: {}", compact(v)),
                        &join(path, k),
                    );
                }
            }
        }
        let ipath = join(path, "issuers");
        let issuers = p
            .get("issuers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (i, iss) in issuers.iter().enumerate() {
            let ip = at(&ipath, i);
            let empty = Map::new();
            let fields = iss.as_object().unwrap_or(&empty);
            match iss.get("module").and_then(Value::as_str).unwrap_or("") {
                "internal" => self.internal_issuer(fields, &ip, &mut kind),
                module @ ("acme" | "zerossl") => {
                    let issuer = AcmeIssuer {
                        module,
                        index: i,
                        alternate_ports,
                    };
                    self.acme_issuer(fields, &ip, &issuer, &mut kind)
                }
                other => {
                    self.drop(format!("a TLS issuer `{other}`: {}", compact(iss)), &ip);
                }
            }
        }
        kind.unwrap_or(PublicTls::Acme { email: None })
    }

    /// `tls internal`, unless an ACME issuer came first (then it is the
    /// fallback Caddy adds, dropped); its options are dropped.
    fn internal_issuer(
        &mut self,
        fields: &Map<String, Value>,
        ip: &str,
        kind: &mut Option<PublicTls>,
    ) {
        match kind {
            None => *kind = Some(PublicTls::Internal),
            Some(PublicTls::Internal) => {}
            Some(_) => {
                self.drop("a fallback to Caddy's local CA", ip);
                return;
            }
        }
        for (k, v) in fields {
            if k != "module" {
                self.drop_once(
                    format!("`tls internal` option `{k}` {}", compact(v)),
                    &join(ip, k),
                );
            }
        }
    }

    /// An ACME issuer: its email is read (from the first that has one);
    /// Caddy's default CAs and moved challenge ports are structure; the
    /// rest is dropped. After `tls internal` it is a fallback, dropped.
    fn acme_issuer(
        &mut self,
        fields: &Map<String, Value>,
        ip: &str,
        issuer: &AcmeIssuer<'_>,
        kind: &mut Option<PublicTls>,
    ) {
        let email = fields
            .get("email")
            .and_then(Value::as_str)
            .map(String::from);
        match kind {
            None => *kind = Some(PublicTls::Acme { email }),
            Some(PublicTls::Acme { email: e }) => {
                if e.is_none() {
                    *e = email;
                }
            }
            Some(_) => {
                let module = issuer.module;
                self.drop(format!("a fallback ACME issuer ({module})"), ip);
                return;
            }
        }
        for (k, v) in fields {
            let kp = join(ip, k);
            match k.as_str() {
                "module" | "email" => {}
                "ca" => {
                    let ca = v.as_str().unwrap_or("");
                    if !issuer.is_default_ca(ca) {
                        self.drop_once(
                            format!("ACME CA {ca} (global `acme_ca` or `tls {{ ca }}`)"),
                            &kp,
                        );
                    }
                }
                "challenges" if issuer.alternate_ports && only_alternate_ports(v) => {}
                other => self.drop_once(format!("ACME option `{other}` {}", compact(v)), &kp),
            }
        }
    }

    /// `logging`: loggers of sites were reported with their server; a
    /// `default` that only excludes them is structure; the rest is dropped.
    fn logging(&mut self, v: &Value, site_loggers: &[String]) {
        let Some(logging) = v.as_object() else {
            self.drop_once("global option `log`", "logging");
            return;
        };
        for (k, lv) in logging {
            let kpath = join("logging", k);
            if k != "logs" {
                self.drop_once(format!("global logging option `{k}`"), &kpath);
                continue;
            }
            let Some(logs) = lv.as_object() else { continue };
            for (name, log) in logs {
                let lpath = join(&kpath, name);
                if site_loggers.contains(name) {
                    continue;
                }
                let structure = log
                    .as_object()
                    .is_some_and(|o| o.keys().all(|k| k == "exclude"));
                if structure {
                    continue;
                }
                if name == "default" {
                    self.drop_once(
                        format!("global option `log` (the default logger): {}", compact(log)),
                        &lpath,
                    );
                } else {
                    self.drop_once(format!("a logger `{name}`: {}", compact(log)), &lpath);
                }
            }
        }
    }
}

/// An ACME issuer of the site's policy, as Caddy's defaults see it.
struct AcmeIssuer<'a> {
    /// `acme` or `zerossl`.
    module: &'a str,
    /// Its place among the policy's issuers.
    index: usize,
    /// See `Config::alternate_ports`.
    alternate_ports: bool,
}

impl AcmeIssuer<'_> {
    /// Let's Encrypt, or ZeroSSL as the second default issuer (Caddy 2.8+).
    fn is_default_ca(&self, ca: &str) -> bool {
        (self.module == "acme" && self.index > 0 && ca == ZEROSSL_DIRECTORY)
            || ca == LETS_ENCRYPT_DIRECTORY
    }
}

/// A server on the HTTP port whose routes only redirect to https://.
fn is_redirect_server(srv: &Value, http_port: u64, site_hosts: &[String], spath: &str) -> bool {
    let listen = strings(srv.get("listen"));
    !listen.is_empty()
        && listen
            .iter()
            .all(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u64>().ok()) == Some(http_port))
        && srv
            .get("routes")
            .and_then(Value::as_array)
            .is_some_and(|rs| {
                rs.iter()
                    .enumerate()
                    .all(|(i, r)| is_https_redirect(r, &at(&join(spath, "routes"), i), site_hosts))
            })
}

/// A route that only redirects to https://, for the site's hosts or any host.
fn is_https_redirect(route: &Value, path: &str, site_hosts: &[String]) -> bool {
    let Some(r) = route.as_object() else {
        return false;
    };
    let hosts_ok = match r.get("match").and_then(Value::as_array) {
        None => true,
        Some(sets) => sets.iter().all(|set| {
            set.as_object().is_some_and(|o| o.len() == 1)
                && strings(set.get("host"))
                    .iter()
                    .all(|h| site_hosts.iter().any(|s| s.eq_ignore_ascii_case(h)))
        }),
    };
    if !hosts_ok {
        return false;
    }
    let w = walk_route(r, path);
    w.odd.is_empty()
        && !w.leaves.is_empty()
        && w.leaves.iter().all(|l| {
            let status = match l.handler.get("status_code") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            };
            l.name() == "static_response"
                && l.conds.is_empty()
                && status.is_some_and(|s| (300..400).contains(&s))
                && l.handler
                    .get("headers")
                    .and_then(|h| h.get("Location"))
                    .map(|v| strings(Some(v)))
                    .is_some_and(|v| v.len() == 1 && v[0].starts_with("https://"))
        })
}

/// An ACME `challenges` that only moves the challenge ports (set by the
/// global `http_port`/`https_port`, reported on their own).
fn only_alternate_ports(v: &Value) -> bool {
    v.as_object().is_some_and(|c| {
        c.values().all(|ch| {
            ch.as_object()
                .is_some_and(|o| o.keys().all(|k| k == "alternate_port"))
        })
    })
}

/// Names Caddy certifies from its local CA when no policy says otherwise.
fn gets_local_cert(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    h == "localhost"
        || h.parse::<std::net::IpAddr>().is_ok()
        || [".localhost", ".local", ".internal", ".home.arpa"]
            .iter()
            .any(|s| h.ends_with(s))
}

fn host_text(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "(any host)".into()
    } else {
        hosts.join(" ")
    }
}

fn site_list(sites: &[SiteRoute<'_>]) -> String {
    let list: Vec<String> = sites
        .iter()
        .map(|s| format!("{} at {}", host_text(&s.hosts), s.path))
        .collect();
    list.join(", ")
}

/// A setting's value, durations (nanoseconds in the JSON) as `10s`.
fn option_text(key: &str, v: &Value) -> String {
    if key.ends_with("timeout") || key.ends_with("_delay") || key == "grace_period" {
        duration_text(v)
    } else {
        compact(v)
    }
}

fn duration_text(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(ns) if ns % 1_000_000_000 == 0 => format!("{}s", ns / 1_000_000_000),
            Some(ns) => format!("{ns}ns"),
            None => n.to_string(),
        },
        other => compact(other),
    }
}

/// A basic-auth password field as raw bcrypt: kept when it starts with `$`,
/// else base64-decoded (as Caddy does); `None` unless bcrypt.
fn raw_bcrypt(password: &str) -> Option<String> {
    let raw = if password.starts_with('$') {
        password.to_string()
    } else {
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let bytes = engines
            .iter()
            .find_map(|e| e.decode(password.trim()).ok())?;
        String::from_utf8(bytes).ok()?.trim().to_string()
    };
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| raw.starts_with(p))
        .then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Pydio's tutorial, the simple Caddyfile, verbatim.
    const TUTORIAL_SIMPLE: &str = include_str!("../../tests/fixtures/tutorial-simple.Caddyfile");

    /// Pydio's tutorial, the Caddyfile with Prometheus and `basicauth`, verbatim.
    const TUTORIAL_PROMETHEUS: &str =
        include_str!("../../tests/fixtures/tutorial-prometheus.Caddyfile");

    /// `cellsctl init … --caddy-version 2.11.7 --upstream-tls skip-verify --prometheus --prometheus-user u --prometheus-password-hash '$2b$04$…'`, as rendered.
    const RENDERED_2_11_7: &str = r#"# Managed by cellsctl for Caddy 2.11.7. Change the answers and run
# `cellsctl regenerate` rather than editing this file: hand edits are refused.
{
	# Caddy 2.11.6+ aborts a request whose body is idle for 60 s, which kills
	# quiet gRPC streams of the Cells Sync client; -1s turns that off.
	servers {
		timeouts {
			read_body_idle -1s
			write_idle -1s
		}
	}
}

https://cells.example.com {
	tls tls@example.com

	@prometheus path /prometheus /prometheus/*
	handle @prometheus {
		basic_auth {
			u $2b$04$cbs/Xvhk5eAseo8me.YBX.dDIQV2IMHEcw4ula5VFqKpenH3U5m5m
		}
		reverse_proxy 127.0.0.1:9090
	}

	handle {
		reverse_proxy https://127.0.0.1:8080 {
			header_up Host {hostport}
			transport http {
				tls_insecure_skip_verify
			}
		}
	}
}
"#;

    /// The same answers rendered with `--caddy-version 2.6.2`.
    const RENDERED_2_6_2: &str = r#"# Managed by cellsctl for Caddy 2.6.2. Change the answers and run
# `cellsctl regenerate` rather than editing this file: hand edits are refused.

https://cells.example.com {
	tls tls@example.com

	@prometheus path /prometheus /prometheus/*
	handle @prometheus {
		basicauth {
			u $2b$04$cbs/Xvhk5eAseo8me.YBX.dDIQV2IMHEcw4ula5VFqKpenH3U5m5m
		}
		reverse_proxy 127.0.0.1:9090
	}

	handle {
		reverse_proxy https://127.0.0.1:8080 {
			transport http {
				tls_insecure_skip_verify
			}
		}
	}
}
"#;

    /// `--external-url https://cells.example.com:8443 --public-tls internal --caddy-version 2.11.7 --upstream-tls ca`, as rendered.
    const RENDERED_INTERNAL_CA_2_11_7: &str = r#"# Managed by cellsctl for Caddy 2.11.7. Change the answers and run
# `cellsctl regenerate` rather than editing this file: hand edits are refused.
{
	# Caddy 2.11.6+ aborts a request whose body is idle for 60 s, which kills
	# quiet gRPC streams of the Cells Sync client; -1s turns that off.
	servers {
		timeouts {
			read_body_idle -1s
			write_idle -1s
		}
	}
}

https://cells.example.com:8443 {
	tls internal

	handle {
		reverse_proxy https://127.0.0.1:8080 {
			header_up Host {hostport}
			transport http {
				tls_trust_pool file /etc/cellsctl/pki/ca.crt
			}
		}
	}
}
"#;

    /// `--public-tls custom --caddy-version 2.6.2 --upstream-tls ca`, as rendered (the cert and key paths put below /etc/ssl/cells).
    const RENDERED_CUSTOM_CA_2_6_2: &str = r#"# Managed by cellsctl for Caddy 2.6.2. Change the answers and run
# `cellsctl regenerate` rather than editing this file: hand edits are refused.

https://cells.example.com {
	tls /etc/ssl/cells/cells.crt /etc/ssl/cells/cells.key

	handle {
		reverse_proxy https://127.0.0.1:8080 {
			transport http {
				tls_trusted_ca_certs /etc/cellsctl/pki/ca.crt
			}
		}
	}
}
"#;

    /// `--external-url http://cells.example.com --public-tls off --caddy-version 2.11.7 --upstream-tls skip-verify`, as rendered.
    const RENDERED_OFF_2_11_7: &str = r#"# Managed by cellsctl for Caddy 2.11.7. Change the answers and run
# `cellsctl regenerate` rather than editing this file: hand edits are refused.
{
	# Caddy 2.11.6+ aborts a request whose body is idle for 60 s, which kills
	# quiet gRPC streams of the Cells Sync client; -1s turns that off.
	servers {
		timeouts {
			read_body_idle -1s
			write_idle -1s
		}
	}
}

http://cells.example.com {
	handle {
		reverse_proxy https://127.0.0.1:8080 {
			header_up Host {hostport}
			transport http {
				tls_insecure_skip_verify
			}
		}
	}
}
"#;

    const TUTORIAL_HASH: &str = "$2a$14$fZwf4Tqy9kGocZWpg0/cjOcE93R/iJs1YC4rlLYXIHX.ikBbv1tFm";
    const RENDERED_HASH: &str = "$2b$04$cbs/Xvhk5eAseo8me.YBX.dDIQV2IMHEcw4ula5VFqKpenH3U5m5m";

    /// Debian's caddy (2.6.2), required under CI, and the pip build
    /// (2.11.7) in the project's .venv when present.
    fn caddies() -> Vec<PathBuf> {
        let debian = PathBuf::from("/usr/bin/caddy");
        if !debian.is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "/usr/bin/caddy is missing (apt-get install caddy)"
            );
            eprintln!("SKIP: no /usr/bin/caddy");
            return Vec::new();
        }
        let mut all = vec![debian];
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/caddy");
        if venv.is_file() {
            all.push(venv);
        } else {
            eprintln!("SKIP: no .venv/bin/caddy (2.11.7): testing 2.6.2 only");
        }
        all
    }

    fn version(caddy: &Path) -> String {
        let out = Command::new(caddy).arg("version").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let first = text.split_whitespace().next().unwrap_or("").to_string();
        first.trim_start_matches('v').to_string()
    }

    /// `caddy adapt` of `caddyfile`, in a scratch home.
    fn adapt(caddy: &Path, caddyfile: &str) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, caddyfile).unwrap();
        let out = Command::new(caddy)
            .args(["adapt", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} adapt failed: {}\n{caddyfile}",
            caddy.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn read_with(caddy: &Path, caddyfile: &str) -> Read {
        let json = adapt(caddy, caddyfile);
        read(&json).unwrap_or_else(|e| panic!("{}: {e}\n{json:#}", caddy.display()))
    }

    fn acme(email: &str) -> PublicTls {
        PublicTls::Acme {
            email: Some(email.into()),
        }
    }

    fn assert_tutorial_upstream(r: &Read) {
        assert_eq!(
            r.upstream.value,
            Upstream {
                dial: "localhost:8080".into(),
                skip_verify: true,
                trusted_ca: None,
                tls: true,
            }
        );
    }

    #[test]
    fn tutorial_simple_reads_back_with_nothing_dropped() {
        for caddy in caddies() {
            let r = read_with(&caddy, TUTORIAL_SIMPLE);
            let v = version(&caddy);
            assert_eq!(r.site.value, "cells.example.com", "{v}");
            assert_eq!(
                r.site.from,
                "apps.http.servers.srv0.routes[0].match[0].host"
            );
            assert_eq!(r.external_url.value, "https://cells.example.com");
            assert!(!r.plain_http);
            assert_eq!(r.tls.value, acme("tls@example.com"), "{v}");
            assert_eq!(r.tls.from, "apps.tls.automation.policies[0]");
            assert_tutorial_upstream(&r);
            assert_eq!(
                r.upstream.from,
                "apps.http.servers.srv0.routes[0].handle[0].routes[0].handle[0]"
            );
            assert_eq!(r.prometheus, None);
            assert!(r.dropped.is_empty(), "{v}: {:?}", r.dropped);
            assert!(r.notes.is_empty(), "{v}: {:?}", r.notes);
        }
    }

    #[test]
    fn tutorial_with_prometheus_reads_back_with_nothing_dropped() {
        for caddy in caddies() {
            let r = read_with(&caddy, TUTORIAL_PROMETHEUS);
            let v = version(&caddy);
            assert_eq!(r.site.value, "cells.example.com", "{v}");
            assert_eq!(r.external_url.value, "https://cells.example.com");
            assert_eq!(r.tls.value, acme("tls@example.com"), "{v}");
            assert_tutorial_upstream(&r);
            assert_eq!(
                r.upstream.from,
                "apps.http.servers.srv0.routes[0].handle[0].routes[1].handle[0]"
            );
            let p = r.prometheus.as_ref().expect("a Prometheus route");
            assert_eq!(
                p.from,
                "apps.http.servers.srv0.routes[0].handle[0].routes[0]"
            );
            assert_eq!(
                p.value,
                PrometheusRoute {
                    path: "/prometheus".into(),
                    matcher: vec!["/prometheus*".into()],
                    dial: "localhost:9090".into(),
                    user: Some("sysadminUser".into()),
                    hash: Some(TUTORIAL_HASH.into()),
                },
                "{v}"
            );
            assert!(p.value.hash.as_deref().unwrap().starts_with("$2a$14$"));
            assert!(r.dropped.is_empty(), "{v}: {:?}", r.dropped);
            assert_eq!(r.notes.len(), 1, "{v}: {:?}", r.notes);
            assert!(
                r.notes[0].contains("also matches /prometheusX"),
                "{:?}",
                r.notes
            );
        }
    }

    /// The simple tutorial with `extra` inserted in the site block after
    /// the `tls` line, and `after` appended.
    fn simple_with(extra: &str, after: &str) -> String {
        let text = TUTORIAL_SIMPLE.replacen(
            "  tls tls@example.com\n",
            &format!("  tls tls@example.com\n{extra}"),
            1,
        );
        assert!(extra.is_empty() || text != TUTORIAL_SIMPLE);
        format!("{text}{after}")
    }

    const SECOND_SITE: &str = "other.example.com {\n  respond \"hi\"\n}\n";
    const HEADER: &str = "  header X-Frame-Options DENY\n";
    const LOG: &str = "  log {\n    output stdout\n  }\n";

    #[test]
    fn tutorial_plus_what_cellsctl_drops_names_each() {
        for caddy in caddies() {
            let v = version(&caddy);
            let second = read_with(&caddy, &simple_with("", SECOND_SITE));
            assert_eq!(
                second.dropped,
                ["a second site: other.example.com (apps.http.servers.srv0.routes[1])"],
                "{v}"
            );
            let header = read_with(&caddy, &simple_with(HEADER, ""));
            assert_eq!(
                header.dropped,
                ["a `header` directive (`headers` handler: X-Frame-Options) (apps.http.servers.srv0.routes[0].handle[0].routes[0].handle[0])"],
                "{v}"
            );
            let log = read_with(&caddy, &simple_with(LOG, ""));
            assert_eq!(
                log.dropped,
                ["a logger for cells.example.com (logging.logs.log0 / apps.http.servers.srv0.logs)"],
                "{v}"
            );
            let all = read_with(&caddy, &simple_with(&format!("{HEADER}{LOG}"), SECOND_SITE));
            assert_eq!(all.dropped.len(), 3, "{v}: {:#?}", all.dropped);
            for want in [
                "other.example.com",
                "X-Frame-Options",
                "a logger for cells.example.com",
            ] {
                assert!(
                    all.dropped.iter().any(|d| d.contains(want)),
                    "{v}: {want} in {:#?}",
                    all.dropped
                );
            }
            for r in [&second, &header, &log, &all] {
                assert_eq!(r.site.value, "cells.example.com");
                assert_eq!(r.tls.value, acme("tls@example.com"));
                assert_tutorial_upstream(r);
            }
        }
    }

    /// What cellsctl renders for Prometheus, acme and skip-verify.
    fn assert_rendered(r: &Read, v: &str) {
        assert_eq!(r.site.value, "cells.example.com", "{v}");
        assert_eq!(r.external_url.value, "https://cells.example.com");
        assert_eq!(r.tls.value, acme("tls@example.com"), "{v}");
        assert_eq!(
            r.upstream.value,
            Upstream {
                dial: "127.0.0.1:8080".into(),
                skip_verify: true,
                trusted_ca: None,
                tls: true,
            }
        );
        let p = r.prometheus.as_ref().expect("a Prometheus route");
        assert_eq!(
            p.value,
            PrometheusRoute {
                path: "/prometheus".into(),
                matcher: vec!["/prometheus".into(), "/prometheus/*".into()],
                dial: "127.0.0.1:9090".into(),
                user: Some("u".into()),
                hash: Some(RENDERED_HASH.into()),
            },
            "{v}"
        );
        assert!(r.dropped.is_empty(), "{v}: {:#?}", r.dropped);
        assert!(r.notes.is_empty(), "{v}: {:#?}", r.notes);
    }

    #[test]
    fn cellsctl_rendering_reads_back_with_nothing_dropped() {
        for caddy in caddies() {
            let v = version(&caddy);
            if v.starts_with("2.11") {
                let json = adapt(&caddy, RENDERED_2_11_7);
                let srv = &json["apps"]["http"]["servers"]["srv0"];
                assert_eq!(srv["read_idle_timeout"], json!(-1_000_000_000i64));
                assert_eq!(srv["write_idle_timeout"], json!(-1_000_000_000i64));
                let r = read(&json).unwrap();
                assert_rendered(&r, &v);

                let r = read_with(&caddy, RENDERED_INTERNAL_CA_2_11_7);
                assert_eq!(r.site.value, "cells.example.com:8443");
                assert_eq!(r.external_url.value, "https://cells.example.com:8443");
                assert_eq!(r.tls.value, PublicTls::Internal);
                assert_eq!(
                    r.upstream.value,
                    Upstream {
                        dial: "127.0.0.1:8080".into(),
                        skip_verify: false,
                        trusted_ca: Some("/etc/cellsctl/pki/ca.crt".into()),
                        tls: true,
                    }
                );
                assert_eq!(r.prometheus, None);
                assert!(r.dropped.is_empty(), "{v}: {:#?}", r.dropped);

                let r = read_with(&caddy, RENDERED_OFF_2_11_7);
                assert!(r.plain_http);
                assert_eq!(r.site.value, "http://cells.example.com");
                assert_eq!(r.external_url.value, "http://cells.example.com");
                assert!(r.tls.from.contains("plain HTTP"), "{}", r.tls.from);
                assert!(r.dropped.is_empty(), "{v}: {:#?}", r.dropped);
            }
            // 2.11 takes the 2.6.2 rendering too (`basicauth` with a warning).
            assert_rendered(&read_with(&caddy, RENDERED_2_6_2), &v);
            let r = read_with(&caddy, RENDERED_CUSTOM_CA_2_6_2);
            assert_eq!(
                r.tls.value,
                PublicTls::Custom {
                    cert: "/etc/ssl/cells/cells.crt".into(),
                    key: "/etc/ssl/cells/cells.key".into(),
                }
            );
            assert_eq!(r.tls.from, "apps.tls.certificates.load_files[0]");
            assert_eq!(
                r.upstream.value.trusted_ca.as_deref(),
                Some("/etc/cellsctl/pki/ca.crt")
            );
            assert!(!r.upstream.value.skip_verify);
            assert!(r.dropped.is_empty(), "{v}: {:#?}", r.dropped);
        }
    }

    #[test]
    fn a_busy_caddyfile_names_every_dropped_item() {
        let text = r#"{
	email admin@example.com
	admin localhost:2999
	acme_ca https://acme-staging-v02.api.letsencrypt.org/directory
	skip_install_trust
	http_port 8081
	log {
		output stderr
	}
	servers {
		timeouts {
			read_body 10s
		}
		protocols h1 h2
	}
}

cells.example.com, www.cells.example.com {
	tls tls@example.com {
		protocols tls1.3
	}
	encode gzip
	basicauth /private/* {
		bob $2a$14$fZwf4Tqy9kGocZWpg0/cjOcE93R/iJs1YC4rlLYXIHX.ikBbv1tFm
	}
	reverse_proxy /collabora/* localhost:9980
	reverse_proxy localhost:8080 {
		header_up X-Real-IP {remote_host}
		flush_interval -1
		transport http {
			tls
			tls_insecure_skip_verify
			dial_timeout 5s
		}
	}
	handle_errors {
		respond "oops"
	}
}

http://plain.example.com {
	redir https://cells.example.com{uri}
}
"#;
        for caddy in caddies() {
            let v = version(&caddy);
            let r = read_with(&caddy, text);
            assert_eq!(r.site.value, "cells.example.com");
            assert_eq!(r.tls.value, acme("tls@example.com"));
            assert_eq!(r.upstream.value.dial, "localhost:8080");
            let wants = [
                "global option `admin`",
                "ACME CA https://acme-staging-v02",
                "skip_install_trust",
                "global option `http_port`",
                "global option `log`",
                "timeouts read_body 10s",
                "protocols [\"h1\",\"h2\"]",
                "another address of the site: www.cells.example.com",
                "protocol_min",
                "`encode`",
                "`basic_auth`",
                "a `reverse_proxy` to localhost:9980",
                "`header_up` set X-Real-Ip",
                "flush_interval",
                "dial_timeout` 5s",
                "handle_errors",
                "a second site: plain.example.com",
            ];
            for want in wants {
                assert!(
                    r.dropped.iter().any(|d| d.contains(want)),
                    "{v}: {want:?} not in {:#?}",
                    r.dropped
                );
            }
            // One line each: global server options are not repeated per server.
            let timeouts = r.dropped.iter().filter(|d| d.contains("read_body")).count();
            assert_eq!(timeouts, 1, "{v}: {:#?}", r.dropped);
            assert!(
                r.dropped.iter().all(|d| d.ends_with(')')),
                "{:#?}",
                r.dropped
            );
        }
    }

    #[test]
    fn a_hand_written_https_redirect_is_not_a_second_site() {
        let text = "cells.example.com {\n\ttls tls@example.com\n\treverse_proxy https://localhost:8080\n}\n\nhttp://cells.example.com {\n\tredir https://{host}{uri}\n}\n";
        for caddy in caddies() {
            let r = read_with(&caddy, text);
            assert!(r.dropped.is_empty(), "{:#?}", r.dropped);
            assert_eq!(r.notes.len(), 1, "{:#?}", r.notes);
            assert!(r.notes[0].contains("redirect"));
            assert!(r.upstream.value.tls);
            assert!(!r.upstream.value.skip_verify);
        }
    }

    /// The adapted JSON of the tutorial with Prometheus (the same on 2.6.2
    /// and 2.11.7), for the tests that need no caddy.
    fn tutorial_prometheus_json() -> Value {
        json!({"apps":{"http":{"servers":{"srv0":{"listen":[":443"],"routes":[{"match":[{"host":["cells.example.com"]}],"handle":[{"handler":"subroute","routes":[{"handle":[{"handler":"authentication","providers":{"http_basic":{"accounts":[{"password":"JDJhJDE0JGZad2Y0VHF5OWtHb2NaV3BnMC9jak9jRTkzUi9pSnMxWUM0cmxMWVhJSFguaWtCYnYxdEZt","username":"sysadminUser"}],"hash":{"algorithm":"bcrypt"},"hash_cache":{}}}},{"handler":"subroute","routes":[{"handle":[{"handler":"reverse_proxy","upstreams":[{"dial":"localhost:9090"}]}]}]}],"match":[{"path":["/prometheus*"]}]},{"handle":[{"handler":"reverse_proxy","transport":{"protocol":"http","tls":{"insecure_skip_verify":true}},"upstreams":[{"dial":"localhost:8080"}]}]}]}],"terminal":true}]}}},"tls":{"automation":{"policies":[{"subjects":["cells.example.com"],"issuers":[{"email":"tls@example.com","module":"acme"},{"ca":"https://acme.zerossl.com/v2/DV90","email":"tls@example.com","module":"acme"}]}]}}}})
    }

    #[test]
    fn reads_the_tutorial_json_without_caddy() {
        let r = read(&tutorial_prometheus_json()).unwrap();
        assert_eq!(r.site.value, "cells.example.com");
        assert_eq!(r.tls.value, acme("tls@example.com"));
        let p = r.prometheus.unwrap().value;
        assert_eq!(p.hash.as_deref(), Some(TUTORIAL_HASH));
        assert_eq!(p.user.as_deref(), Some("sysadminUser"));
        assert!(r.dropped.is_empty(), "{:?}", r.dropped);
    }

    #[test]
    fn bcrypt_hashes_are_kept_raw_or_decoded() {
        assert_eq!(raw_bcrypt(RENDERED_HASH).as_deref(), Some(RENDERED_HASH));
        let b64 = base64::engine::general_purpose::STANDARD.encode(TUTORIAL_HASH);
        assert_eq!(raw_bcrypt(&b64).as_deref(), Some(TUTORIAL_HASH));
        let y = "$2y$10$abcdefghijklmnopqrstuu5Sx1TvbS0q9kYhYOqEkN0A1Zq1B8gk2";
        assert_eq!(raw_bcrypt(y).as_deref(), Some(y));
        assert_eq!(raw_bcrypt("not base64 !"), None);
        let scrypt = base64::engine::general_purpose::STANDARD.encode("$argon2id$v=19$m=1");
        assert_eq!(raw_bcrypt(&scrypt), None);
    }

    #[test]
    fn path_prefixes() {
        let p = |v: &[&str]| path_prefix(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(p(&["/prometheus*"]).as_deref(), Some("/prometheus"));
        assert_eq!(p(&["/prometheus/*"]).as_deref(), Some("/prometheus"));
        assert_eq!(
            p(&["/prometheus", "/prometheus/*"]).as_deref(),
            Some("/prometheus")
        );
        assert_eq!(
            p(&["/prometheus/*", "/prometheus"]).as_deref(),
            Some("/prometheus")
        );
        assert_eq!(p(&["/metrics"]).as_deref(), Some("/metrics"));
        assert_eq!(p(&["/a", "/b/*"]), None);
        assert_eq!(p(&["*"]), None);
        assert_eq!(p(&["/*"]), None);
    }

    #[test]
    fn refuses_configs_it_cannot_adopt() {
        assert!(read(&json!([]))
            .unwrap_err()
            .contains("not a Caddy JSON config"));
        assert!(read(&json!({"apps": {}}))
            .unwrap_err()
            .contains("no `apps.http`"));
        let no_site = json!({"apps": {"http": {"servers": {"srv0": {"listen": [":443"]}}}}});
        assert!(read(&no_site).unwrap_err().contains("no site"));
        let no_proxy = json!({"apps": {"http": {"servers": {"srv0": {"listen": [":443"], "routes": [
            {"match": [{"host": ["cells.example.com"]}], "handle": [{"handler": "static_response", "body": "hi"}]}
        ]}}}}});
        let e = read(&no_proxy).unwrap_err();
        assert!(e.contains("no site has a `reverse_proxy`"), "{e}");
        let no_host = json!({"apps": {"http": {"servers": {"srv0": {"listen": [":443"], "routes": [
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "localhost:8080"}]}]}
        ]}}}}});
        let e = read(&no_host).unwrap_err();
        assert!(e.contains("no host name"), "{e}");
    }

    fn site(host: &str, dial: &str) -> Value {
        json!({"match": [{"host": [host]}], "handle": [{"handler": "subroute", "routes": [
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}]}
        ]}], "terminal": true})
    }

    #[test]
    fn several_proxying_sites_need_a_host_to_choose() {
        let two = json!({"apps": {"http": {"servers": {"srv0": {"listen": [":443"], "routes": [
            site("a.example.com", "localhost:8080"), site("b.example.com", "localhost:8081")
        ]}}}}});
        let e = read(&two).unwrap_err();
        assert!(e.contains("several sites"), "{e}");
        assert!(
            e.contains("a.example.com") && e.contains("b.example.com"),
            "{e}"
        );
        let r = read_site(&two, Some("b.example.com")).unwrap();
        assert_eq!(r.site.value, "b.example.com");
        assert_eq!(r.upstream.value.dial, "localhost:8081");
        assert!(!r.upstream.value.tls);
        assert_eq!(
            r.dropped,
            ["a second site: a.example.com (apps.http.servers.srv0.routes[0])"]
        );
        // A host that no site has does not choose.
        assert!(read_site(&two, Some("c.example.com")).is_err());
    }

    #[test]
    fn two_catch_all_proxies_are_ambiguous_and_a_path_matched_one_is_dropped() {
        let proxy = |dial: &str| json!({"handler": "reverse_proxy", "upstreams": [{"dial": dial}]});
        let with = |routes: Value| {
            json!({"apps": {"http": {"servers": {"srv0": {"listen": [":443"], "routes": [
                {"match": [{"host": ["cells.example.com"]}], "handle": [{"handler": "subroute", "routes": routes}]}
            ]}}}}})
        };
        let two = with(
            json!([{"handle": [proxy("localhost:8080")]}, {"handle": [proxy("localhost:8081")]}]),
        );
        let e = read(&two).unwrap_err();
        assert!(e.contains("several `reverse_proxy` candidates"), "{e}");
        let collabora = with(json!([
            {"match": [{"path": ["/cool/*"]}], "handle": [proxy("localhost:9980")]},
            {"handle": [proxy("localhost:8080")]}
        ]));
        let r = read(&collabora).unwrap();
        assert_eq!(r.upstream.value.dial, "localhost:8080");
        assert_eq!(r.prometheus, None);
        assert_eq!(
            r.dropped,
            [
                r#"a `reverse_proxy` to localhost:9980 matching [{"path":["/cool/*"]}] (apps.http.servers.srv0.routes[0].handle[0].routes[0].handle[0])"#
            ]
        );
        // Only one proxy, behind a matcher: it is Cells, its matcher dropped.
        let only =
            with(json!([{"match": [{"path": ["/cells/*"]}], "handle": [proxy("localhost:8080")]}]));
        let r = read(&only).unwrap();
        assert_eq!(r.upstream.value.dial, "localhost:8080");
        assert_eq!(r.dropped.len(), 1, "{:?}", r.dropped);
        assert!(r.dropped[0].starts_with("a matcher on the Cells route"));
    }
}
