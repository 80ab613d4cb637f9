//! The interactive wizard of `cellsctl init`.
//!
//! The wizard only fills in what no flag, env var or saved state supplied:
//! it returns the same `AnswerArgs` the flags produce (plus secrets), and
//! `inputs::resolve` takes it from there, so prompted and scripted runs are
//! one code path. Every answer goes through the same newtype parsers as the
//! flags; an invalid one is explained and asked again.

use crate::answers::{CaddyVersion, Email, PublicTls, Scheme, UpstreamTls};
use crate::cli::{AnswerArgs, PublicTlsMode};
use crate::error::Error;
use crate::inputs::SecretEnv;
use crate::secrets::Secret;
use crate::state::State;
use std::collections::VecDeque;
use std::str::FromStr;

/// Asking a person. EOF, Ctrl-C or a closed terminal is `Error::Cancelled`.
pub trait Prompter {
    /// A line of text; an empty answer takes `default` when there is one.
    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error>;
    /// One of `items`, by index.
    fn select(&mut self, prompt: &str, items: &[&str], default: usize) -> Result<usize, Error>;
    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool, Error>;
    /// Hidden input, typed twice.
    fn password(&mut self, prompt: &str) -> Result<String, Error>;
    /// A hint before a question, or why an answer was refused.
    fn say(&mut self, text: &str);
}

/// What is already known before asking.
pub struct Known<'a> {
    pub flags: &'a AnswerArgs,
    pub secret_env: &'a SecretEnv,
    pub saved: Option<&'a State>,
    /// install.yml will be written for the first time: its passwords are needed.
    pub needs_install_secrets: bool,
    /// A Caddy version can be found without asking (flag, state or PATH).
    pub caddy_known: bool,
}

/// The answers as flags would have given them, and the secrets as env vars would.
pub struct Filled {
    pub flags: AnswerArgs,
    pub secret_env: SecretEnv,
}

/// Asks until the answer parses; `default` is shown and taken on an empty answer.
fn ask<T: FromStr<Err = String>>(
    p: &mut dyn Prompter,
    prompt: &str,
    hint: &str,
    default: Option<String>,
) -> Result<T, Error> {
    p.say(hint);
    loop {
        let raw = p.input(prompt, default.as_deref())?;
        match raw.trim().parse::<T>() {
            Ok(v) => return Ok(v),
            Err(why) => p.say(&format!("✗ {why}")),
        }
    }
}

/// Asks for `slot` unless a flag, env var or the state already filled it.
fn fill<T: FromStr<Err = String>>(
    slot: &mut Option<T>,
    p: &mut dyn Prompter,
    prompt: &str,
    hint: &str,
    default: Option<String>,
) -> Result<(), Error> {
    if slot.is_none() {
        *slot = Some(ask(p, prompt, hint, default)?);
    }
    Ok(())
}

/// Like `ask`, but an empty answer means "none".
fn ask_optional<T: FromStr<Err = String>>(
    p: &mut dyn Prompter,
    prompt: &str,
    hint: &str,
    default: Option<String>,
) -> Result<Option<T>, Error> {
    p.say(hint);
    loop {
        let raw = p.input(prompt, Some(default.as_deref().unwrap_or("")))?;
        if raw.trim().is_empty() {
            return Ok(None);
        }
        match raw.trim().parse::<T>() {
            Ok(v) => return Ok(Some(v)),
            Err(why) => p.say(&format!("✗ {why}")),
        }
    }
}

/// A hidden password, typed twice, checked by `check`.
fn ask_secret(
    p: &mut dyn Prompter,
    prompt: &str,
    hint: &str,
    check: fn(String) -> Result<Secret, String>,
) -> Result<String, Error> {
    p.say(hint);
    loop {
        let raw = p.password(prompt)?;
        match check(raw) {
            Ok(s) => return Ok(s.expose().to_string()),
            Err(why) => p.say(&format!("✗ the password {why}")),
        }
    }
}

fn saved_or<T: ToString>(saved: Option<T>, builtin: &str) -> Option<String> {
    Some(
        saved
            .map(|v| v.to_string())
            .unwrap_or_else(|| builtin.to_string()),
    )
}

/// Asks every question that `known` does not answer, in the documented order.
pub fn run(p: &mut dyn Prompter, known: &Known) -> Result<Filled, Error> {
    let mut f = known.flags.clone();
    let mut secrets = SecretEnv {
        prometheus_password: known.secret_env.prometheus_password.clone(),
        admin_password: known.secret_env.admin_password.clone(),
        db_password: known.secret_env.db_password.clone(),
    };
    let prev = known.saved.map(|s| &s.answers);

    fill(
        &mut f.external_url,
        p,
        "External URL",
        "The address people and the Cells Sync client use, e.g. https://cells.example.com (a port is allowed, no path).",
        prev.map(|a| a.external_url.to_string()),
    )?;
    fill(
        &mut f.bind,
        p,
        "Cells bind address",
        "Where Cells listens, IP:PORT; Caddy proxies to it. 127.0.0.1:8080 keeps it off the network.",
        saved_or(prev.map(|a| a.bind), "127.0.0.1:8080"),
    )?;
    // Flags that only make sense with one TLS mode choose it.
    if f.public_tls.is_none() && f.acme_email.is_some() {
        f.public_tls = Some(PublicTlsMode::Acme);
    }
    if f.public_tls.is_none() && (f.public_cert.is_some() || f.public_key.is_some()) {
        f.public_tls = Some(PublicTlsMode::Custom);
    }
    if f.public_tls.is_none() {
        let url_is_http = f
            .external_url
            .as_ref()
            .is_some_and(|u| u.scheme == Scheme::Http);
        let default = match prev.map(|a| &a.public_tls) {
            _ if url_is_http => 3,
            Some(PublicTls::Acme { .. }) | None => 0,
            Some(PublicTls::Internal) => 1,
            Some(PublicTls::Custom { .. }) => 2,
            Some(PublicTls::Off) => 3,
        };
        p.say("How Caddy gets the certificate visitors see.");
        let choice = p.select(
            "Public TLS",
            &[
                "ACME: a free certificate from Let's Encrypt/ZeroSSL (needs public DNS and ports 80/443)",
                "Caddy's internal CA (for tests and private networks)",
                "Your own certificate and key files",
                "Plain HTTP (the Cells Sync client cannot work without TLS)",
            ],
            default,
        )?;
        f.public_tls = Some(
            [
                PublicTlsMode::Acme,
                PublicTlsMode::Internal,
                PublicTlsMode::Custom,
                PublicTlsMode::Off,
            ][choice],
        );
    }
    // The URL's scheme follows the TLS choice.
    if let (Some(url), Some(mode)) = (&mut f.external_url, f.public_tls) {
        let want = if mode == PublicTlsMode::Off {
            Scheme::Http
        } else {
            Scheme::Https
        };
        if url.scheme != want && known.flags.external_url.is_none() {
            url.scheme = want;
            if url.port == Some(if want == Scheme::Http { 443 } else { 80 }) {
                url.port = None;
            }
            p.say(&format!("The external URL is now {url}."));
        }
    }
    match f.public_tls {
        Some(PublicTlsMode::Acme) if f.acme_email.is_none() => {
            let saved = match prev.map(|a| &a.public_tls) {
                Some(PublicTls::Acme { email }) => email.as_ref().map(|e| e.to_string()),
                _ => None,
            };
            f.acme_email = ask_optional::<Email>(
                p,
                "ACME e-mail (optional)",
                "For expiry notices from the certificate authority; leave empty for none.",
                saved,
            )?;
        }
        Some(PublicTlsMode::Custom) => {
            let (cert, key) = match prev.map(|a| &a.public_tls) {
                Some(PublicTls::Custom { cert, key }) => {
                    (Some(cert.to_string()), Some(key.to_string()))
                }
                _ => (None, None),
            };
            fill(
                &mut f.public_cert,
                p,
                "Certificate file",
                "Full chain, PEM, readable by the caddy user.",
                cert,
            )?;
            fill(
                &mut f.public_key,
                p,
                "Key file",
                "PEM, readable by the caddy user.",
                key,
            )?;
        }
        _ => {}
    }
    if f.upstream_tls.is_none() {
        p.say("TLS between Caddy and Cells (end to end, so Cells Sync's gRPC over HTTP/2 works).");
        let default = usize::from(prev.is_some_and(|a| a.upstream_tls == UpstreamTls::SkipVerify));
        let choice = p.select(
            "Upstream TLS",
            &[
                "cellsctl's private CA: Caddy verifies Cells' certificate (recommended)",
                "Cells' self-signed certificate, not verified (as in Pydio's tutorial)",
            ],
            default,
        )?;
        f.upstream_tls = Some([UpstreamTls::Ca, UpstreamTls::SkipVerify][choice]);
    }

    ask_prometheus(p, known, &mut f, &mut secrets)?;

    fill(
        &mut f.admin_login,
        p,
        "Cells admin login",
        "The first administrator account of Cells.",
        saved_or(prev.map(|a| a.admin_login.clone()), "admin"),
    )?;
    let has =
        |file: &Option<std::path::PathBuf>, env: &Option<String>| file.is_some() || env.is_some();
    if known.needs_install_secrets && !has(&f.admin_password_file, &secrets.admin_password) {
        secrets.admin_password = Some(ask_secret(
            p,
            "Cells admin password",
            "Goes into install.yml only (delete it after `cells configure`); never stored by cellsctl.",
            Secret::new,
        )?);
    }
    let prev_db = prev.map(|a| &a.database);
    fill(
        &mut f.db_host,
        p,
        "Database host",
        "MariaDB/MySQL server.",
        saved_or(prev_db.map(|d| d.host.clone()), "127.0.0.1"),
    )?;
    fill(
        &mut f.db_port,
        p,
        "Database port",
        "Usually 3306.",
        saved_or(prev_db.map(|d| d.port), "3306"),
    )?;
    fill(
        &mut f.db_name,
        p,
        "Database name",
        "Created before `cells configure` (the SQL is printed at the end).",
        saved_or(prev_db.map(|d| d.name.clone()), "cells"),
    )?;
    fill(
        &mut f.db_user,
        p,
        "Database user",
        "The account Cells connects as.",
        saved_or(prev_db.map(|d| d.user.clone()), "pydio"),
    )?;
    if known.needs_install_secrets && !has(&f.db_password_file, &secrets.db_password) {
        secrets.db_password = Some(ask_secret(
            p,
            "Database password",
            "Goes into install.yml only; never stored by cellsctl.",
            Secret::new,
        )?);
    }

    let advanced_unset =
        f.cells_binary.is_none() || f.cells_user.is_none() || f.cells_working_dir.is_none();
    if advanced_unset
        && p.confirm(
            "Change advanced settings (Cells binary, user, working dir)?",
            false,
        )?
    {
        let prev_cells = prev.map(|a| &a.cells);
        fill(
            &mut f.cells_binary,
            p,
            "Cells binary",
            "Where the cells executable is installed.",
            saved_or(prev_cells.map(|c| c.binary.clone()), "/opt/pydio/bin/cells"),
        )?;
        fill(
            &mut f.cells_user,
            p,
            "Cells system user",
            "Cells runs as this user and group.",
            saved_or(prev_cells.map(|c| c.user.clone()), "pydio"),
        )?;
        fill(
            &mut f.cells_working_dir,
            p,
            "Cells working dir",
            "CELLS_WORKING_DIR: data, config and logs.",
            saved_or(prev_cells.map(|c| c.working_dir.clone()), "/var/cells"),
        )?;
    }
    if f.caddy_version.is_none() && !known.caddy_known {
        f.caddy_version = Some(ask::<CaddyVersion>(
            p,
            "Caddy version",
            "No `caddy` found on PATH: which Caddy will serve this (e.g. 2.6.2 from Debian, 2.11.7)? The Caddyfile differs between versions.",
            None,
        )?);
    }
    Ok(Filled {
        flags: f,
        secret_env: secrets,
    })
}

fn ask_prometheus(
    p: &mut dyn Prompter,
    known: &Known,
    f: &mut AnswerArgs,
    secrets: &mut SecretEnv,
) -> Result<(), Error> {
    let prev = known.saved.and_then(|s| s.answers.prometheus.as_ref());
    let on = if f.prometheus {
        true
    } else if f.no_prometheus {
        false
    } else {
        p.say("Prometheus metrics under a path of the site, behind basic auth (Cells Enterprise exposes metrics).");
        let on = p.confirm("Serve Prometheus?", prev.is_some())?;
        f.prometheus = on;
        f.no_prometheus = !on;
        on
    };
    if !on {
        return Ok(());
    }
    fill(
        &mut f.prometheus_listen,
        p,
        "Prometheus listen address",
        "A loopback IP:PORT, so the only way in is Caddy's basic auth.",
        saved_or(prev.map(|x| x.listen), "127.0.0.1:9090"),
    )?;
    fill(
        &mut f.prometheus_path,
        p,
        "Prometheus path",
        "The URL path Caddy serves it under.",
        saved_or(prev.map(|x| x.path.clone()), "/prometheus"),
    )?;
    fill(
        &mut f.prometheus_user,
        p,
        "Prometheus user",
        "The basic-auth login.",
        prev.map(|x| x.user.to_string()),
    )?;
    let given = f.prometheus_password_file.is_some()
        || f.prometheus_password_hash.is_some()
        || secrets.prometheus_password.is_some();
    if !given {
        let keep = prev.is_some() && p.confirm("Keep the current Prometheus password?", true)?;
        if !keep {
            secrets.prometheus_password = Some(ask_secret(
                p,
                "Prometheus password",
                "Stored only as a bcrypt hash, in the Caddyfile and cellsctl's state.",
                Secret::for_basic_auth,
            )?);
        }
    }
    Ok(())
}

/// A prompter that replays answers, for tests; running out is EOF.
#[derive(Default)]
pub struct ScriptedPrompter {
    pub answers: VecDeque<Scripted>,
    /// Every prompt asked, in order.
    pub asked: Vec<String>,
    /// Every hint and complaint shown.
    pub said: Vec<String>,
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// Type this (for input and password).
    Text(&'static str),
    /// Press Enter: take the default.
    Enter,
    /// Pick this item (select) or answer yes/no (confirm).
    Choice(usize),
    Yes,
    No,
}

impl ScriptedPrompter {
    pub fn new(answers: impl IntoIterator<Item = Scripted>) -> ScriptedPrompter {
        ScriptedPrompter {
            answers: answers.into_iter().collect(),
            ..ScriptedPrompter::default()
        }
    }

    fn next(&mut self, prompt: &str) -> Result<Scripted, Error> {
        self.asked.push(prompt.to_string());
        self.answers
            .pop_front()
            .ok_or_else(|| Error::Cancelled(format!("end of input at \"{prompt}\"")))
    }
}

impl Prompter for ScriptedPrompter {
    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error> {
        match self.next(prompt)? {
            Scripted::Text(t) => Ok(t.to_string()),
            Scripted::Enter => Ok(default.unwrap_or("").to_string()),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the input \"{prompt}\""
            ))),
        }
    }

    fn select(&mut self, prompt: &str, items: &[&str], default: usize) -> Result<usize, Error> {
        match self.next(prompt)? {
            Scripted::Choice(i) if i < items.len() => Ok(i),
            Scripted::Enter => Ok(default),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the choice \"{prompt}\""
            ))),
        }
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool, Error> {
        match self.next(prompt)? {
            Scripted::Yes => Ok(true),
            Scripted::No => Ok(false),
            Scripted::Enter => Ok(default),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the question \"{prompt}\""
            ))),
        }
    }

    fn password(&mut self, prompt: &str) -> Result<String, Error> {
        match self.next(prompt)? {
            Scripted::Text(t) => Ok(t.to_string()),
            Scripted::Enter => Ok(String::new()),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the password \"{prompt}\""
            ))),
        }
    }

    fn say(&mut self, text: &str) {
        self.said.push(text.to_string());
    }
}

/// The terminal prompter (dialoguer), on stderr.
pub struct TerminalPrompter {
    theme: Box<dyn dialoguer::theme::Theme>,
    term: console::Term,
}

impl TerminalPrompter {
    pub fn new() -> TerminalPrompter {
        let theme: Box<dyn dialoguer::theme::Theme> = if console::colors_enabled_stderr() {
            Box::new(dialoguer::theme::ColorfulTheme::default())
        } else {
            Box::new(dialoguer::theme::SimpleTheme)
        };
        TerminalPrompter {
            theme,
            term: console::Term::stderr(),
        }
    }
}

impl Default for TerminalPrompter {
    fn default() -> Self {
        TerminalPrompter::new()
    }
}

/// Dialoguer's errors at a prompt are Ctrl-C, EOF or a lost terminal.
fn cancelled(e: dialoguer::Error) -> Error {
    Error::Cancelled(format!("no answer ({e})"))
}

/// One line from stdin in the terminal's own (cooked) mode: its line editing
/// works, Ctrl-D on an empty line is end of input, Ctrl-C is SIGINT.
fn read_line_or_cancel(what: &str) -> Result<String, Error> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) => Err(Error::Cancelled(format!("end of input at \"{what}\""))),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) => Err(Error::Cancelled(format!("cannot read \"{what}\": {e}"))),
    }
}

/// Like `read_line_or_cancel`, with echo off.
fn read_secret_or_cancel(what: &str) -> Result<String, Error> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin)
        .map_err(|e| Error::Cancelled(format!("no terminal for \"{what}\": {e}")))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet)
        .map_err(|e| Error::Cancelled(format!("cannot hide input: {e}")))?;
    let line = read_line_or_cancel(what);
    // Echo back on even when reading failed.
    let _ = tcsetattr(&stdin, SetArg::TCSAFLUSH, &saved);
    eprintln!();
    line
}

impl TerminalPrompter {
    fn question(&self, prompt: &str, default: Option<&str>) -> String {
        let default = match default {
            Some(d) if !d.is_empty() => format!(" ({d})"),
            _ => String::new(),
        };
        format!("{} {prompt}{default} › ", console::style("?").yellow())
    }
}

impl Prompter for TerminalPrompter {
    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error> {
        let _ = self.term.write_str(&self.question(prompt, default));
        let line = read_line_or_cancel(prompt)?;
        Ok(match default {
            Some(d) if line.trim().is_empty() => d.to_string(),
            _ => line,
        })
    }

    fn select(&mut self, prompt: &str, items: &[&str], default: usize) -> Result<usize, Error> {
        dialoguer::Select::with_theme(self.theme.as_ref())
            .with_prompt(prompt)
            .items(items)
            .default(default)
            .interact_on_opt(&self.term)
            .map_err(cancelled)?
            .ok_or_else(|| Error::Cancelled("no choice made".into()))
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool, Error> {
        // Wait for Enter: an answer typed as "y⏎" must not leave a stray ⏎
        // that accepts the next question (the final "Write these files?").
        dialoguer::Confirm::with_theme(self.theme.as_ref())
            .with_prompt(prompt)
            .default(default)
            .wait_for_newline(true)
            .interact_on_opt(&self.term)
            .map_err(cancelled)?
            .ok_or_else(|| Error::Cancelled("no answer".into()))
    }

    fn password(&mut self, prompt: &str) -> Result<String, Error> {
        loop {
            let _ = self.term.write_str(&self.question(prompt, None));
            let first = read_secret_or_cancel(prompt)?;
            let _ = self
                .term
                .write_str(&self.question("Again, to confirm", None));
            let second = read_secret_or_cancel(prompt)?;
            if first == second {
                return Ok(first);
            }
            self.say("✗ The two entries differ; once more.");
        }
    }

    fn say(&mut self, text: &str) {
        let styled = if text.starts_with('✗') {
            console::style(text).red().to_string()
        } else {
            console::style(text).dim().to_string()
        };
        let _ = self.term.write_line(&styled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Scripted::*;

    fn known<'a>(flags: &'a AnswerArgs, env: &'a SecretEnv, saved: Option<&'a State>) -> Known<'a> {
        Known {
            flags,
            secret_env: env,
            saved,
            needs_install_secrets: saved.is_none(),
            caddy_known: true,
        }
    }

    /// A first run taking most defaults, with Prometheus on.
    fn first_run_script() -> Vec<Scripted> {
        vec![
            Text("https://cells.example.com"), // URL
            Enter,                             // bind
            Enter,                             // public TLS: ACME
            Text("tls@example.com"),           // e-mail
            Enter,                             // upstream: CA
            Yes,                               // Prometheus
            Enter,                             // listen
            Enter,                             // path
            Text("sysadminUser"),              // user
            Text("prom-secret"),               // password
            Enter,                             // admin login
            Text("admin-secret"),              // admin password
            Enter,
            Enter,
            Enter,
            Enter,         // db host, port, name, user
            Text("db-pw"), // db password
            No,            // advanced
        ]
    }

    #[test]
    fn defaults_are_taken() {
        let flags = AnswerArgs::default();
        let env = SecretEnv::default();
        let mut p = ScriptedPrompter::new(first_run_script());
        let out = run(&mut p, &known(&flags, &env, None)).unwrap();
        assert!(p.answers.is_empty(), "every scripted answer used");
        let f = out.flags;
        assert_eq!(
            f.external_url.unwrap().to_string(),
            "https://cells.example.com"
        );
        assert_eq!(f.bind.unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(f.public_tls, Some(PublicTlsMode::Acme));
        assert_eq!(f.acme_email.unwrap().to_string(), "tls@example.com");
        assert_eq!(f.upstream_tls, Some(UpstreamTls::Ca));
        assert!(f.prometheus && !f.no_prometheus);
        assert_eq!(f.prometheus_listen.unwrap().to_string(), "127.0.0.1:9090");
        assert_eq!(f.prometheus_path.unwrap().to_string(), "/prometheus");
        assert_eq!(f.admin_login.unwrap().to_string(), "admin");
        assert_eq!(f.db_name.unwrap().to_string(), "cells");
        assert_eq!(
            out.secret_env.prometheus_password.as_deref(),
            Some("prom-secret")
        );
        assert_eq!(
            out.secret_env.admin_password.as_deref(),
            Some("admin-secret")
        );
        assert_eq!(out.secret_env.db_password.as_deref(), Some("db-pw"));
        assert!(
            f.cells_binary.is_none(),
            "advanced settings skipped: defaults apply later"
        );
    }

    #[test]
    fn flags_skip_their_questions() {
        let flags = AnswerArgs {
            external_url: Some("https://files.example.org".parse().unwrap()),
            public_tls: Some(PublicTlsMode::Internal),
            no_prometheus: true,
            ..AnswerArgs::default()
        };
        let env = SecretEnv {
            admin_password: Some("a".into()),
            db_password: Some("b".into()),
            ..SecretEnv::default()
        };
        let mut p = ScriptedPrompter::new([Enter, Enter, Enter, Enter, Enter, Enter, Enter, No]);
        let out = run(&mut p, &known(&flags, &env, None)).unwrap();
        assert_eq!(
            p.asked,
            [
                "Cells bind address",
                "Upstream TLS",
                "Cells admin login",
                "Database host",
                "Database port",
                "Database name",
                "Database user",
                "Change advanced settings (Cells binary, user, working dir)?"
            ]
        );
        assert_eq!(
            out.flags.external_url.unwrap().to_string(),
            "https://files.example.org"
        );
    }

    #[test]
    fn invalid_answers_are_asked_again() {
        let flags = AnswerArgs {
            no_prometheus: true,
            ..AnswerArgs::default()
        };
        let env = SecretEnv {
            admin_password: Some("a".into()),
            db_password: Some("b".into()),
            ..SecretEnv::default()
        };
        let mut script = vec![
            Text("cells.example.com"),
            Text("https://cells.example.com/path"),
            Text("https://cells.example.com"),
            Text("localhost:8080"),
            Enter,
        ];
        script.extend([Enter, Enter, Enter, Enter, Enter, Enter, Enter, Enter, No]);
        let mut p = ScriptedPrompter::new(script);
        let out = run(&mut p, &known(&flags, &env, None)).unwrap();
        assert_eq!(p.asked.iter().filter(|a| *a == "External URL").count(), 3);
        assert_eq!(
            p.asked
                .iter()
                .filter(|a| *a == "Cells bind address")
                .count(),
            2
        );
        let complaints: Vec<&String> = p.said.iter().filter(|s| s.starts_with('✗')).collect();
        assert_eq!(complaints.len(), 3, "{complaints:?}");
        assert!(
            complaints[1].contains("a path is not allowed"),
            "{complaints:?}"
        );
        assert!(
            complaints[2].contains("is not an IP:PORT"),
            "{complaints:?}"
        );
        assert_eq!(out.flags.bind.unwrap().to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn passwords_are_checked_like_flags() {
        let flags = AnswerArgs {
            external_url: Some("https://c.example.com".parse().unwrap()),
            no_prometheus: true,
            ..AnswerArgs::default()
        };
        let env = SecretEnv {
            db_password: Some("b".into()),
            ..SecretEnv::default()
        };
        let mut p = ScriptedPrompter::new([
            Enter,
            Enter,
            Enter,
            Enter,
            Enter,
            Text("pa{$HOME}"),
            Text("fine $ one"),
            Enter,
            Enter,
            Enter,
            Enter,
            No,
        ]);
        let out = run(&mut p, &known(&flags, &env, None)).unwrap();
        assert!(
            p.said
                .iter()
                .any(|s| s.starts_with("✗ the password contains '{$'")),
            "{:?}",
            p.said
        );
        assert_eq!(out.secret_env.admin_password.as_deref(), Some("fine $ one"));
    }

    #[test]
    fn prometheus_listen_must_be_loopback_at_the_question() {
        let flags = AnswerArgs {
            external_url: Some("https://c.example.com".parse().unwrap()),
            public_tls: Some(PublicTlsMode::Internal),
            ..AnswerArgs::default()
        };
        let env = SecretEnv {
            admin_password: Some("a".into()),
            db_password: Some("b".into()),
            prometheus_password: Some("p".into()),
        };
        let mut p = ScriptedPrompter::new([
            Enter,
            Enter,
            Yes,
            Text("0.0.0.0:9090"),
            Enter,
            Enter,
            Text("ops"),
            Enter,
            Enter,
            Enter,
            Enter,
            Enter,
            No,
        ]);
        let out = run(&mut p, &known(&flags, &env, None)).unwrap();
        assert_eq!(
            p.asked
                .iter()
                .filter(|a| *a == "Prometheus listen address")
                .count(),
            2
        );
        assert!(
            p.said
                .iter()
                .any(|s| s.contains("0.0.0.0:9090 is not a loopback address")),
            "{:?}",
            p.said
        );
        assert_eq!(
            out.flags.prometheus_listen.unwrap().to_string(),
            "127.0.0.1:9090"
        );
    }

    #[test]
    fn an_acme_email_flag_chooses_acme() {
        let flags = AnswerArgs {
            external_url: Some("https://c.example.com".parse().unwrap()),
            acme_email: Some("a@example.com".parse().unwrap()),
            no_prometheus: true,
            ..AnswerArgs::default()
        };
        let env = SecretEnv {
            admin_password: Some("a".into()),
            db_password: Some("b".into()),
            ..SecretEnv::default()
        };
        let mut p = ScriptedPrompter::new([Enter, Enter, Enter, Enter, Enter, Enter, Enter, No]);
        let out = run(&mut p, &known(&flags, &env, None)).unwrap();
        assert!(!p.asked.iter().any(|a| a == "Public TLS"), "{:?}", p.asked);
        assert_eq!(out.flags.public_tls, Some(PublicTlsMode::Acme));
    }

    #[test]
    fn end_of_input_cancels() {
        let flags = AnswerArgs::default();
        let env = SecretEnv::default();
        let mut p = ScriptedPrompter::new([Text("https://cells.example.com")]);
        assert!(matches!(
            run(&mut p, &known(&flags, &env, None)),
            Err(Error::Cancelled(_))
        ));
    }

    #[test]
    fn plain_http_choice_turns_the_url_into_http() {
        let flags = AnswerArgs {
            no_prometheus: true,
            ..AnswerArgs::default()
        };
        let env = SecretEnv {
            admin_password: Some("a".into()),
            db_password: Some("b".into()),
            ..SecretEnv::default()
        };
        let mut p = ScriptedPrompter::new([
            Text("https://cells.example.com"),
            Enter,
            Choice(3),
            Enter,
            Enter,
            Enter,
            Enter,
            Enter,
            Enter,
            No,
        ]);
        let out = run(&mut p, &known(&flags, &env, None)).unwrap();
        assert_eq!(
            out.flags.external_url.unwrap().to_string(),
            "http://cells.example.com"
        );
    }
}
