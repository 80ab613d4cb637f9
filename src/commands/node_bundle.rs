//! `cellsctl node-bundle NAME`: one cluster node's files as a tar archive on
//! stdout, to unpack on that node with `tar -xpf - -C /`. Regular files
//! only (a directory entry would reset the modes of /etc on extraction),
//! owners by name, every mtime the state's: the same bytes for the same
//! state. Secrets come from the same flags and env as `init`, else from the
//! files the state recorded; one that came from env and is not given again
//! stops the run naming it.

use crate::answers::{Answers, UpstreamTls};
use crate::cli::NodeBundleArgs;
use crate::cluster::{Cluster, Node, SecretFiles};
use crate::error::Error;
use crate::render::cells_install::{self, ClusterSecrets};
use crate::render::{self, paths, systemd, InstallSecrets};
use crate::root::{inspect, under_root, Found, MANAGED_FILE_LIMIT};
use crate::secrets::{GivenSecrets, Secret, SecretInput, SecretKind};
use crate::state;
use std::path::Path;

/// One file of the archive.
struct Entry {
    path: &'static str,
    mode: u32,
    user: String,
    group: String,
    contents: Vec<u8>,
}

pub fn run(args: &NodeBundleArgs) -> Result<(), Error> {
    let root = args.root.as_path();
    let state = state::require(root)?;
    let a = &state.answers;
    let Some(c) = &a.cluster else {
        return Err(Error::usage(
            "node-bundle: this deployment is not a cluster (give --node twice or more to init or regenerate)",
        ));
    };
    let Some(node) = c.node(&args.name) else {
        let known: Vec<String> = c.nodes.iter().map(|n| n.name.to_string()).collect();
        return Err(Error::usage(format!(
            "node-bundle: no node named {:?}; the nodes are: {}",
            args.name,
            known.join(", ")
        )));
    };
    let secrets = given_secrets(args, &c.secret_files);
    let first = c.nodes.first().is_some_and(|n| n.name == node.name);
    let entries = entries(root, a, c, node, &secrets, first)?;
    let archive = tar(&entries, c.bundle_mtime)?;
    use std::io::Write;
    std::io::stdout()
        .write_all(&archive)
        .map_err(|e| Error::runtime(format!("cannot write to stdout: {e}")))
}

/// The flags and env given now, over the secret files the state recorded.
fn given_secrets(args: &NodeBundleArgs, recorded: &SecretFiles) -> GivenSecrets {
    // A recorded path is read only while it is still a file only root can
    // change (it may have been replaced since init); else it counts as not given.
    let pick = |flag: &Option<std::path::PathBuf>, saved: &Option<crate::answers::AbsPath>| {
        flag.clone().or_else(|| {
            saved
                .as_ref()
                .map(|p| std::path::PathBuf::from(p.as_str()))
                .filter(|p| crate::inputs::cluster::trusted_secret_file(p))
        })
    };
    let mut g = GivenSecrets::default();
    for (kind, file) in [
        (
            SecretKind::VaultToken,
            pick(&args.vault_token_file, &recorded.vault_token),
        ),
        (
            SecretKind::MongodbDsn,
            pick(&args.mongodb_dsn_file, &recorded.mongodb_dsn),
        ),
        (
            SecretKind::S3SecretKey,
            pick(&args.s3_secret_key_file, &recorded.s3_secret_key),
        ),
        (
            SecretKind::Admin,
            pick(&args.admin_password_file, &recorded.admin_password),
        ),
        (
            SecretKind::Database,
            pick(&args.db_password_file, &recorded.db_password),
        ),
    ] {
        // A file flag given now wins over the env; the env over a recorded file.
        let value = std::env::var(kind.env_var()).ok();
        let given_file = match kind {
            SecretKind::VaultToken => args.vault_token_file.is_some(),
            SecretKind::MongodbDsn => args.mongodb_dsn_file.is_some(),
            SecretKind::S3SecretKey => args.s3_secret_key_file.is_some(),
            SecretKind::Admin => args.admin_password_file.is_some(),
            _ => args.db_password_file.is_some(),
        };
        *g.get_mut(kind) = SecretInput {
            file: if given_file || value.is_none() {
                file
            } else {
                None
            },
            value,
            ..SecretInput::default()
        };
    }
    g
}

fn need(secrets: &GivenSecrets, kind: SecretKind) -> Result<Secret, Error> {
    secrets.read(kind)?.ok_or_else(|| {
        Error::usage(format!(
            "node-bundle: {} is needed and was not given (a secret given by env to init is not kept: give it again)",
            kind.how()
        ))
    })
}

/// A file the proxy host keeps (the CA certificate, a node's pair).
fn kept(root: &Path, path: &str) -> Result<Vec<u8>, Error> {
    match inspect(&under_root(root, path), MANAGED_FILE_LIMIT)? {
        Found::Regular(r) => Ok(r.bytes),
        _ => Err(Error::runtime(format!(
            "{} is missing or not a regular file: run `cellsctl regenerate` to issue it again",
            under_root(root, path).display()
        ))),
    }
}

fn entries(
    root: &Path,
    a: &Answers,
    c: &Cluster,
    node: &Node,
    secrets: &GivenSecrets,
    first: bool,
) -> Result<Vec<Entry>, Error> {
    let cells_user = a.cells.user.to_string();
    let file = |path: &'static str, mode: u32, group: &str, contents: Vec<u8>| Entry {
        path,
        mode,
        user: "root".into(),
        group: group.into(),
        contents,
    };
    let token = need(secrets, SecretKind::VaultToken)?;
    let mut out = vec![
        file(
            paths::CELLS_UNIT,
            0o644,
            "root",
            systemd::render_node_unit(a, c, node)?.into_bytes(),
        ),
        file(
            systemd::CELLS_ENV,
            0o600,
            "root",
            format!(
                "# Managed by cellsctl: Vault's token for this Cells node.\nVAULT_TOKEN={}\n",
                token.expose()
            )
            .into_bytes(),
        ),
    ];
    if a.upstream_tls == UpstreamTls::Ca {
        let (cert, key) = render::node_paths(&node.name);
        out.push(file(
            paths::CA_CERT,
            0o644,
            "root",
            kept(root, paths::CA_CERT)?,
        ));
        out.push(file(paths::CELLS_CERT, 0o644, "root", kept(root, &cert)?));
        out.push(file(
            paths::CELLS_KEY,
            0o640,
            &cells_user,
            kept(root, &key)?,
        ));
    }
    if first {
        let install = InstallSecrets {
            admin_password: need(secrets, SecretKind::Admin)?,
            db_password: need(secrets, SecretKind::Database)?,
        };
        let stores = ClusterSecrets {
            mongodb_dsn: need(secrets, SecretKind::MongodbDsn)?,
            s3_secret_key: need(secrets, SecretKind::S3SecretKey)?,
        };
        let text = cells_install::render_first_node(a, c, node, &install, &stores)?;
        out.push(Entry {
            path: paths::INSTALL_YML,
            mode: 0o600,
            user: cells_user.clone(),
            group: cells_user,
            contents: text.into_bytes(),
        });
    }
    Ok(out)
}

/// The archive: ustar headers, paths relative to /, owners by name (uid
/// and gid 0: tar as root maps the names on the node).
fn tar(entries: &[Entry], mtime: i64) -> Result<Vec<u8>, Error> {
    let bad = |e: std::io::Error| Error::runtime(format!("building the archive: {e}"));
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_path(e.path.trim_start_matches('/')).map_err(bad)?;
        h.set_size(e.contents.len() as u64);
        h.set_mode(e.mode);
        h.set_mtime(u64::try_from(mtime).unwrap_or(0));
        h.set_uid(0);
        h.set_gid(0);
        h.set_username(&e.user).map_err(bad)?;
        h.set_groupname(&e.group).map_err(bad)?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        builder.append(&h, e.contents.as_slice()).map_err(bad)?;
    }
    builder.into_inner().map_err(bad)
}
