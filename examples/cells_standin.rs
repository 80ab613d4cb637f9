//! A stand-in for the Pydio Cells binary, for cellsctl's system tests. It is
//! installed as /opt/pydio/bin/cells in a test container and meets cellsctl's
//! files the way the real Cells does:
//!
//! - `cells configure --yaml FILE` splices `{$NAME}` spans from the
//!   environment into the raw file before parsing it, reads only the
//!   lower-case keys, proves the database credentials with the `mariadb`
//!   client (table `idm_user`, admin login inserted), and saves `pydio.json`
//!   (no passwords) in `$CELLS_WORKING_DIR`.
//! - `cells start` refuses without that file, takes its site from
//!   `CELLS_SITE_*` (falling back to `CELLS_*`, then to the saved site), serves
//!   it with the test stand-in server (TLS, HTTP/1.1 + HTTP/2, gRPC, /ws/), and
//!   with `CELLS_ENABLE_METRICS=true` serves /metrics and writes the file_sd
//!   targets file `services/pydio.gateway.metrics/prom_clients.json`. It runs
//!   until SIGINT or SIGTERM and then exits 0.
//!
//! Only the behaviour cellsctl depends on is imitated; everything else is a
//! usage error (exit 2) or a refusal naming what the stand-in lacks (exit 1).

#[allow(dead_code)]
#[path = "../tests/standin.rs"]
mod standin;

use bytes::Bytes;
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: cells configure --yaml FILE | cells start | cells version";
const VERSION_LINE: &str = "Pydio Cells stand-in (cellsctl system tests)";

/// The install file is small; anything larger is not cellsctl's.
const INSTALL_FILE_LIMIT: u64 = 64 * 1024;
/// Certificates, keys and the saved configuration.
const SMALL_FILE_LIMIT: u64 = 1024 * 1024;

const CONFIG_FILE: &str = "pydio.json";
/// Where the v4 source (and its admin guide) writes the Prometheus targets.
const METRICS_SERVICE_DIR: &str = "services/pydio.gateway.metrics";
const TARGETS_FILE: &str = "prom_clients.json";
const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:8266";
/// The real Cells binds its default site here when nothing else says where.
const DEFAULT_BIND: &str = "0.0.0.0:8080";

/// The real Cells retries 20 x 10 s; a test needs an answer sooner.
const DB_ATTEMPTS: u32 = 3;
const DB_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Why the stand-in stops: a command line it does not know (exit 2) or
/// anything else (exit 1). The message is printed after `cells: `.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Fatal(String),
}

type Result<T> = std::result::Result<T, Failure>;

fn fatal<T>(message: impl Into<String>) -> Result<T> {
    Err(Failure::Fatal(message.into()))
}

fn usage<T>(message: impl Into<String>) -> Result<T> {
    Err(Failure::Usage(message.into()))
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args) {
        Ok(()) => {}
        Err(Failure::Usage(message)) => {
            eprintln!("cells: {message}\n{USAGE}");
            std::process::exit(2);
        }
        Err(Failure::Fatal(message)) => {
            eprintln!("cells: {message}");
            std::process::exit(1);
        }
    }
}

fn run(args: &[OsString]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        return usage("no command given");
    };
    match command.to_str() {
        Some("configure") => configure(rest),
        Some("start") => start(rest),
        Some("version") if rest.is_empty() => {
            println!("{VERSION_LINE}");
            Ok(())
        }
        _ => usage(format!(
            "unknown command line: {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

// ---------------------------------------------------------------------------
// Environment, as the real Cells reads it (viper: an empty variable is unset).

fn env_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn env_string(name: &str) -> Result<Option<String>> {
    match env_os(name) {
        None => Ok(None),
        Some(v) => match v.into_string() {
            Ok(s) => Ok(Some(s)),
            Err(_) => fatal(format!("{name} is not valid UTF-8")),
        },
    }
}

/// `CELLS_SITE_X`, or the legacy `CELLS_X` when the first is unset.
fn site_env_os(suffix: &str) -> Option<OsString> {
    env_os(&format!("CELLS_SITE_{suffix}")).or_else(|| env_os(&format!("CELLS_{suffix}")))
}

fn site_env_string(suffix: &str) -> Result<Option<String>> {
    match env_string(&format!("CELLS_SITE_{suffix}"))? {
        Some(v) => Ok(Some(v)),
        None => env_string(&format!("CELLS_{suffix}")),
    }
}

/// Go's strconv.ParseBool, as viper's GetBool uses it: anything else is false.
fn go_bool(value: Option<String>) -> bool {
    matches!(
        value.as_deref(),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// `$CELLS_WORKING_DIR`, or `~/.config/pydio/cells` like the real one.
fn working_dir() -> Result<PathBuf> {
    if let Some(dir) = env_os("CELLS_WORKING_DIR") {
        return Ok(PathBuf::from(dir));
    }
    match env_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config/pydio/cells")),
        None => fatal("neither CELLS_WORKING_DIR nor HOME is set: no working directory"),
    }
}

// ---------------------------------------------------------------------------
// Files.

/// Reads a regular file of at most `limit` bytes (a FIFO is refused, not
/// waited on).
fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) => return fatal(format!("cannot read the {what} {}: {e}", path.display())),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return fatal(format!("the {what} {} is not a file", path.display())),
        Err(e) => return fatal(format!("cannot read the {what} {}: {e}", path.display())),
    }
    let mut bytes = Vec::new();
    if let Err(e) = file.take(limit + 1).read_to_end(&mut bytes) {
        return fatal(format!("cannot read the {what} {}: {e}", path.display()));
    }
    if bytes.len() as u64 > limit {
        return fatal(format!(
            "the {what} {} is larger than {limit} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Creates `dir` and its parents with mode 0755 (less the umask), leaving
/// existing ones alone, as Go's os.MkdirAll does.
fn create_dirs(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => fatal(format!("cannot create {}: {e}", dir.display())),
    }
}

/// Replaces `path` with `bytes` at `mode` in one rename: a reader never sees
/// half a file.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| Failure::Fatal(format!("cannot write {}: {e}", path.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".standin-")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// `cells configure --yaml FILE`

/// The keys of the real InstallConfig the stand-in reads. The real one goes
/// through yaml.v2 into a protobuf struct without yaml tags: keys are the Go
/// field names in lower case, matched exactly, so `dbConnectionType` is
/// ignored (serde ignores unknown keys too). Scalars are read as their raw
/// text, as yaml.v2 does for a string field (`dbtcpport: 3306` is "3306").
#[derive(Deserialize, Default)]
struct InstallFile {
    dbconnectiontype: Option<String>,
    dbtcphostname: Option<String>,
    dbtcpport: Option<String>,
    dbtcpname: Option<String>,
    dbtcpuser: Option<String>,
    dbtcppassword: Option<String>,
    frontendlogin: Option<String>,
    frontendpassword: Option<String>,
    proxyconfig: Option<ProxyConfig>,
    proxyconfigs: Option<Vec<ProxyConfig>>,
}

/// A site, with the lower-case keys of the real ProxyConfig unmarshaller.
#[derive(Deserialize)]
struct ProxyConfig {
    binds: Option<Vec<String>>,
    reverseproxyurl: Option<String>,
    tlsconfig: Option<TlsConfig>,
}

#[derive(Deserialize)]
struct TlsConfig {
    selfsigned: Option<SelfSigned>,
    letsencrypt: Option<serde_yaml::Value>,
    certificate: Option<CertificateFiles>,
}

#[derive(Deserialize, Default)]
struct SelfSigned {
    hostnames: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CertificateFiles {
    certfile: Option<String>,
    keyfile: Option<String>,
}

/// What `configure` saves and `start` reads back. No secrets.
#[derive(Serialize, Deserialize)]
struct SavedConfig {
    version: String,
    frontend: SavedFrontend,
    database: SavedDatabase,
    #[serde(default)]
    sites: Vec<SavedSite>,
}

#[derive(Serialize, Deserialize)]
struct SavedFrontend {
    login: String,
}

#[derive(Serialize, Deserialize)]
struct SavedDatabase {
    host: String,
    port: u16,
    name: String,
    user: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct SavedSite {
    binds: Vec<String>,
    reverseproxyurl: String,
    tls: SiteTls,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "lowercase")]
enum SiteTls {
    /// Plain HTTP (no `tlsconfig`, or `CELLS_SITE_NO_TLS`).
    None,
    SelfSigned {
        hostnames: Vec<String>,
    },
    LetsEncrypt,
    Certificate {
        certfile: PathBuf,
        keyfile: PathBuf,
    },
}

/// The database the install file names, with the real defaults filled in.
struct Database {
    host: String,
    port: u16,
    name: String,
    user: String,
    password: String,
}

fn or_default(value: Option<String>, default: &str) -> String {
    value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

impl InstallFile {
    fn database(&self) -> Result<Database> {
        match self.dbconnectiontype.as_deref() {
            None | Some("") | Some("tcp") => {}
            Some(other @ ("socket" | "manual")) => {
                return fatal(format!(
                    "dbconnectiontype {other} is not supported by the stand-in (tcp only)"
                ))
            }
            Some(other) => return fatal(format!("unknown dbconnectiontype {other:?}")),
        }
        let port_text = or_default(self.dbtcpport.clone(), "3306");
        let Ok(port) = port_text.trim().parse::<u16>() else {
            return fatal(format!("dbtcpport {port_text:?} is not a port number"));
        };
        Ok(Database {
            host: or_default(self.dbtcphostname.clone(), "127.0.0.1"),
            port,
            name: or_default(self.dbtcpname.clone(), "cells"),
            user: or_default(self.dbtcpuser.clone(), "root"),
            password: self.dbtcppassword.clone().unwrap_or_default(),
        })
    }

    /// `proxyconfig` or `proxyconfigs` (both at once is an error, as in the
    /// real one) as sites to save.
    fn sites(&self) -> Result<Vec<SavedSite>> {
        let configs: Vec<&ProxyConfig> = match (&self.proxyconfig, &self.proxyconfigs) {
            (Some(_), Some(list)) if !list.is_empty() => {
                return fatal("use one of proxyconfig or proxyconfigs keys, but not both")
            }
            (Some(one), _) => vec![one],
            (None, Some(list)) => list.iter().collect(),
            (None, None) => Vec::new(),
        };
        configs.into_iter().map(saved_site).collect()
    }
}

fn saved_site(config: &ProxyConfig) -> Result<SavedSite> {
    let binds = config.binds.clone().unwrap_or_default();
    if binds.is_empty() {
        return fatal("a proxyconfig site has no binds");
    }
    let tls = match &config.tlsconfig {
        None => SiteTls::None,
        Some(TlsConfig {
            selfsigned: Some(s),
            letsencrypt: None,
            certificate: None,
        }) => SiteTls::SelfSigned {
            hostnames: s.hostnames.clone().unwrap_or_default(),
        },
        Some(TlsConfig {
            selfsigned: None,
            letsencrypt: Some(_),
            certificate: None,
        }) => SiteTls::LetsEncrypt,
        Some(TlsConfig {
            selfsigned: None,
            letsencrypt: None,
            certificate: Some(c),
        }) => {
            let (Some(cert), Some(key)) = (&c.certfile, &c.keyfile) else {
                return fatal("tlsconfig certificate needs certfile and keyfile");
            };
            SiteTls::Certificate {
                certfile: PathBuf::from(cert),
                keyfile: PathBuf::from(key),
            }
        }
        Some(_) => {
            return fatal("tlsconfig needs exactly one of selfsigned, letsencrypt, certificate")
        }
    };
    Ok(SavedSite {
        binds,
        reverseproxyurl: config.reverseproxyurl.clone().unwrap_or_default(),
        tls,
    })
}

/// The real `replaceEnvVars` (cmd/install-ni.go): every `{$NAME}` span of
/// the raw file becomes the value of NAME passed through Go's os.ExpandEnv
/// (unset: empty). `{$}` is left alone; a replaced value is not scanned
/// again; there is no escape.
fn replace_env_spans(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((begin, len)) =
        find(rest, b"{$").and_then(|begin| find(&rest[begin + 2..], b"}").map(|len| (begin, len)))
    {
        let name = &rest[begin + 2..begin + 2 + len];
        out.extend_from_slice(&rest[..begin]);
        if name.is_empty() {
            out.extend_from_slice(b"{$}");
        } else {
            out.extend_from_slice(&go_expand_env(&getenv(name)));
        }
        rest = &rest[begin + 3 + len..];
    }
    out.extend_from_slice(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Go's os.Getenv for a raw name: unset, or a name no variable can have, is
/// empty.
fn getenv(name: &[u8]) -> Vec<u8> {
    if name.is_empty() || name.contains(&b'=') || name.contains(&0) {
        return Vec::new();
    }
    std::env::var_os(OsStr::from_bytes(name))
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default()
}

/// Go's os.ExpandEnv: `$NAME` and `${NAME}` become the variable's value, a
/// `$` before anything else stays, and bad `${` syntax is eaten.
fn go_expand_env(s: &[u8]) -> Vec<u8> {
    fn special(c: u8) -> bool {
        matches!(
            c,
            b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
        )
    }
    fn alnum(c: u8) -> bool {
        c == b'_' || c.is_ascii_alphanumeric()
    }
    /// (name, bytes consumed after the `$`), as Go's getShellName.
    fn shell_name(s: &[u8]) -> (&[u8], usize) {
        if s[0] == b'{' {
            if s.len() > 2 && special(s[1]) && s[2] == b'}' {
                return (&s[1..2], 3);
            }
            for i in 1..s.len() {
                if s[i] == b'}' {
                    if i == 1 {
                        return (&[], 2);
                    }
                    return (&s[1..i], i + 1);
                }
            }
            return (&[], 1);
        }
        if special(s[0]) {
            return (&s[0..1], 1);
        }
        let n = s.iter().take_while(|c| alnum(**c)).count();
        (&s[..n], n)
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let mut j = 0;
    while j < s.len() {
        if s[j] == b'$' && j + 1 < s.len() {
            out.extend_from_slice(&s[i..j]);
            let (name, width) = shell_name(&s[j + 1..]);
            if name.is_empty() && width == 0 {
                out.push(b'$');
            } else if !name.is_empty() {
                out.extend_from_slice(&getenv(name));
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.extend_from_slice(&s[i.min(s.len())..]);
    out
}

fn parse_install_file(bytes: &[u8], path: &Path) -> Result<InstallFile> {
    // An empty document is an empty install config, as with yaml.v2.
    let parsed: std::result::Result<Option<InstallFile>, _> = serde_yaml::from_slice(bytes);
    match parsed {
        Ok(file) => Ok(file.unwrap_or_default()),
        Err(e) => fatal(format!(
            "error parsing YAML file at {}: {e}",
            path.display()
        )),
    }
}

fn configure(args: &[OsString]) -> Result<()> {
    let path = match args {
        [flag, file] if flag == "--yaml" => PathBuf::from(file),
        [one] if one.as_bytes().starts_with(b"--yaml=") => {
            PathBuf::from(OsStr::from_bytes(&one.as_bytes()[b"--yaml=".len()..]))
        }
        [] => match env_os("CELLS_INSTALL_YAML") {
            Some(file) => PathBuf::from(file),
            None => {
                return fatal(
                    "no --yaml FILE: the browser and command-line installers are not supported by the stand-in",
                )
            }
        },
        _ => return usage("configure takes --yaml FILE and nothing else"),
    };
    if path.as_os_str().is_empty() {
        return usage("--yaml needs a file");
    }

    println!("## Performing Installation");
    let raw = read_bounded(&path, INSTALL_FILE_LIMIT, "install file")?;
    let install = parse_install_file(&replace_env_spans(&raw), &path)?;
    println!("... Install config loaded from {}", path.display());

    let sites = install.sites()?;
    let login = install.frontendlogin.clone().unwrap_or_default();
    if login.is_empty() {
        return fatal("no admin login: browser installer not supported by the stand-in");
    }
    if install
        .frontendpassword
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return fatal("no admin password (frontendpassword)");
    }
    let database = install.database()?;
    let dir = working_dir()?;

    println!(
        "... Checking database {}@{}:{}/{}",
        database.user, database.host, database.port, database.name
    );
    check_database(&database, &login)?;
    println!("... Database ready: table idm_user, admin {login:?}");

    let saved = SavedConfig {
        version: "standin".to_string(),
        frontend: SavedFrontend { login },
        database: SavedDatabase {
            host: database.host,
            port: database.port,
            name: database.name,
            user: database.user,
        },
        sites,
    };
    let mut json = match serde_json::to_vec_pretty(&saved) {
        Ok(j) => j,
        Err(e) => return fatal(format!("cannot serialise the configuration: {e}")),
    };
    json.push(b'\n');
    create_dirs(&dir)?;
    let config_path = dir.join(CONFIG_FILE);
    write_atomically(&config_path, &json, 0o600)?;
    println!("... Configuration saved to {}", config_path.display());
    println!("Installation finished");
    Ok(())
}

/// Proves the credentials the way Cells first uses them: connect over TCP,
/// create a table, insert the admin. Retries like the real one, but briefly.
fn check_database(db: &Database, login: &str) -> Result<()> {
    use sha2::Digest;
    // A fixed uuid per login makes a second configure a no-op; the login goes
    // in as a hex literal so no quoting can break the statement.
    let uuid = hex::encode(&sha2::Sha256::digest(login.as_bytes())[..16]);
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS idm_user (uuid VARCHAR(128) PRIMARY KEY, login VARCHAR(255) NOT NULL); \
         INSERT IGNORE INTO idm_user (uuid, login) VALUES ('{uuid}', CONVERT(X'{}' USING utf8mb4))",
        hex::encode(login.as_bytes())
    );
    let mut last_error = String::new();
    for attempt in 1..=DB_ATTEMPTS {
        match run_sql_client(db, &sql) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = e,
        }
        if attempt < DB_ATTEMPTS {
            println!("... Cannot connect to database, wait before retry");
            std::thread::sleep(DB_RETRY_PAUSE);
        }
    }
    println!("[Error] Cannot connect to database, you should double check your server and your connection configuration.");
    fatal(format!("No DB. Aborting...\n{}", last_error.trim_end()))
}

/// Runs `mariadb` (or `mysql` where there is no `mariadb`) with exactly the
/// install file's credentials: option files are not read, and the password
/// travels in MYSQL_PWD, never on the command line.
fn run_sql_client(db: &Database, sql: &str) -> std::result::Result<(), String> {
    for client in ["mariadb", "mysql"] {
        let output = Command::new(client)
            .arg("--no-defaults")
            .arg("--protocol=TCP")
            .arg("--connect-timeout=5")
            .arg("--host")
            .arg(&db.host)
            .arg("--port")
            .arg(db.port.to_string())
            .arg("--user")
            .arg(&db.user)
            .arg("--database")
            .arg(&db.name)
            .arg("-e")
            .arg(sql)
            .env("MYSQL_PWD", &db.password)
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(format!("{client} ({}): {}", out.status, stderr.trim_end()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot run {client}: {e}")),
        }
    }
    Err("neither mariadb nor mysql is installed".to_string())
}

// ---------------------------------------------------------------------------
// `cells start`

/// The site to serve: from the environment when `CELLS_SITE_BIND` (or
/// `CELLS_BIND`) is set, which makes the real Cells ignore saved sites;
/// otherwise the first saved site; otherwise the real default.
fn site_to_serve(saved: &SavedConfig) -> Result<SavedSite> {
    if let Some(bind) = site_env_string("BIND")? {
        let tls = if go_bool(site_env_string("NO_TLS")?) {
            SiteTls::None
        } else if let (Some(cert), Some(key)) =
            (site_env_os("TLS_CERT_FILE"), site_env_os("TLS_KEY_FILE"))
        {
            SiteTls::Certificate {
                certfile: PathBuf::from(cert),
                keyfile: PathBuf::from(key),
            }
        } else if site_env_os("LE_EMAIL").is_some() {
            SiteTls::LetsEncrypt
        } else {
            SiteTls::SelfSigned {
                hostnames: Vec::new(),
            }
        };
        return Ok(SavedSite {
            binds: vec![bind],
            reverseproxyurl: site_env_string("EXTERNAL")?.unwrap_or_default(),
            tls,
        });
    }
    Ok(saved.sites.first().cloned().unwrap_or_else(|| SavedSite {
        binds: vec![DEFAULT_BIND.to_string()],
        reverseproxyurl: String::new(),
        tls: SiteTls::SelfSigned {
            hostnames: Vec::new(),
        },
    }))
}

/// `host:port` (or `:port`) to a socket address; names resolve (localhost).
fn resolve_bind(bind: &str) -> Result<SocketAddr> {
    let full = if bind.starts_with(':') {
        format!("0.0.0.0{bind}")
    } else {
        bind.to_string()
    };
    match full.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => fatal(format!("bind {bind:?} resolves to no address")),
        Err(e) => fatal(format!("bind {bind:?} is not HOST:PORT: {e}")),
    }
}

/// Certificate and key PEM for a TLS site, checked here so that the test
/// server (which treats them as trusted input) never meets a bad pair.
fn site_certificate(tls: &SiteTls, addr: SocketAddr) -> Result<Option<(String, String)>> {
    let (cert, key) = match tls {
        SiteTls::None => return Ok(None),
        SiteTls::LetsEncrypt => {
            return fatal("Let's Encrypt sites are not supported by the stand-in")
        }
        SiteTls::SelfSigned { hostnames } => self_signed(hostnames, addr)?,
        SiteTls::Certificate { certfile, keyfile } => {
            let cert = read_bounded(certfile, SMALL_FILE_LIMIT, "TLS certificate")?;
            let key = read_bounded(keyfile, SMALL_FILE_LIMIT, "TLS key")?;
            match (String::from_utf8(cert), String::from_utf8(key)) {
                (Ok(c), Ok(k)) => (c, k),
                _ => return fatal("the TLS certificate or key is not PEM text"),
            }
        }
    };
    check_certificate(&cert, &key)?;
    Ok(Some((cert, key)))
}

/// What the real Cells does without a certificate: make its own.
fn self_signed(hostnames: &[String], addr: SocketAddr) -> Result<(String, String)> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !addr.ip().is_unspecified() {
        names.push(addr.ip().to_string());
    }
    names.extend(hostnames.iter().cloned());
    names.dedup();
    match rcgen::generate_simple_self_signed(names) {
        Ok(certified) => Ok((certified.cert.pem(), certified.signing_key.serialize_pem())),
        Err(e) => fatal(format!("cannot make a self-signed certificate: {e}")),
    }
}

fn check_certificate(cert_pem: &str, key_pem: &str) -> Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = match CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
    {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return fatal("the TLS certificate file holds no certificate"),
        Err(e) => return fatal(format!("the TLS certificate is not valid PEM: {e}")),
    };
    let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
        Ok(k) => k,
        Err(e) => return fatal(format!("the TLS key is not a valid PEM private key: {e}")),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let built = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key));
    match built {
        Ok(_) => Ok(()),
        Err(e) => fatal(format!(
            "the TLS certificate and key do not make a server: {e}"
        )),
    }
}

fn read_saved_config(dir: &Path) -> Result<SavedConfig> {
    let path = dir.join(CONFIG_FILE);
    if let Err(e) = std::fs::symlink_metadata(&path) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return fatal(format!(
                "{} does not exist: Cells is not configured (run `cells configure` with CELLS_WORKING_DIR={})",
                path.display(),
                dir.display()
            ));
        }
    }
    let bytes = read_bounded(&path, SMALL_FILE_LIMIT, "configuration")?;
    match serde_json::from_slice(&bytes) {
        Ok(config) => Ok(config),
        Err(e) => fatal(format!(
            "{} is not a stand-in configuration: {e}",
            path.display()
        )),
    }
}

/// The file_sd list the real Cells writes for Prometheus. The v4 source
/// (ProcessesAsTargets) labels each process with job, pid and instance, and
/// Go's encoding/json writes it compact with sorted map keys.
fn targets_json(target: SocketAddr) -> Vec<u8> {
    #[derive(Serialize)]
    struct TargetGroup {
        targets: Vec<String>,
        labels: BTreeMap<&'static str, String>,
    }
    let labels = BTreeMap::from([
        ("instance", "main".to_string()),
        ("job", "cells".to_string()),
        ("pid", std::process::id().to_string()),
    ]);
    let groups = [TargetGroup {
        targets: vec![target.to_string()],
        labels,
    }];
    serde_json::to_vec(&groups).unwrap_or_else(|_| b"[]".to_vec())
}

/// Mode 0755 as the v4 source writes it (os.WriteFile(file, d, 0755)).
fn write_targets(dir: &Path, target: SocketAddr) -> Result<PathBuf> {
    let service_dir = dir.join(METRICS_SERVICE_DIR);
    create_dirs(&service_dir)?;
    let path = service_dir.join(TARGETS_FILE);
    write_atomically(&path, &targets_json(target), 0o755)?;
    Ok(path)
}

fn metrics_text(site_requests: usize) -> String {
    format!(
        "# HELP cells_standin_up Whether the Cells stand-in is serving.\n\
         # TYPE cells_standin_up gauge\n\
         cells_standin_up 1\n\
         # HELP cells_standin_site_requests_total Requests the stand-in's site has answered.\n\
         # TYPE cells_standin_site_requests_total counter\n\
         cells_standin_site_requests_total {site_requests}\n"
    )
}

/// Plain-HTTP /metrics (and /metrics/..., where newer Cells serve per
/// process) in the Prometheus text format.
async fn serve_metrics(listener: tokio::net::TcpListener, seen: Arc<standin::Seen>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path();
                        let response = if path == "/metrics" || path.starts_with("/metrics/") {
                            let requests = seen.hosts.lock().map(|h| h.len()).unwrap_or(0);
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                                .body(Full::new(Bytes::from(metrics_text(requests))))
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from_static(b"404 page not found\n")))
                        };
                        Ok::<_, Infallible>(response.unwrap_or_else(|_| {
                            hyper::Response::new(Full::new(Bytes::from_static(b"")))
                        }))
                    }
                });
            let io = hyper_util::rt::TokioIo::new(tcp);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn start(args: &[OsString]) -> Result<()> {
    if !args.is_empty() {
        return usage(
            "start takes no arguments in the stand-in (configure it with CELLS_* variables)",
        );
    }
    let dir = working_dir()?;
    let saved = read_saved_config(&dir)?;
    let site = site_to_serve(&saved)?;
    let Some(bind) = site.binds.first() else {
        return fatal("the site has no bind address");
    };
    let addr = resolve_bind(bind)?;
    let certificate = site_certificate(&site.tls, addr)?;

    // The test server treats a failed bind as a broken test; here it is an
    // ordinary error, so try the address first.
    if let Err(e) = std::net::TcpListener::bind(addr) {
        return fatal(format!("cannot listen on {addr}: {e}"));
    }
    let metrics_addr = if go_bool(env_string("CELLS_ENABLE_METRICS")?) {
        let text = env_string("CELLS_STANDIN_METRICS_ADDR")?
            .unwrap_or_else(|| DEFAULT_METRICS_ADDR.to_string());
        Some(resolve_bind(&text)?)
    } else {
        None
    };

    // Block the stop signals before any thread exists, so every thread
    // inherits the mask and only the wait below receives them.
    let mut stop_signals = nix::sys::signal::SigSet::empty();
    stop_signals.add(nix::sys::signal::Signal::SIGINT);
    stop_signals.add(nix::sys::signal::Signal::SIGTERM);
    if let Err(e) = stop_signals.thread_block() {
        return fatal(format!("cannot block SIGINT/SIGTERM: {e}"));
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fatal(format!("cannot start the async runtime: {e}")),
    };
    let server = runtime.block_on(async {
        match &certificate {
            Some((cert, key)) => standin::start(addr, cert, key).await,
            None => standin::start_plain(addr).await,
        }
    });
    let scheme = if certificate.is_some() {
        "https"
    } else {
        "http"
    };

    let mut metrics_note = String::new();
    if let Some(maddr) = metrics_addr {
        let listener = match runtime.block_on(tokio::net::TcpListener::bind(maddr)) {
            Ok(l) => l,
            Err(e) => return fatal(format!("cannot listen for metrics on {maddr}: {e}")),
        };
        let bound = listener.local_addr().unwrap_or(maddr);
        runtime.spawn(serve_metrics(listener, server.seen.clone()));
        let target = if bound.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        } else {
            bound
        };
        // The real Cells ignores a failed write of this file; say so at least.
        match write_targets(&dir, target) {
            Ok(path) => {
                metrics_note = format!(
                    " (metrics: http://{bound}/metrics, targets in {})",
                    path.display()
                )
            }
            Err(Failure::Fatal(m) | Failure::Usage(m)) => eprintln!("cells: {m}"),
        }
    }

    println!("stand-in Cells serving {scheme}://{addr}{metrics_note}");
    let signal = stop_signals.wait();
    match signal {
        Ok(s) => println!("stand-in Cells stopping on {s}"),
        Err(e) => eprintln!("cells: waiting for a stop signal failed: {e}"),
    }
    drop(server);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
