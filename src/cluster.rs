//! Cluster mode: several Cells nodes behind one Caddy, on Cells' own
//! cluster services (etcd, NATS, Redis, Vault; MariaDB, MongoDB and S3 set
//! once by the first node's install file). The answers here are validated
//! newtypes like every other answer: a node name, an address or a service
//! URL that could break a unit file or the Caddyfile cannot be built.

use crate::answers::{string_newtype, string_newtype_serde, AbsPath, Host};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A node's name: `[a-z][a-z0-9-]{0,30}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeName(String);

impl NodeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut bytes = s.bytes();
        let ok = s.len() <= 31
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(NodeName(s.to_string()))
        } else {
            Err(format!(
                "node name {s:?}: expected a lower-case letter, then up to 30 lower-case letters, digits or '-'"
            ))
        }
    }
}

/// One node: `NAME=IP:PORT`, where IP:PORT is its Cells site bind, an
/// address the proxy host reaches it at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: NodeName,
    pub addr: SocketAddr,
}

impl FromStr for Node {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ACCEPTED: &str =
            "expected NAME=IP:PORT, e.g. node1=10.0.0.11:8080 (IPv6: node1=[fd00::11]:8080)";
        let (name, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: {ACCEPTED}"))?;
        let name: NodeName = name.parse()?;
        let addr: SocketAddr = addr.parse().map_err(|_| format!("{s:?}: {ACCEPTED}"))?;
        if let SocketAddr::V6(v6) = addr {
            if v6.scope_id() != 0 || v6.flowinfo() != 0 {
                return Err(format!(
                    "{s:?}: no IPv6 zone id or flow label (systemd and Caddy would misread it); give a global or unique-local address"
                ));
            }
        }
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(format!(
                "{s:?}: the address must be the node's own IP (the proxy dials it), not {} or port 0",
                addr.ip()
            ));
        }
        Ok(Node { name, addr })
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.addr)
    }
}

string_newtype_serde!(Node);

impl Node {
    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }
}

/// Every node, in the order given (the first one runs `cells configure`).
/// As one answer: `--node` repeated, or comma-separated text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nodes(pub Vec<Node>);

impl FromStr for Nodes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let nodes = s
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Node>, _>>()?;
        Nodes::new(nodes)
    }
}

impl Nodes {
    /// Names and addresses each once.
    pub fn new(nodes: Vec<Node>) -> Result<Nodes, String> {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(other) = nodes[..i]
                .iter()
                .find(|o| o.name == n.name || o.addr == n.addr)
            {
                return Err(format!(
                    "{n} and {other}: each node needs its own name and address"
                ));
            }
        }
        Ok(Nodes(nodes))
    }
}

impl fmt::Display for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(Node::to_string).collect();
        f.write_str(&all.join(","))
    }
}

/// A shared service's address: one of its schemes, a host and a port,
/// nothing else (cellsctl adds the paths and queries Cells expects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: &'static str,
    pub host: Host,
    pub port: u16,
}

impl Endpoint {
    fn parse(s: &str, schemes: &[&'static str]) -> Result<Endpoint, String> {
        let accepted = schemes
            .iter()
            .map(|sc| format!("{sc}://HOST:PORT"))
            .collect::<Vec<_>>()
            .join(" or ");
        // The value is not repeated: it could hold credentials.
        if s.contains('@') {
            return Err(format!("expected {accepted}: no user or password in the URL (cellsctl does not pass credentials to these services)"));
        }
        let bad = || format!("expected {accepted} (scheme, host and port only)");
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let scheme = schemes
            .iter()
            .copied()
            .find(|sc| *sc == scheme)
            .ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = Host::parse_bare(host).ok_or_else(bad)?;
        if matches!(host, Host::Ip(IpAddr::V6(_))) && !rest.starts_with('[') {
            return Err(bad());
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0 && port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        Ok(Endpoint { scheme, host, port })
    }

    /// `scheme://host:port` followed by `rest` (a path and query Cells expects).
    pub fn url(&self, rest: &str) -> String {
        format!(
            "{}://{}:{}{rest}",
            self.scheme,
            self.host.url_form(),
            self.port
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url(""))
    }
}

macro_rules! endpoint {
    ($(#[$doc:meta])* $t:ident, [$($scheme:literal),+]) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $t(pub Endpoint);
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Endpoint::parse(s, &[$($scheme),+]).map($t)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        string_newtype_serde!($t);
    };
}

endpoint!(
    /// etcd: Cells' config, its encrypted part and the registry.
    EtcdUrl, ["etcd", "etcd+tls"]
);
endpoint!(
    /// NATS with JetStream: broker and job queues.
    NatsUrl, ["nats"]
);
endpoint!(
    /// Redis: the cache.
    RedisUrl, ["redis", "redis+tls"]
);
endpoint!(
    /// Vault: the keyring and the certificate store.
    VaultUrl, ["vault", "vaults"]
);

/// The S3 endpoint as given: `http(s)://HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Endpoint(String);

impl FromStr for S3Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The value is not repeated: it could hold credentials.
        let bad = || {
            "expected http://HOST[:PORT] or https://HOST[:PORT] (no user, password or path)"
                .to_string()
        };
        if s.contains('@') {
            return Err(bad());
        }
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !rest.ends_with(']') => (h, Some(p)),
            _ => (rest, None),
        };
        Host::parse_bare(host).ok_or_else(bad)?;
        if let Some(p) = port {
            p.parse::<u16>()
                .ok()
                .filter(|n| *n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(bad)?;
        }
        Ok(S3Endpoint(s.to_string()))
    }
}

/// An S3 access key id: `[A-Za-z0-9._+/=-]`, 1 to 128 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3AccessKey(String);

impl FromStr for S3AccessKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+/=-".contains(&b));
        if ok {
            Ok(S3AccessKey(s.to_string()))
        } else {
            Err(
                "expected 1-128 characters: ASCII letters, digits, '.', '_', '+', '/', '=', '-'"
                    .into(),
            )
        }
    }
}

string_newtype!(NodeName);
string_newtype!(S3Endpoint);
string_newtype!(S3AccessKey);

/// Where the secrets came from when they came from files: kept in the
/// state (never their content) so `node-bundle` can read them again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_token: Option<AbsPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongodb_dsn: Option<AbsPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_secret_key: Option<AbsPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<AbsPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_password: Option<AbsPath>,
}

/// The cluster answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub etcd: EtcdUrl,
    pub nats: NatsUrl,
    pub redis: RedisUrl,
    pub vault: VaultUrl,
    pub s3_endpoint: S3Endpoint,
    pub s3_access_key: S3AccessKey,
    #[serde(default)]
    pub secret_files: SecretFiles,
    /// The modification time (Unix seconds) of every file in a node
    /// bundle: set when the answers change, so a bundle is the same bytes
    /// for the same state.
    #[serde(default)]
    pub bundle_mtime: i64,
}

impl Cluster {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name.as_str() == name)
    }

    /// The environment every node's `cells start` gets to find the shared
    /// services (the token is in cells.env, not here).
    pub fn services_env(&self) -> Vec<(String, String)> {
        let etcd = &self.etcd.0;
        [
            ("CELLS_CONFIG", etcd.url("/config")),
            ("CELLS_VAULT", etcd.url("/vault")),
            ("CELLS_REGISTRY", etcd.url("/registry")),
            ("CELLS_BROKER", self.nats.0.url("")),
            ("CELLS_PERSISTQUEUE", self.nats.0.url("")),
            ("CELLS_CACHE", self.redis.0.url("")),
            ("CELLS_KEYRING", self.vault.0.url("/secret?key=master")),
            ("CELLS_CERTS_STORE", self.vault.0.url("/caddycerts")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Where the proxy host keeps a node's certificate and key, so bundles can
/// be produced again (0600 root).
pub fn node_dir(name: &NodeName) -> String {
    format!("/etc/cellsctl/nodes/{name}")
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    #[test]
    fn nodes_and_urls_take_only_what_fits() {
        assert!("node1=10.0.0.11:8080".parse::<Node>().is_ok());
        assert!("n-2=[fd00::2]:8080".parse::<Node>().is_ok());
        for bad in [
            "Node1=10.0.0.1:8080",
            "1node=10.0.0.1:8080",
            "node1=0.0.0.0:8080",
            "node1=cells.example.com:8080",
            "node1=10.0.0.1",
            "node 1=10.0.0.1:80",
            "node1=10.0.0.1:8080\nExecStart=/bin/sh",
            &format!("{}=10.0.0.1:80", "a".repeat(32)),
        ] {
            assert!(bad.parse::<Node>().is_err(), "{bad:?}");
        }
        assert!(
            "a=10.0.0.1:80,b=10.0.0.1:80".parse::<Nodes>().is_err(),
            "same address twice"
        );
        assert!(
            "a=10.0.0.1:80,a=10.0.0.2:80".parse::<Nodes>().is_err(),
            "same name twice"
        );
        let etcd: EtcdUrl = "etcd+tls://etcd.internal:2379".parse().unwrap();
        assert_eq!(
            etcd.0.url("/config"),
            "etcd+tls://etcd.internal:2379/config"
        );
        for bad in [
            "http://etcd:2379",
            "etcd://etcd:2379/x",
            "etcd://etcd",
            "etcd://etcd:2379?x=1",
            "etcd://e tc:2379",
            "etcd://etcd:2379\n",
        ] {
            assert!(bad.parse::<EtcdUrl>().is_err(), "{bad:?}");
        }
        assert!("vaults://[fd00::5]:8200".parse::<VaultUrl>().is_ok());
        assert!("nats+tls://n:4222".parse::<NatsUrl>().is_err());
        assert!("https://s3.internal:9000".parse::<S3Endpoint>().is_ok());
        assert!("https://s3.internal:9000/bucket"
            .parse::<S3Endpoint>()
            .is_err());
        assert!("AKIA/x+y=".parse::<S3AccessKey>().is_ok());
        assert!("AKIA x".parse::<S3AccessKey>().is_err());
    }
}
