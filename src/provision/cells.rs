//! Steps 2 and 5: the Cells system user, and `cells configure` with
//! install.yml, run as that user with CELLS_WORKING_DIR set.

use super::{exec, Provisioner, Status};
use crate::error::Error;
use crate::render::paths;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

/// Cells retries its database 20 times, 10 s apart: past that, it is stuck.
const CONFIGURE_LIMIT: Duration = Duration::from_secs(300);
/// Where `cells configure` writes its output (root only).
pub const CONFIGURE_LOG_DIR: &str = "/var/log/cellsctl";

/// Cells keeps its configuration here, in its working dir: its presence
/// means `cells configure` has run.
pub fn config_file(working_dir: &str) -> String {
    format!("{working_dir}/pydio.json")
}

impl Provisioner<'_> {
    pub(super) fn cells_user(&mut self) -> Result<(), Error> {
        const STEP: &str = "cells-user";
        let user = self.answers.cells.user.to_string();
        let wd = self.answers.cells.working_dir.to_string();
        if matches!(nix::unistd::User::from_name(&user), Ok(Some(_))) {
            self.record(
                STEP,
                Status::Skipped,
                format!("already done: user {user} exists"),
            );
            return Ok(());
        }
        let what = format!(
            "system user and group {user}, no login shell, home {wd} (created with the files)"
        );
        if self.dry_run {
            self.acted(STEP, format!("create {what}"));
            return Ok(());
        }
        let ran = exec::run(
            crate::ui::tool("useradd").args([
                "--system",
                "--user-group",
                "--home-dir",
                &wd,
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                &user,
            ]),
            b"",
            Duration::from_secs(30),
        );
        match ran {
            Ok(r) if r.ok() => {
                self.acted(STEP, format!("created {what}"));
                Ok(())
            }
            Ok(r) => Err(self.fail(STEP, format!("useradd failed: {}", r.message()), "check /etc/passwd and /etc/group (is the group taken by another user?), or choose --cells-user")),
            Err(e) => Err(self.fail(STEP, format!("useradd: {e}"), "apt-get install passwd")),
        }
    }

    pub(super) fn cells_configure(&mut self) -> Result<(), Error> {
        const STEP: &str = "cells-configure";
        let wd = self.answers.cells.working_dir.to_string();
        let config = config_file(&wd);
        if Path::new(&config).exists() {
            let left = if Path::new(paths::INSTALL_YML).exists() {
                format!("; {} is still there, unused: delete it, it holds the admin and database passwords", paths::INSTALL_YML)
            } else {
                String::new()
            };
            self.record(
                STEP,
                Status::Skipped,
                format!("already done: Cells is configured ({config} exists){left}"),
            );
            return Ok(());
        }
        if !Path::new(paths::INSTALL_YML).exists() && !self.dry_run {
            return Err(self.fail(
                STEP,
                format!("{config} is missing and {} was already used and deleted", paths::INSTALL_YML),
                "give the admin and database passwords again (CELLSCTL_ADMIN_PASSWORD and CELLSCTL_DB_PASSWORD, or their --…-password-file flags): with --provision, install.yml is then written anew for `cells configure`",
            ));
        }
        let bin = self.answers.cells.binary.to_string();
        if self.dry_run {
            self.acted(
                STEP,
                format!(
                    "{bin} configure --yaml {} as {}, then delete it",
                    paths::INSTALL_YML,
                    self.answers.cells.user
                ),
            );
            return Ok(());
        }
        let log = self.configure_log();
        let log_file = match log.as_ref().map(|p| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(p)
        }) {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                return Err(self.fail(
                    STEP,
                    format!("cannot open the log {CONFIGURE_LOG_DIR}: {e}"),
                    "check /var/log",
                ))
            }
            Err(e) => return Err(self.fail(STEP, e, "check /var/log")),
        };
        let log = log.unwrap_or_default();
        crate::ui::say(&format!(
            "running `cells configure` (up to {} min; log: {log})",
            CONFIGURE_LIMIT.as_secs() / 60
        ));
        let outcome = self.spawn_configure(&bin, &wd, log_file);
        match outcome {
            Ok(()) => {
                if let Err(e) = std::fs::remove_file(paths::INSTALL_YML) {
                    return Err(self.fail(
                        STEP,
                        format!(
                            "Cells is configured but {} could not be deleted: {e}",
                            paths::INSTALL_YML
                        ),
                        "delete it by hand: it holds the admin and database passwords",
                    ));
                }
                self.acted(
                    STEP,
                    format!("Cells configured ({config}); install.yml deleted; log: {log}"),
                );
                Ok(())
            }
            Err(why) => {
                let tail = log_tail(&log);
                Err(self.fail(STEP, format!("`cells configure` failed: {why}; install.yml is kept; last lines of {log}:\n{tail}"), "fix what the log names (often the database credentials or the Cells binary), then run again"))
            }
        }
    }

    /// A fresh log file's path below CONFIGURE_LOG_DIR (0700 root).
    fn configure_log(&self) -> Result<String, String> {
        crate::root::create_dirs(Path::new(CONFIGURE_LOG_DIR), 0o700).map_err(|e| e.to_string())?;
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok(format!("{CONFIGURE_LOG_DIR}/cells-configure-{stamp}.log"))
    }

    /// `cells configure --yaml install.yml` as the Cells user (no
    /// supplementary groups), in its working dir, output to `log`.
    fn spawn_configure(&self, bin: &str, wd: &str, log: std::fs::File) -> Result<(), String> {
        let user = self.answers.cells.user.to_string();
        let account = match nix::unistd::User::from_name(&user) {
            Ok(Some(u)) => u,
            _ => return Err(format!("user {user} does not exist")),
        };
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = crate::ui::tool(bin);
        cmd.args(["configure", "--yaml", paths::INSTALL_YML])
            .env("CELLS_WORKING_DIR", wd)
            .env("HOME", wd)
            .current_dir(wd)
            .uid(account.uid.as_raw())
            .gid(account.gid.as_raw())
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err);
        // Its own process group: on a timeout, whatever it started goes too.
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        match exec::wait(&mut child, CONFIGURE_LIMIT) {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("it exited with {s}")),
            Err(e) => {
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                Err(e.to_string())
            }
        }
    }
}

/// The last lines of a log, indented.
fn log_tail(path: &str) -> String {
    let text = crate::root::read_optional_text(Path::new(path))
        .ok()
        .flatten()
        .unwrap_or_default();
    // Written by the Cells user: no escape sequence reaches root's terminal.
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..]
        .iter()
        .map(|l| {
            let clean: String = l
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            format!("    {clean}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
