//! Cluster answers: `--node` twice or more turns cluster mode on; then
//! every shared service and secret is required (the secrets when the mode
//! is first turned on: later runs on the proxy host do not need them, only
//! `node-bundle` does).

use super::{Field, Layer, Missing};
use crate::answers::AbsPath;
use crate::cluster::{Cluster, Nodes, SecretFiles};
use crate::error::Error;
use crate::secrets::{GivenSecrets, SecretKind};
use std::path::Path;

/// The secrets a cluster needs, in the order they are reported missing.
pub const SECRETS: [SecretKind; 5] = [
    SecretKind::VaultToken,
    SecretKind::MongodbDsn,
    SecretKind::S3SecretKey,
    SecretKind::Admin,
    SecretKind::Database,
];

const SERVICE_FIELDS: [Field; 6] = [
    Field::EtcdUrl,
    Field::NatsUrl,
    Field::RedisUrl,
    Field::VaultUrl,
    Field::S3Endpoint,
    Field::S3AccessKey,
];

/// Whether these answers are for a cluster (decided before the rest, as
/// the proxy host then has no install.yml of its own).
pub fn is_cluster(flags: &Layer, saved: Option<&Cluster>) -> bool {
    match &flags.node {
        Some(nodes) => nodes.0.len() >= 2,
        None => saved.is_some(),
    }
}

pub(super) fn resolve(
    flags: &Layer,
    merged: &Layer,
    secrets: &GivenSecrets,
    saved: Option<&Cluster>,
    prometheus_on: bool,
    missing: &mut Missing,
) -> Result<Option<Cluster>, Error> {
    let Some(nodes) = &merged.node else {
        return cluster_flags_need_nodes(flags, secrets).map(|()| None);
    };
    let nodes = Nodes::new(nodes.0.clone()).map_err(|e| Error::usage(format!("--node: {e}")))?;
    if nodes.0.len() < 2 {
        return Err(Error::usage(
            "--node: one node is not a cluster; give --node once per node, two or more (for a single Cells, use --bind)",
        ));
    }
    if prometheus_on {
        return Err(Error::usage(
            "--prometheus: not with --node for now: Cells writes its metrics targets on each node, which a Prometheus on this host cannot read; turn it off with --no-prometheus",
        ));
    }
    let secret_files = secret_files(secrets, saved, missing)?;
    let etcd = missing.need(merged.etcd_url.clone(), Field::EtcdUrl);
    let nats = missing.need(merged.nats_url.clone(), Field::NatsUrl);
    let redis = missing.need(merged.redis_url.clone(), Field::RedisUrl);
    let vault = missing.need(merged.vault_url.clone(), Field::VaultUrl);
    let s3_endpoint = missing.need(merged.s3_endpoint.clone(), Field::S3Endpoint);
    let s3_access_key = missing.need(merged.s3_access_key.clone(), Field::S3AccessKey);
    let (Some(etcd), Some(nats), Some(redis), Some(vault), Some(s3_endpoint), Some(s3_access_key)) =
        (etcd, nats, redis, vault, s3_endpoint, s3_access_key)
    else {
        return Ok(None);
    };
    Ok(Some(Cluster {
        nodes: nodes.0,
        etcd,
        nats,
        redis,
        vault,
        s3_endpoint,
        s3_access_key,
        secret_files,
        bundle_mtime: 0,
    }))
}

/// Each secret checked when given; the paths of those given as files
/// recorded (else the ones recorded before). When cluster mode is first
/// turned on, every secret must be given.
fn secret_files(
    secrets: &GivenSecrets,
    saved: Option<&Cluster>,
    missing: &mut Missing,
) -> Result<SecretFiles, Error> {
    let before = saved.map(|c| c.secret_files.clone()).unwrap_or_default();
    let mut files = SecretFiles::default();
    for kind in SECRETS {
        let given = secrets.read(kind)?;
        let path = secrets.get(kind).file.as_deref().and_then(recordable);
        let slot = match kind {
            SecretKind::VaultToken => (&mut files.vault_token, &before.vault_token),
            SecretKind::MongodbDsn => (&mut files.mongodb_dsn, &before.mongodb_dsn),
            SecretKind::S3SecretKey => (&mut files.s3_secret_key, &before.s3_secret_key),
            SecretKind::Admin => (&mut files.admin_password, &before.admin_password),
            _ => (&mut files.db_password, &before.db_password),
        };
        *slot.0 = path.or_else(|| {
            if given.is_some() {
                None
            } else {
                slot.1.clone()
            }
        });
        if given.is_none() && saved.is_none() {
            missing.0.push(kind.how());
        }
    }
    Ok(files)
}

/// A secret file's absolute path, when it can be written into the state:
/// a regular file only root can change (node-bundle reads it again later,
/// as root: a terminal, a pipe or a file someone else can replace is not
/// recorded, and must be given again then).
fn recordable(path: &Path) -> Option<AbsPath> {
    let absolute = std::fs::canonicalize(path).ok()?;
    trusted_secret_file(&absolute).then_some(())?;
    absolute.to_str()?.parse().ok()
}

/// A regular file (not a link), owned by root, not writable by group or
/// others, in a directory only root can change.
pub fn trusted_secret_file(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let safe = |m: &std::fs::Metadata| m.uid() == 0 && m.mode() & 0o022 == 0;
    let file_ok =
        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file() && safe(&m));
    let dir_ok = path
        .parent()
        .and_then(|d| std::fs::symlink_metadata(d).ok())
        .is_some_and(|m| m.is_dir() && safe(&m));
    file_ok && dir_ok
}

/// Cluster flags without `--node`: a mistake, named.
fn cluster_flags_need_nodes(flags: &Layer, secrets: &GivenSecrets) -> Result<(), Error> {
    let mut given: Vec<&str> = SERVICE_FIELDS
        .iter()
        .filter(|f| flags.is_set(**f))
        .map(|f| f.flag())
        .collect();
    given.extend(
        SECRETS[..3]
            .iter()
            .filter(|k| secrets.get(**k).file.is_some())
            .map(|k| k.file_flag()),
    );
    if given.is_empty() {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{}: cluster flags, but no cluster: give --node NAME=IP:PORT once per node (two or more)",
            given.join(", ")
        )))
    }
}
