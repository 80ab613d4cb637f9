//! Inputs -> Answers -> Plan: everything that happens before anything is
//! written. Reads (install.yml, the key material, Debian's Prometheus
//! defaults), never writes.

use crate::answers::{Answers, UpstreamTls};
use crate::apply::Known;
use crate::error::Error;
use crate::inputs::install::{self, InstallPlan};
use crate::inputs::{self, Given, Resolved};
use crate::pki::{self, CertAndKey, Pki};
use crate::plan::Plan;
use crate::render::{self, paths, RenderInputs};
use crate::root::{inspect, inspect_following, under_root, Found, MANAGED_FILE_LIMIT};
use crate::state::sha256_hex;
use crate::state::{FileRecord, State};
use crate::ui;
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;

/// The answers, install.yml's fate, the key material and every file.
pub struct Prepared {
    pub resolved: Resolved,
    pub install: InstallPlan,
    pub pki: Option<Pki>,
    /// Cluster mode: the CA and every node's certificate.
    pub cluster_pki: Option<pki::ClusterPki>,
    /// Every file, the state record last.
    pub plan: Plan,
    /// The run may write only what the plan holds, then fails with this
    /// (install.yml unreadable: nothing but a due certificate is written).
    pub blocked: Option<Error>,
}

/// With `--provision`, a used install.yml is written again when Cells has
/// no configuration (its `pydio.json` was moved away) and both passwords
/// are given: the way to run `cells configure` anew.
fn configure_again(
    root: &Path,
    given: &Given,
    answers: &crate::answers::Answers,
    install: InstallPlan,
) -> Result<InstallPlan, Error> {
    let config = crate::provision::cells_config_file(answers.cells.working_dir.as_str());
    if !given.reconfigure
        || !matches!(install, InstallPlan::Consumed)
        || crate::root::under_root(root, &config).exists()
    {
        return Ok(install);
    }
    use crate::secrets::SecretKind;
    match (
        given.secrets.read(SecretKind::Admin)?,
        given.secrets.read(SecretKind::Database)?,
    ) {
        (Some(admin_password), Some(db_password)) => {
            Ok(InstallPlan::Write(crate::render::InstallSecrets {
                admin_password,
                db_password,
            }))
        }
        _ => Ok(install),
    }
}

/// `force`: key material on disk that cellsctl did not write is adopted.
pub fn prepare(
    root: &Path,
    given: &Given,
    saved: Option<&State>,
    force: bool,
    now: OffsetDateTime,
) -> Result<Prepared, Error> {
    ui::step("resolving the answers");
    // Missing answers are reported together: the answers', then install.yml's.
    // In cluster mode this host has no install.yml: the first node's bundle carries it.
    let saved_cluster = saved.and_then(|s| s.answers.cluster.as_ref());
    let install_plan = if given.adopting {
        Ok(InstallPlan::Consumed)
    } else if inputs::cluster::is_cluster(&given.answers, saved_cluster) {
        Ok(InstallPlan::Untouched)
    } else {
        install::plan(root, &given.secrets, saved)
    };
    let (mut resolved, install) = match (inputs::resolve(root, given, saved), install_plan) {
        (Ok(r), Ok(i)) => (r, i),
        (_, Err(e @ Error::InstallUnreadable { .. })) => {
            return renew_only(root, saved, force, now, e)
        }
        (Err(Error::Missing(mut a)), Err(Error::Missing(b))) => {
            a.extend(b);
            return Err(Error::Missing(a));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let install = configure_again(root, given, &resolved.answers, install)?;
    let answers = &resolved.answers;
    prometheus_defaults_leave_the_flags(root, answers)?;
    let trust = KeyTrust::read(root, saved, force)?;
    let (pki, cluster_pki) = match &answers.cluster {
        None => (key_material(root, answers, &trust, now)?, None),
        Some(c) => (None, cluster_key_material(root, answers, c, &trust, now)?),
    };
    if pki.is_some() || cluster_pki.is_some() {
        resolved.notes.extend(trust.adopted(root)?);
    }
    bundle_time(&mut resolved.answers, saved, now);
    let answers = &resolved.answers;
    ui::step(format!("rendering for Caddy {}", answers.caddy_version));
    let mut plan = render::plan(
        answers,
        &RenderInputs {
            install_secrets: install.secrets(),
            pki: pki.as_ref(),
            cluster_pki: cluster_pki.as_ref(),
        },
    )?;
    plan.absent.extend(removed_nodes(saved, answers));
    let consumed = matches!(install, InstallPlan::Consumed);
    let state = State::record(answers, &resolved.caddy, &plan, saved, consumed);
    plan.files.push(state.planned_file()?);
    Ok(Prepared {
        resolved,
        install,
        pki,
        cluster_pki,
        plan,
        blocked: None,
    })
}

/// Cluster mode with upstream TLS `ca`: the CA and each node's certificate,
/// kept on this host below /etc/cellsctl/nodes so bundles can be made again.
fn cluster_key_material(
    root: &Path,
    a: &Answers,
    c: &crate::cluster::Cluster,
    trust: &KeyTrust,
    now: OffsetDateTime,
) -> Result<Option<pki::ClusterPki>, Error> {
    if a.upstream_tls != UpstreamTls::Ca {
        return Ok(None);
    }
    ui::step("checking the private CA and each node's certificate");
    let mut nodes = Vec::new();
    for n in &c.nodes {
        let (cert, key) = render::node_paths(&n.name);
        nodes.push((
            n.name.clone(),
            trust.pair(root, &cert, &key)?,
            pki::node_sans(n.ip(), &a.external_url.host),
        ));
    }
    pki::ensure_cluster(
        trust.pair(root, paths::CA_CERT, paths::CA_KEY)?,
        nodes,
        &a.external_url.host,
        a.cert_days,
        now,
    )
    .map(Some)
}

/// The time node bundles give their files: kept while the answers stay the
/// same, so a bundle is the same bytes for the same state.
fn bundle_time(a: &mut Answers, saved: Option<&State>, now: OffsetDateTime) {
    let without_time = |a: &Answers| {
        let mut a = a.clone();
        if let Some(c) = a.cluster.as_mut() {
            c.bundle_mtime = 0;
        }
        a
    };
    let kept = saved
        .filter(|s| without_time(&s.answers) == without_time(a))
        .and_then(|s| s.answers.cluster.as_ref())
        .map(|c| c.bundle_mtime);
    if let Some(c) = a.cluster.as_mut() {
        c.bundle_mtime = kept.unwrap_or(now.unix_timestamp());
    }
}

/// The files of nodes no longer in the list, or of every node once the
/// upstream is no longer verified (recorded by an earlier run).
fn removed_nodes(saved: Option<&State>, a: &Answers) -> Vec<crate::plan::AbsentFile> {
    let Some(saved) = saved else {
        return Vec::new();
    };
    // Without upstream TLS `ca` no node keeps a certificate here.
    let keep: Vec<(String, String)> = a
        .cluster
        .iter()
        .filter(|_| a.upstream_tls == UpstreamTls::Ca)
        .flat_map(|c| c.nodes.iter().map(|n| render::node_paths(&n.name)))
        .collect();
    saved
        .files
        .keys()
        .filter(|p| p.starts_with(render::NODES_DIR))
        .filter(|p| !keep.iter().any(|(c, k)| c == *p || k == *p))
        .map(|p| crate::plan::AbsentFile {
            path: p.clone(),
            mode: 0o600,
            affects: vec![],
        })
        .collect()
}

/// The key material's files.
const KEY_MATERIAL: [&str; 4] = [
    paths::CA_CERT,
    paths::CA_KEY,
    paths::CELLS_CERT,
    paths::CELLS_KEY,
];

/// install.yml cannot be read: with the saved answers, nothing is planned
/// but a certificate that is due for renewal (so the one on disk never
/// expires; Cells loads it when it next restarts) and its record; the run
/// then fails naming install.yml.
fn renew_only(
    root: &Path,
    saved: Option<&State>,
    force: bool,
    now: OffsetDateTime,
    blocked: Error,
) -> Result<Prepared, Error> {
    let Some(saved) = saved else {
        return Err(blocked);
    };
    let resolved = inputs::resolve(root, &Given::default(), Some(saved))?;
    let trust = KeyTrust::read(root, Some(saved), force)?;
    let pki = key_material(root, &resolved.answers, &trust, now)?;
    let mut plan = Plan::default();
    if pki
        .as_ref()
        .is_some_and(|p| p.ca_issued || p.leaf_issued.is_some())
    {
        let inputs = RenderInputs {
            install_secrets: None,
            pki: pki.as_ref(),
            cluster_pki: None,
        };
        plan.files = render::plan(&resolved.answers, &inputs)?
            .files
            .into_iter()
            .filter(|f| KEY_MATERIAL.contains(&f.path.as_str()))
            .collect();
        let mut state = saved.clone();
        for f in &plan.files {
            let sha256 = sha256_hex(&f.contents);
            state.files.insert(f.path.clone(), FileRecord { sha256 });
        }
        plan.files.push(state.planned_file()?);
    }
    Ok(Prepared {
        resolved,
        install: InstallPlan::Untouched,
        pki,
        cluster_pki: None,
        plan,
        blocked: Some(blocked),
    })
}

/// Prometheus refuses a flag given twice: Debian's `ARGS` must not set one
/// the drop-in sets.
fn prometheus_defaults_leave_the_flags(root: &Path, answers: &Answers) -> Result<(), Error> {
    if answers.prometheus.is_none() {
        return Ok(());
    }
    let defaults_path = under_root(root, paths::PROMETHEUS_DEFAULTS);
    let text = match inspect_following(&defaults_path, MANAGED_FILE_LIMIT)? {
        Found::Regular(r) => String::from_utf8_lossy(&r.bytes).into_owned(),
        Found::Missing => return Ok(()),
        Found::Unusual(what) => {
            return Err(Error::runtime(format!(
                "{} is {what}; cellsctl reads it to check Prometheus' ARGS",
                defaults_path.display()
            )))
        }
    };
    let clash = render::prometheus::conflicting_default_args(&text);
    if clash.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "--prometheus: {} already sets {} in ARGS, and Prometheus refuses a flag given twice; remove {} from ARGS there (cellsctl's drop-in sets {})",
        defaults_path.display(),
        clash.join(", "),
        if clash.len() == 1 { "it" } else { "them" },
        render::prometheus::DROPIN_FLAGS.join(", ")
    )))
}

/// Which key material on disk cellsctl may take as its own: what it
/// recorded, what an interrupted run intended to write, or (with `--force`)
/// whatever is there. Anything else is left for `apply::decide` to refuse
/// as a hand edit, like any other file: a CA swapped in by someone else is
/// never adopted silently.
struct KeyTrust<'a> {
    known: Known<'a>,
    force: bool,
}

/// No state yet: nothing recorded.
static NOTHING_RECORDED: BTreeMap<String, FileRecord> = BTreeMap::new();

impl<'a> KeyTrust<'a> {
    fn read(root: &Path, saved: Option<&'a State>, force: bool) -> Result<KeyTrust<'a>, Error> {
        let previous = saved.map_or(&NOTHING_RECORDED, |s| &s.files);
        Ok(KeyTrust {
            known: Known::read(root, paths::INTENT, previous)?,
            force,
        })
    }

    /// cellsctl wrote these bytes (or was about to, when a run was cut short).
    fn is_own(&self, path: &str, text: &str) -> bool {
        self.known.is_own(path, text.as_bytes())
    }

    fn trusts(&self, path: &str, text: &str) -> bool {
        self.force || self.is_own(path, text)
    }

    /// Notes for the key material taken only because of `--force`.
    fn adopted(&self, root: &Path) -> Result<Vec<String>, Error> {
        let mut notes = Vec::new();
        if !self.force {
            return Ok(notes);
        }
        for path in [
            paths::CA_CERT,
            paths::CA_KEY,
            paths::CELLS_CERT,
            paths::CELLS_KEY,
        ] {
            if let Found::Regular(r) = inspect(&under_root(root, path), MANAGED_FILE_LIMIT)? {
                if !self.is_own(path, &String::from_utf8_lossy(&r.bytes)) {
                    notes.push(format!(
                        "{path} is not what cellsctl wrote; taken as it is (--force)"
                    ));
                }
            }
        }
        Ok(notes)
    }

    /// A certificate and key pair below the root, if both exist and are trusted.
    fn pair(&self, root: &Path, cert: &str, key: &str) -> Result<Option<CertAndKey>, Error> {
        let read = |path: &str| -> Result<Option<String>, Error> {
            let text = match inspect(&under_root(root, path), MANAGED_FILE_LIMIT)? {
                Found::Regular(r) => String::from_utf8(r.bytes).ok(),
                Found::Missing | Found::Unusual(_) => None,
            };
            Ok(text.filter(|t| self.trusts(path, t)))
        };
        match (read(cert)?, read(key)?) {
            (Some(cert_pem), Some(key_pem)) => Ok(Some(CertAndKey { cert_pem, key_pem })),
            _ => Ok(None),
        }
    }
}

/// With upstream TLS `ca`: the CA and Cells certificate on disk, kept or renewed.
fn key_material(
    root: &Path,
    a: &Answers,
    trust: &KeyTrust,
    now: OffsetDateTime,
) -> Result<Option<Pki>, Error> {
    if a.upstream_tls != UpstreamTls::Ca {
        return Ok(None);
    }
    ui::step("checking the private CA and the Cells certificate");
    pki::ensure(
        trust.pair(root, paths::CA_CERT, paths::CA_KEY)?,
        trust.pair(root, paths::CELLS_CERT, paths::CELLS_KEY)?,
        &a.external_url.host,
        &pki::wanted_sans(a),
        a.cert_days,
        now,
    )
    .map(Some)
}
