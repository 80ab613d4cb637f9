//! Secrets: reading them from files or the environment, checking them, and
//! hashing the Prometheus password with bcrypt.
//!
//! A [`Secret`] never prints itself: `Debug` and `Display` show `••••`.

use crate::answers::{BcryptCost, BcryptHash};
use crate::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

/// A plaintext secret held only in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Checks a secret that will be written into Cells' install.yml.
    ///
    /// Cells replaces every `{$NAME}` span in install.yml with the environment
    /// variable NAME before parsing, and there is no escape: a password
    /// containing `{$` would silently become another password.
    pub fn new(value: String) -> Result<Secret, String> {
        if value.is_empty() {
            return Err("is empty".into());
        }
        if value.chars().any(char::is_control) {
            return Err(
                "contains a control character (newline, tab, NUL...); use printable characters"
                    .into(),
            );
        }
        if value.contains("{$") {
            return Err("contains '{$', which Cells' install file replaces with an environment variable before reading it (there is no escape); choose a password without '{$' (a plain '$' is fine)".into());
        }
        if value.len() > 1024 {
            return Err("is longer than 1024 bytes".into());
        }
        Ok(Secret(value))
    }

    /// Checks a password that is only hashed with bcrypt (Caddy basic auth).
    pub fn for_basic_auth(value: String) -> Result<Secret, String> {
        if value.is_empty() {
            return Err("is empty".into());
        }
        if value.chars().any(char::is_control) {
            return Err("contains a control character (a second line, tab, NUL...); use one line of printable characters".into());
        }
        // Go's bcrypt (used by Caddy) rejects passwords over 72 bytes; the
        // Rust crate would silently truncate.
        if value.len() > 72 {
            return Err("is longer than 72 bytes, the most bcrypt can use".into());
        }
        Ok(Secret(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(••••)")
    }
}

/// The three secrets cellsctl takes, each from a file flag or an
/// environment variable (or typed into the wizard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// The Prometheus basic-auth password: only hashed with bcrypt.
    Prometheus,
    /// The Cells admin password: written into install.yml.
    Admin,
    /// The database password: written into install.yml.
    Database,
    /// Cluster: Vault's token, written only into each node's cells.env.
    VaultToken,
    /// Cluster: MongoDB's DSN (with its credentials), in the first node's install.yml.
    MongodbDsn,
    /// Cluster: the S3 secret key, in the first node's install.yml.
    S3SecretKey,
}

impl SecretKind {
    /// The flag naming a file that holds it, e.g. `--admin-password-file`.
    pub fn file_flag(self) -> &'static str {
        match self {
            SecretKind::Prometheus => "--prometheus-password-file",
            SecretKind::Admin => "--admin-password-file",
            SecretKind::Database => "--db-password-file",
            SecretKind::VaultToken => "--vault-token-file",
            SecretKind::MongodbDsn => "--mongodb-dsn-file",
            SecretKind::S3SecretKey => "--s3-secret-key-file",
        }
    }

    /// The environment variable holding it, e.g. `CELLSCTL_ADMIN_PASSWORD`.
    pub fn env_var(self) -> &'static str {
        match self {
            SecretKind::Prometheus => "CELLSCTL_PROMETHEUS_PASSWORD",
            SecretKind::Admin => "CELLSCTL_ADMIN_PASSWORD",
            SecretKind::Database => "CELLSCTL_DB_PASSWORD",
            SecretKind::VaultToken => "CELLSCTL_VAULT_TOKEN",
            SecretKind::MongodbDsn => "CELLSCTL_MONGODB_DSN",
            SecretKind::S3SecretKey => "CELLSCTL_S3_SECRET_KEY",
        }
    }

    /// What it is, in messages.
    pub fn noun(self) -> &'static str {
        match self {
            SecretKind::Prometheus | SecretKind::Admin | SecretKind::Database => "password",
            SecretKind::VaultToken => "token",
            SecretKind::MongodbDsn => "DSN",
            SecretKind::S3SecretKey => "secret key",
        }
    }

    /// How to supply this secret, for "missing" messages.
    pub fn how(self) -> String {
        format!("{} PATH (or env {})", self.file_flag(), self.env_var())
    }

    /// The rules this secret must pass: install.yml's, or bcrypt's.
    pub fn check(self, value: String) -> Result<Secret, String> {
        match self {
            SecretKind::Prometheus => Secret::for_basic_auth(value),
            SecretKind::Admin | SecretKind::Database | SecretKind::S3SecretKey => {
                Secret::new(value)
            }
            SecretKind::VaultToken => {
                // Read unchanged by systemd's environment-file parser (no
                // quotes, backslashes or `$`), as every Vault token is.
                let ok = !value.is_empty()
                    && value.len() <= 1024
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._+/=:-".contains(&b));
                if !ok {
                    return Err("must be 1-1024 characters: ASCII letters, digits and '._+/=:-' (it becomes VAULT_TOKEN=… in a systemd environment file)".into());
                }
                Ok(Secret(value))
            }
            SecretKind::MongodbDsn => {
                if !(value.starts_with("mongodb://") || value.starts_with("mongodb+srv://")) {
                    return Err("must start with mongodb:// or mongodb+srv://".into());
                }
                Secret::new(value)
            }
        }
    }
}

/// One secret as this run was given it. The file wins over the value.
#[derive(Clone, Default)]
pub struct SecretInput {
    pub file: Option<PathBuf>,
    /// From the environment variable, or typed into the wizard.
    pub value: Option<String>,
    /// The file's text, read once: a second read of a pipe (`<(…)`,
    /// /dev/stdin) would find it empty.
    pub read_once: std::sync::OnceLock<String>,
}

impl fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretInput")
            .field("file", &self.file)
            .field("value", &self.value.as_ref().map(|_| "••••"))
            .finish()
    }
}

impl SecretInput {
    pub fn is_given(&self) -> bool {
        self.file.is_some() || self.value.is_some()
    }

    /// Reads and checks the secret; `Ok(None)` when neither file nor value is given.
    pub fn read(&self, kind: SecretKind) -> Result<Option<Secret>, Error> {
        let (raw, origin) = if let Some(path) = &self.file {
            let text = match self.read_once.get() {
                Some(t) => t.clone(),
                None => {
                    let t = read_small(path).map_err(|e| {
                        Error::usage(format!(
                            "{}: cannot read {}: {e}",
                            kind.file_flag(),
                            path.display()
                        ))
                    })?;
                    self.read_once.get_or_init(|| t).clone()
                }
            };
            (strip_one_line(&text), kind.file_flag())
        } else if let Some(v) = &self.value {
            (v.clone(), kind.env_var())
        } else {
            return Ok(None);
        };
        kind.check(raw)
            .map(Some)
            .map_err(|why| Error::usage(format!("{origin}: the {} {why}", kind.noun())))
    }
}

/// Every secret this run was given.
#[derive(Clone, Debug, Default)]
pub struct GivenSecrets {
    pub prometheus: SecretInput,
    pub admin: SecretInput,
    pub database: SecretInput,
    pub vault_token: SecretInput,
    pub mongodb_dsn: SecretInput,
    pub s3_secret_key: SecretInput,
}

impl GivenSecrets {
    /// The file flags given, and the environment variables set.
    pub fn new(
        prometheus_file: Option<&Path>,
        admin_file: Option<&Path>,
        database_file: Option<&Path>,
        cluster_files: [Option<&Path>; 3],
    ) -> GivenSecrets {
        let input = |file: Option<&Path>, kind: SecretKind| SecretInput {
            file: file.map(Path::to_path_buf),
            value: std::env::var(kind.env_var()).ok(),
            read_once: std::sync::OnceLock::new(),
        };
        GivenSecrets {
            prometheus: input(prometheus_file, SecretKind::Prometheus),
            admin: input(admin_file, SecretKind::Admin),
            database: input(database_file, SecretKind::Database),
            vault_token: input(cluster_files[0], SecretKind::VaultToken),
            mongodb_dsn: input(cluster_files[1], SecretKind::MongodbDsn),
            s3_secret_key: input(cluster_files[2], SecretKind::S3SecretKey),
        }
    }

    pub fn get(&self, kind: SecretKind) -> &SecretInput {
        match kind {
            SecretKind::Prometheus => &self.prometheus,
            SecretKind::Admin => &self.admin,
            SecretKind::Database => &self.database,
            SecretKind::VaultToken => &self.vault_token,
            SecretKind::MongodbDsn => &self.mongodb_dsn,
            SecretKind::S3SecretKey => &self.s3_secret_key,
        }
    }

    pub fn get_mut(&mut self, kind: SecretKind) -> &mut SecretInput {
        match kind {
            SecretKind::Prometheus => &mut self.prometheus,
            SecretKind::Admin => &mut self.admin,
            SecretKind::Database => &mut self.database,
            SecretKind::VaultToken => &mut self.vault_token,
            SecretKind::MongodbDsn => &mut self.mongodb_dsn,
            SecretKind::S3SecretKey => &mut self.s3_secret_key,
        }
    }

    pub fn read(&self, kind: SecretKind) -> Result<Option<Secret>, Error> {
        self.get(kind).read(kind)
    }
}

/// Reads a secret file of at most 4 KiB (a password, not /dev/zero).
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    const LIMIT: u64 = 4096;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(LIMIT + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > LIMIT {
        return Err(std::io::Error::other(
            "larger than 4 KiB; expected one line holding the password",
        ));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// A secret file's content without its one trailing line ending (optional).
/// Anything else stays, so a second line is refused as a control character
/// rather than silently dropped.
pub fn strip_one_line(text: &str) -> String {
    let line = text.strip_suffix('\n').unwrap_or(text);
    line.strip_suffix('\r').unwrap_or(line).to_string()
}

/// Hashes a basic-auth password the way Caddy expects (raw bcrypt).
pub fn bcrypt_hash(password: &str, cost: BcryptCost) -> Result<BcryptHash, Error> {
    if password.len() > 72 {
        return Err(Error::usage(
            "the password is longer than 72 bytes, the most bcrypt can use",
        ));
    }
    let hash = bcrypt::hash(password, cost.0)
        .map_err(|e| Error::runtime(format!("bcrypt failed: {e}")))?;
    hash.parse()
        .map_err(|e: String| Error::runtime(format!("bcrypt produced an unexpected hash: {e}")))
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn install_secrets_refuse_env_expansion() {
        assert!(Secret::new("pa{$HOME}ss".into()).is_err());
        assert!(Secret::new("pa$HOME ss".into()).is_ok());
        assert!(Secret::new("line\nbreak".into()).is_err());
        assert!(Secret::new(String::new()).is_err());
        assert_eq!(
            format!("{:?}", Secret::new("hunter2".into()).unwrap()),
            "Secret(••••)"
        );
    }

    #[test]
    fn one_line_files() {
        assert_eq!(strip_one_line("pw\n"), "pw");
        assert_eq!(strip_one_line("pw\r\n"), "pw");
        assert_eq!(strip_one_line("pw"), "pw");
        assert_eq!(strip_one_line("pw\nmore\n"), "pw\nmore");
        assert!(Secret::new(strip_one_line("pw\nmore\n")).is_err());
    }

    #[test]
    fn bcrypt_round_trip() {
        let h = bcrypt_hash("s3cret $x", BcryptCost(4)).unwrap();
        assert!(bcrypt::verify("s3cret $x", h.as_str()).unwrap());
        assert!(bcrypt_hash(&"x".repeat(73), BcryptCost(4)).is_err());
    }
}
