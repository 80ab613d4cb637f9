//! `cellsctl adopt`: take over a deployment made by hand (Pydio's Caddy v2
//! tutorial). Reads what is there without changing it: the Caddyfile
//! through the installed caddy's `caddy adapt` (never by hand), the Cells
//! unit and Prometheus' flags; maps it to answers (flags win); names what
//! the rendering would drop. The generate pipeline does the rest.

pub mod caddy_json;

use crate::error::Error;
use crate::inputs::{Field, Layer};
use crate::render::paths;
use crate::root::{read_optional_text, under_root};
use std::path::Path;

/// What was read: answers (each with where it came from), what the
/// rendering would drop, and what will change and why.
pub struct Adopted {
    /// The answer flags given: what they set is not read.
    flags: Layer,
    pub answers: Layer,
    pub sources: Vec<String>,
    pub dropped: Vec<String>,
    pub changes: Vec<String>,
}

impl Adopted {
    fn take(&mut self, field: Field, raw: &str, from: &str) -> Result<(), Error> {
        if self.flags.is_set(field) {
            self.sources
                .push(format!("{:<26} (given; {from} not used)", field.flag()));
            return Ok(());
        }
        self.answers.set(field, raw).map_err(|e| {
            Error::usage(format!(
                "adopt: {from} gives {} = {raw:?}, which cellsctl cannot take: {e}; give {} yourself",
                field.flag(),
                field.usage()
            ))
        })?;
        self.sources
            .push(format!("{:<26} {raw}  <- {from}", field.flag()));
        Ok(())
    }
}

/// Reads the deployment below `root`; what `flags` give is not read.
pub fn read(root: &Path, flags: &Layer) -> Result<Adopted, Error> {
    let caddyfile = under_root(root, paths::CADDYFILE);
    if std::fs::symlink_metadata(&caddyfile).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::usage(format!(
            "adopt: {} is a symbolic link; cellsctl writes a regular file there (and keeps a backup of a file, not of a link): put the file it points to in its place, then adopt",
            caddyfile.display()
        )));
    }
    let adapted = adapt(&caddyfile)?;
    let found = caddy_json::read(&adapted).map_err(|e| {
        Error::usage(format!(
            "adopt: {} is not a set-up cellsctl can take over: {e}",
            caddyfile.display()
        ))
    })?;
    let mut a = Adopted {
        flags: flags.clone(),
        answers: Layer::default(),
        sources: Vec::new(),
        dropped: found.dropped.clone(),
        changes: Vec::new(),
    };
    let cf = |from: &str| format!("{} ({from})", paths::CADDYFILE);
    let url = &found.external_url;
    a.take(Field::ExternalUrl, &url.value, &cf(&url.from))?;
    a.changes.extend(found.notes.iter().cloned());
    let tls_from = cf(&found.tls.from);
    match &found.tls.value {
        _ if found.plain_http => a.take(Field::PublicTls, "off", &tls_from)?,
        caddy_json::PublicTls::Acme { email } => {
            a.take(Field::PublicTls, "acme", &tls_from)?;
            if let Some(e) = email {
                a.take(Field::AcmeEmail, e, &tls_from)?;
            }
        }
        caddy_json::PublicTls::Internal => a.take(Field::PublicTls, "internal", &tls_from)?,
        caddy_json::PublicTls::Custom { cert, key } => {
            a.take(Field::PublicTls, "custom", &tls_from)?;
            a.take(Field::PublicCert, cert, &tls_from)?;
            a.take(Field::PublicKey, key, &tls_from)?;
        }
    }
    let up = &found.upstream;
    let up_from = cf(&up.from);
    if !up.value.tls {
        a.take(Field::UpstreamTls, "skip-verify", &up_from)?;
        a.changes.push("Caddy speaks plain HTTP to Cells today, which breaks Cells Sync (gRPC needs TLS end to end): Cells will serve its own self-signed certificate over TLS and Caddy will not verify it (skip-verify); `cellsctl regenerate --upstream-tls ca` then moves to cellsctl's CA".into());
    } else if up.value.skip_verify {
        a.take(Field::UpstreamTls, "skip-verify", &up_from)?;
        a.changes.push("the upstream certificate stays unverified (skip-verify, as today); to verify it, run `cellsctl regenerate --upstream-tls ca`, which also makes Cells serve cellsctl's certificate (a restart of cells)".into());
    } else {
        a.take(Field::UpstreamTls, "ca", &up_from)?;
        let theirs = up
            .value
            .trusted_ca
            .as_deref()
            .map(|f| format!(" instead of {f}"))
            .unwrap_or_default();
        a.changes.push(format!("Caddy will verify Cells against cellsctl's private CA{theirs}, and Cells will serve cellsctl's certificate"));
    }
    let unit = read_unit(root)?;
    match unit.bind.as_ref() {
        Some((bind, from)) => a.take(Field::Bind, bind, from)?,
        None => a.take(Field::Bind, &loopback(&up.value.dial), &up_from)?,
    }
    if let Some((v, from)) = &unit.binary {
        a.take(Field::CellsBinary, v, from)?;
    }
    if let Some((v, from)) = &unit.user {
        a.take(Field::CellsUser, v, from)?;
    }
    if let Some((v, from)) = &unit.working_dir {
        a.take(Field::CellsWorkingDir, v, from)?;
    }
    if let Some(p) = &found.prometheus {
        prometheus(&mut a, root, p, &cf(&p.from))?;
    } else {
        a.answers
            .set(Field::Prometheus, "off")
            .map_err(Error::usage)?;
    }
    if !unit.found {
        a.changes.push(format!(
            "no cells.service found: cellsctl writes one ({})",
            paths::CELLS_UNIT
        ));
    }
    Ok(a)
}

/// `localhost:8080` as an address cellsctl binds and dials: `127.0.0.1:8080`.
fn loopback(dial: &str) -> String {
    match dial.rsplit_once(':') {
        Some(("localhost", port)) => format!("127.0.0.1:{port}"),
        _ => dial.to_string(),
    }
}

fn prometheus(
    a: &mut Adopted,
    root: &Path,
    p: &caddy_json::Found<caddy_json::PrometheusRoute>,
    from: &str,
) -> Result<(), Error> {
    a.take(Field::Prometheus, "on", from)?;
    a.take(Field::PrometheusPath, &p.value.path, from)?;
    a.take(Field::PrometheusListen, &loopback(&p.value.dial), from)?;
    if let Some(user) = &p.value.user {
        a.take(Field::PrometheusUser, user, from)?;
    }
    if let Some(hash) = &p.value.hash {
        a.answers
            .set(Field::PrometheusPasswordHash, hash)
            .map_err(|e| Error::usage(format!("adopt: the basic-auth hash in {from}: {e}")))?;
        a.sources.push(format!(
            "{:<26} (the bcrypt hash; the password is not needed)  <- {from}",
            "--prometheus-password-hash"
        ));
    }
    // A hand-made drop-in that sets ExecStart and sorts after cellsctl.conf
    // would win over cellsctl's flags.
    for d in prometheus_dropins(root) {
        let sets_exec = read_optional_text(&under_root(root, &d))
            .ok()
            .flatten()
            .is_some_and(|t| t.lines().any(|l| l.trim_start().starts_with("ExecStart=")));
        if sets_exec && d.rsplit('/').next().is_some_and(|n| n > "cellsctl.conf") {
            a.changes.push(format!("{d} sets ExecStart and is read after cellsctl's drop-in, so its flags win: remove it (or move its flags into cellsctl's answers)"));
        }
    }
    if read_optional_text(&under_root(root, "/etc/prometheus/prometheus.yml"))
        .ok()
        .flatten()
        .is_some()
    {
        a.changes.push("Prometheus will run on cellsctl's config (/etc/prometheus/cellsctl.yml: itself and Cells' targets); scrape jobs of your own in /etc/prometheus/prometheus.yml are no longer read: add them back with a drop-in of your own if you need them".into());
    }
    let listen = prometheus_listen(root);
    let all = listen
        .as_deref()
        .is_none_or(|l| l.starts_with("0.0.0.0") || l.starts_with(':') || l.starts_with("[::]"));
    if all {
        a.changes.push(format!(
            "Prometheus will listen on {} only; today it listens on all addresses ({})",
            loopback(&p.value.dial),
            listen.unwrap_or_else(|| "its default, 0.0.0.0:9090".into())
        ));
    }
    Ok(())
}

/// The drop-ins of prometheus.service made by hand, in systemd's order.
fn prometheus_dropins(root: &Path) -> Vec<String> {
    let dir = "/etc/systemd/system/prometheus.service.d";
    let mut names: Vec<String> = std::fs::read_dir(under_root(root, dir))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".conf") && n != "cellsctl.conf")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().map(|n| format!("{dir}/{n}")).collect()
}

/// `--web.listen-address` as Prometheus gets it: Debian's unit, then
/// /etc/default/prometheus, then the drop-ins made by hand (later wins).
fn prometheus_listen(root: &Path) -> Option<String> {
    let mut files = vec![
        "/lib/systemd/system/prometheus.service".to_string(),
        paths::PROMETHEUS_DEFAULTS.to_string(),
    ];
    files.extend(prometheus_dropins(root));
    files
        .iter()
        .rev()
        .filter_map(|f| read_optional_text(&under_root(root, f)).ok().flatten())
        .find_map(|text| {
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .flat_map(str::split_whitespace)
                .find_map(|w| {
                    w.trim_matches(['"', '\''])
                        .strip_prefix("--web.listen-address=")
                        .map(|v| v.trim_matches(['"', '\'']).to_string())
                })
        })
}

/// What the Cells unit (and its drop-ins) says, each with its file.
#[derive(Default)]
struct Unit {
    /// cells.service (or a drop-in) exists.
    found: bool,
    bind: Option<(String, String)>,
    binary: Option<(String, String)>,
    user: Option<(String, String)>,
    working_dir: Option<(String, String)>,
}

/// `cells.service` and `cells.service.d/*.conf` below /etc/systemd/system:
/// later files and lines win, as in systemd.
fn read_unit(root: &Path) -> Result<Unit, Error> {
    let mut files = vec![paths::CELLS_UNIT.to_string()];
    if let Ok(dir) = std::fs::read_dir(under_root(root, "/etc/systemd/system/cells.service.d")) {
        let mut dropins: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".conf"))
            .map(|n| format!("/etc/systemd/system/cells.service.d/{n}"))
            .collect();
        dropins.sort();
        files.extend(dropins);
    }
    let mut u = Unit::default();
    for file in files {
        let Some(text) = read_optional_text(&under_root(root, &file))? else {
            continue;
        };
        u.found = true;
        for (n, line) in text.lines().enumerate() {
            let from = format!("{file}:{}", n + 1);
            let line = line.trim();
            if let Some(v) = line.strip_prefix("User=") {
                u.user = Some((v.trim().to_string(), from));
            } else if let Some(v) = line.strip_prefix("ExecStart=") {
                if let Some(bin) = v.split_whitespace().next() {
                    u.binary = Some((
                        bin.trim_start_matches(['-', '@', '+', '!']).to_string(),
                        from,
                    ));
                }
            } else if let Some(v) = line.strip_prefix("Environment=") {
                for assignment in v.split_whitespace() {
                    let assignment = assignment.trim_matches('"');
                    match assignment.split_once('=') {
                        Some(("CELLS_SITE_BIND", b)) => {
                            u.bind = Some((b.to_string(), from.clone()))
                        }
                        Some(("CELLS_BIND", b)) if u.bind.is_none() => {
                            u.bind = Some((b.to_string(), from.clone()))
                        }
                        Some(("CELLS_WORKING_DIR", d)) => {
                            u.working_dir = Some((d.to_string(), from.clone()))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(u)
}

/// The adapted JSON of the Caddyfile, from the installed caddy (a clean
/// environment, a scratch data dir).
fn adapt(caddyfile: &Path) -> Result<serde_json::Value, Error> {
    let Ok(caddy) = which::which("caddy") else {
        return Err(Error::usage("adopt: reads the Caddyfile with the installed caddy (`caddy adapt`), and there is no caddy on PATH: apt-get install caddy"));
    };
    if !caddyfile.is_file() {
        return Err(Error::usage(format!(
            "adopt: {} is not there: nothing to take over (use `cellsctl init` on a fresh server)",
            caddyfile.display()
        )));
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::runtime(format!("no temp dir: {e}")))?;
    let out = crate::ui::tool(&caddy)
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(caddyfile)
        .env("XDG_DATA_HOME", scratch.path())
        .env("XDG_CONFIG_HOME", scratch.path())
        .env("HOME", scratch.path())
        .output()
        .map_err(|e| Error::runtime(format!("cannot run {} adapt: {e}", caddy.display())))?;
    if !out.status.success() {
        return Err(Error::usage(format!(
            "adopt: {} adapt rejects {}: {}",
            caddy.display(),
            caddyfile.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::runtime(format!("caddy adapt printed no JSON: {e}")))
}

/// The adopt block of the report: what was read and from where, what is
/// dropped (with --force), what changes and why.
pub fn render(a: &Adopted, forced: bool) -> String {
    use std::fmt::Write;
    let mut out = String::from("Read from this server:\n");
    for s in &a.sources {
        let _ = writeln!(out, "  {s}");
    }
    if forced && !a.dropped.is_empty() {
        out.push_str("Dropped (--force; the original Caddyfile is kept as a backup):\n");
        for d in &a.dropped {
            let _ = writeln!(out, "  - {d}");
        }
    }
    if !a.changes.is_empty() {
        out.push_str("What changes:\n");
        for c in &a.changes {
            let _ = writeln!(out, "  - {c}");
        }
    }
    out
}
