//! Secrets: reading them from files or the environment, checking them, and
//! hashing the Prometheus password with bcrypt.
//!
//! A [`Secret`] never prints itself: `Debug` and `Display` show `••••`.

use crate::answers::{BcryptCost, BcryptHash};
use crate::error::Error;
use std::fmt;
use std::path::Path;

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

/// Which checks a secret must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretRules {
    /// Written into install.yml: no `{$`, no control characters.
    Install,
    /// Only hashed with bcrypt: at most 72 bytes.
    BasicAuth,
}

/// Where a secret may come from, named for error messages.
pub struct SecretSource<'a> {
    /// The flag naming a file, e.g. `--admin-password-file`.
    pub file_flag: &'a str,
    pub file: Option<&'a Path>,
    /// The environment variable holding the value, e.g. `CELLSCTL_ADMIN_PASSWORD`.
    pub env_var: &'a str,
    pub env_value: Option<String>,
    pub rules: SecretRules,
}

impl SecretSource<'_> {
    /// How to supply this secret, for "missing" messages.
    pub fn how(&self) -> String {
        format!("{} PATH (or env {})", self.file_flag, self.env_var)
    }

    /// Reads the secret: the file wins over the environment. `Ok(None)` when neither is given.
    pub fn read(&self) -> Result<Option<Secret>, Error> {
        let (raw, origin) = if let Some(path) = self.file {
            let text = read_small(path).map_err(|e| {
                Error::usage(format!(
                    "{}: cannot read {}: {e}",
                    self.file_flag,
                    path.display()
                ))
            })?;
            (strip_one_line(&text), self.file_flag.to_string())
        } else if let Some(v) = &self.env_value {
            (v.clone(), self.env_var.to_string())
        } else {
            return Ok(None);
        };
        let checked = match self.rules {
            SecretRules::Install => Secret::new(raw),
            SecretRules::BasicAuth => Secret::for_basic_auth(raw),
        };
        checked
            .map(Some)
            .map_err(|why| Error::usage(format!("{origin}: the password {why}")))
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
mod tests {
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
