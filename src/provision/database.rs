//! Step 3: Cells' database, its user and grants. A local MariaDB/MySQL is
//! set up as root over its unix socket (Debian's default `unix_socket`
//! auth); a remote one gets the SQL printed, since cellsctl does not guess
//! its admin credentials. Done already when the user can log in (while the
//! password is known) or the database, user and grants exist.

use super::{exec, preflight::is_local, Provisioner, Status};
use crate::answers::Database;
use crate::error::Error;
use crate::secrets::Secret;
use std::path::Path;
use std::time::Duration;

const STEP: &str = "database";
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `sql` as root over the socket; its output, or why it failed.
pub(super) fn as_root(client: &Path, sql: &str) -> Result<String, String> {
    let ran = exec::run(
        crate::ui::tool(client)
            .args(["--batch", "--skip-column-names", "--user=root"])
            .env("HOME", "/root"),
        sql.as_bytes(),
        LIMIT,
    )
    .map_err(|e| e.to_string())?;
    if ran.ok() {
        Ok(ran.stdout)
    } else {
        Err(ran.message())
    }
}

/// Whether Cells' user logs in over TCP with this password, as Cells will.
fn logs_in(client: &Path, db: &Database, password: &Secret) -> Result<(), String> {
    let ran = exec::run(
        crate::ui::tool(client)
            .args(["--no-defaults", "--protocol=TCP", "--batch"])
            .arg(format!("--host={}", db.host))
            .arg(format!("--port={}", db.port))
            .arg(format!("--user={}", db.user))
            .arg(format!("--database={}", db.name))
            .env("MYSQL_PWD", password.expose()),
        b"SELECT 1;\n",
        LIMIT,
    )
    .map_err(|e| e.to_string())?;
    if ran.ok() {
        Ok(())
    } else {
        Err(ran.message())
    }
}

/// The MariaDB client host part for Cells' user: `localhost` covers
/// 127.0.0.1 and the socket; a remote database sees Cells from anywhere.
fn client_host(db: &Database) -> &'static str {
    if is_local(&db.host.0) {
        "localhost"
    } else {
        "%"
    }
}

/// The SQL that creates the database, the user and its grants. Names are
/// allow-listed identifiers; the password is a string literal read with
/// backslashes taken literally, so only `'` needs doubling.
pub(super) fn setup_sql(db: &Database, password: Option<&Secret>) -> String {
    let host = client_host(db);
    let pw = password.map_or("TYPE-THE-DB-PASSWORD-HERE".to_string(), |p| {
        p.expose().replace('\'', "''")
    });
    format!(
        "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES';\n\
         CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n\
         CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{pw}';\n\
         GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'{host}';\n\
         FLUSH PRIVILEGES;\n",
        name = db.name,
        user = db.user,
    )
}

impl Provisioner<'_> {
    pub(super) fn database(&mut self) -> Result<(), Error> {
        let db = self.answers.database.clone();
        let password = self.install.secrets().map(|s| s.db_password.clone());
        let Some(client) = self.sql_client.clone() else {
            return Err(self.fail(
                STEP,
                "no MariaDB/MySQL client was found",
                "apt-get install mariadb-client",
            ));
        };
        if !is_local(&db.host.0) {
            return self.remote(&client, &db, password.as_ref());
        }
        let exists = self.local_exists(&client, &db)?;
        match (exists, password) {
            (true, None) => {
                self.record(STEP, Status::Skipped, format!("already done: database `{}` and user '{}'@'localhost' with its grants exist", db.name, db.user));
                Ok(())
            }
            (true, Some(pw)) => match logs_in(&client, &db, &pw) {
                Ok(()) => {
                    self.record(STEP, Status::Skipped, format!("already done: '{}' logs in to `{}` with the password in install.yml", db.user, db.name));
                    Ok(())
                }
                Err(why) => Err(self.fail(STEP, format!("user '{}' exists but does not log in with the database password given: {why}", db.user), &format!("give the password that user has (--db-password-file), or set it as root: ALTER USER '{}'@'localhost' IDENTIFIED BY '…';", db.user))),
            },
            (false, None) => Err(self.fail(
                STEP,
                format!("database `{}` or user '{}' is missing, and install.yml (which held the password) was already used", db.name, db.user),
                &format!("create them as root with this SQL and the password Cells was configured with:\n{}", setup_sql(&db, None)),
            )),
            (false, Some(_)) if self.dry_run => {
                self.acted(STEP, format!("create database `{}`, user '{}'@'localhost' and its grants (as root over the unix socket)", db.name, db.user));
                Ok(())
            }
            (false, Some(pw)) => {
                if let Err(why) = as_root(&client, &setup_sql(&db, Some(&pw))) {
                    return Err(self.fail(STEP, format!("creating the database failed: {why}"), "check that root can log in with `mariadb` and that the server is not read-only"));
                }
                // An existing user keeps its password (CREATE USER IF NOT EXISTS).
                if let Err(why) = logs_in(&client, &db, &pw) {
                    return Err(self.fail(STEP, format!("user '{}' does not log in with the database password given: {why}", db.user), &format!("give the password that user has (--db-password-file), or set it as root: ALTER USER '{}'@'localhost' IDENTIFIED BY '…';", db.user)));
                }
                self.acted(STEP, format!("created database `{}`, user '{}'@'localhost' and its grants", db.name, db.user));
                Ok(())
            }
        }
    }

    /// Whether the database, the user and its grants all exist.
    fn local_exists(&mut self, client: &Path, db: &Database) -> Result<bool, Error> {
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}';\n\
             SELECT COUNT(*) FROM mysql.user WHERE User = '{user}' AND Host = 'localhost';\n",
            name = db.name,
            user = db.user
        );
        let counts = match as_root(client, &sql) {
            Ok(out) => out,
            Err(why) => {
                return Err(self.fail(
                    STEP,
                    format!("cannot query MariaDB as root: {why}"),
                    "check that `mariadb` logs root in over the unix socket",
                ))
            }
        };
        if counts.split_whitespace().any(|c| c == "0") {
            return Ok(false);
        }
        let grants = as_root(
            client,
            &format!("SHOW GRANTS FOR '{}'@'localhost';\n", db.user),
        )
        .unwrap_or_default();
        let wanted = format!("ON `{}`.*", db.name);
        Ok(grants
            .lines()
            .any(|g| g.contains("ALL PRIVILEGES") && g.contains(&wanted)))
    }

    /// A remote database: used as it is when Cells' user logs in; else
    /// the SQL for its admin, and the run stops after the files.
    fn remote(
        &mut self,
        client: &Path,
        db: &Database,
        password: Option<&Secret>,
    ) -> Result<(), Error> {
        let Some(pw) = password else {
            self.record(
                STEP,
                Status::Skipped,
                format!(
                    "already done: install.yml was used, so Cells reached {}",
                    db.host
                ),
            );
            return Ok(());
        };
        if logs_in(client, db, pw).is_ok() {
            self.record(
                STEP,
                Status::Skipped,
                format!(
                    "already done: '{}' logs in to `{}` on {}",
                    db.user, db.name, db.host
                ),
            );
            return Ok(());
        }
        let sql = setup_sql(db, None);
        if self.dry_run {
            self.acted(
                STEP,
                format!(
                    "stop after the files: the admin of {} runs the SQL that creates `{}` and '{}'",
                    db.host, db.name, db.user
                ),
            );
        } else {
            self.database_pending = Some(sql);
        }
        Ok(())
    }
}

#[cfg(test)]
mod database_tests {
    use super::*;
    use crate::answers::parsed;

    #[test]
    fn the_password_literal_cannot_end_early() {
        let db = Database {
            host: parsed("127.0.0.1"),
            port: parsed("3306"),
            name: parsed("cells"),
            user: parsed("pydio"),
        };
        let pw = Secret::new("it's\\'; DROP DATABASE x; --".into()).unwrap();
        let sql = setup_sql(&db, Some(&pw));
        assert!(sql.starts_with("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES';"));
        assert!(
            sql.contains("IDENTIFIED BY 'it''s\\''; DROP DATABASE x; --';"),
            "{sql}"
        );
        assert!(sql.contains("'pydio'@'localhost'"));
    }
}
