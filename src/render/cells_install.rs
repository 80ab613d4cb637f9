//! Cells' install file for `cells configure --yaml`, serialized from a typed
//! struct. Keys are the Go field names in lower case, matched
//! case-sensitively by Cells (see the Cells reference).

use super::{paths, InstallSecrets};
use crate::answers::{Answers, UpstreamTls};
use crate::error::Error;
use crate::secrets::Secret;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct InstallFile {
    pub proxyconfig: ProxyConfig,
    pub frontendlogin: String,
    pub frontendpassword: String,
    pub dbconnectiontype: String,
    pub dbtcphostname: String,
    pub dbtcpport: String,
    pub dbtcpname: String,
    pub dbtcpuser: String,
    pub dbtcppassword: String,
    /// Cluster (first node): MongoDB and S3, set once in the shared config.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStores>,
}

/// The first node's extra keys in cluster mode.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct ClusterStores {
    pub documentsdsn: String,
    pub usedocumentsdsn: bool,
    pub dstype: String,
    pub dss3custom: String,
    pub dss3apikey: String,
    pub dss3apisecret: String,
}

/// The secrets only the first node's install file holds.
pub struct ClusterSecrets {
    pub mongodb_dsn: Secret,
    pub s3_secret_key: Secret,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct ProxyConfig {
    pub binds: Vec<String>,
    pub reverseproxyurl: String,
    pub tlsconfig: TlsConfig,
}

/// Exactly one of the two is set. A plain map, not a serde enum: the YAML
/// serializer would write an enum as a `!tag`, which Cells' parser rejects.
#[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub certificate: Option<TlsCertificate>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub selfsigned: Option<TlsSelfSigned>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct TlsCertificate {
    pub certfile: String,
    pub keyfile: String,
    pub cellsrootca: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct TlsSelfSigned {
    pub hostnames: Vec<String>,
}

pub fn render(a: &Answers, secrets: &InstallSecrets) -> Result<String, Error> {
    render_file(a, secrets, a.bind.to_string(), None)
}

/// The first node's install file: its site bound on all addresses at the
/// node's port, and MongoDB and S3 for the whole cluster.
pub fn render_first_node(
    a: &Answers,
    c: &crate::cluster::Cluster,
    node: &crate::cluster::Node,
    secrets: &InstallSecrets,
    cluster: &ClusterSecrets,
) -> Result<String, Error> {
    let stores = ClusterStores {
        documentsdsn: cluster.mongodb_dsn.expose().into(),
        usedocumentsdsn: true,
        dstype: "S3".into(),
        dss3custom: c.s3_endpoint.to_string(),
        dss3apikey: c.s3_access_key.to_string(),
        dss3apisecret: cluster.s3_secret_key.expose().into(),
    };
    let bind = format!("0.0.0.0:{}", node.addr.port());
    render_file(a, secrets, bind, Some(stores))
}

fn render_file(
    a: &Answers,
    secrets: &InstallSecrets,
    bind: String,
    cluster: Option<ClusterStores>,
) -> Result<String, Error> {
    let tlsconfig = match a.upstream_tls {
        UpstreamTls::Ca => TlsConfig {
            certificate: Some(TlsCertificate {
                certfile: paths::CELLS_CERT.into(),
                keyfile: paths::CELLS_KEY.into(),
                cellsrootca: paths::CA_CERT.into(),
            }),
            selfsigned: None,
        },
        UpstreamTls::SkipVerify => TlsConfig {
            certificate: None,
            selfsigned: Some(TlsSelfSigned {
                hostnames: crate::pki::wanted_sans(a).into_iter().collect(),
            }),
        },
    };
    let file = InstallFile {
        proxyconfig: ProxyConfig {
            binds: vec![bind],
            reverseproxyurl: a.external_url.to_string(),
            tlsconfig,
        },
        frontendlogin: a.admin_login.to_string(),
        frontendpassword: secrets.admin_password.expose().into(),
        dbconnectiontype: "tcp".into(),
        dbtcphostname: a.database.host.to_string(),
        dbtcpport: a.database.port.to_string(),
        dbtcpname: a.database.name.to_string(),
        dbtcpuser: a.database.user.to_string(),
        dbtcppassword: secrets.db_password.expose().into(),
        cluster,
    };
    let body = serde_yaml::to_string(&file)
        .map_err(|e| Error::runtime(format!("serializing install.yml: {e}")))?;
    // Secrets cannot contain `{$`, but a serializer could in theory build one
    // across a quote or escape; Cells would then substitute it. Never write that.
    if body.contains("{$") {
        return Err(Error::runtime("internal: install.yml would contain '{$', which Cells would replace with an environment variable".to_string()));
    }
    Ok(format!(
        "# Managed by cellsctl. Run once as the Cells user:\n#   CELLS_WORKING_DIR={} {} configure --yaml {}\n# then delete this file: it holds the admin and database passwords.\n{body}",
        a.cells.working_dir,
        a.cells.binary,
        paths::INSTALL_YML
    ))
}

/// The keys whose values are secrets.
pub const SECRET_KEYS: [&str; 5] = [
    "frontendpassword",
    "frontendrepeatpassword",
    "dbtcppassword",
    "documentsdsn",
    "dss3apisecret",
];

/// The secrets an existing install.yml holds, so regenerate can rewrite its site fields.
pub fn secrets_from_existing(text: &str) -> Result<InstallSecrets, String> {
    let file: InstallFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    Ok(InstallSecrets {
        admin_password: Secret::new(file.frontendpassword)
            .map_err(|e| format!("frontendpassword {e}"))?,
        db_password: Secret::new(file.dbtcppassword).map_err(|e| format!("dbtcppassword {e}"))?,
    })
}
