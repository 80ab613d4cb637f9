//! The questions, as data, and the one loop that asks any of them.

use super::{Context, Prompter};
use crate::answers::{ExternalUrl, PublicTlsMode, Scheme, Toggle};
use crate::error::Error;
use crate::inputs::{Combine, Field, Given, Layer};
use crate::secrets::SecretKind;

/// What a question fills in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Answer(Field),
    Secret(SecretKind),
    /// A yes/no that only steers which questions follow.
    Gate(Gate),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    KeepPrometheusPassword,
    Advanced,
}

/// How a question is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    /// Text where an empty answer means none.
    Optional,
    /// One of these `(value as the flag takes it, label)`.
    Choice(&'static [(&'static str, &'static str)]),
    YesNo,
    /// Hidden, typed twice.
    Password,
}

struct Question {
    target: Target,
    prompt: &'static str,
    /// Said before the question (nothing when empty).
    hint: &'static str,
    kind: Kind,
    /// Asked only when this holds (and no flag gave the answer).
    when: fn(&Asking) -> bool,
    /// What Enter takes: the saved answer, else the default.
    offer: fn(&Asking, Target) -> Option<String>,
    /// Checked once the value parses; a problem is said and the question asked again.
    check: fn(&Asking, &Layer) -> Result<(), String>,
    /// For a refused answer, a corrected one to offer instead.
    suggest: fn(&str) -> Option<String>,
    /// Rules that follow once this question's turn is over (asked or not).
    then: fn(&mut Asking, &mut dyn Prompter),
}

fn always(_: &Asking) -> bool {
    true
}

fn offered(a: &Asking, target: Target) -> Option<String> {
    match target {
        Target::Answer(field) => a.offered.text(field),
        Target::Secret(_) | Target::Gate(_) => None,
    }
}

fn no_check(_: &Asking, _: &Layer) -> Result<(), String> {
    Ok(())
}

fn no_suggestion(_: &str) -> Option<String> {
    None
}

fn nothing_follows(_: &mut Asking, _: &mut dyn Prompter) {}

const fn ask(target: Target, kind: Kind, prompt: &'static str, hint: &'static str) -> Question {
    Question {
        target,
        prompt,
        hint,
        kind,
        when: always,
        offer: offered,
        check: no_check,
        suggest: no_suggestion,
        then: nothing_follows,
    }
}

const fn text(field: Field, prompt: &'static str, hint: &'static str) -> Question {
    ask(Target::Answer(field), Kind::Text, prompt, hint)
}

const fn password(kind: SecretKind, prompt: &'static str, hint: &'static str) -> Question {
    ask(Target::Secret(kind), Kind::Password, prompt, hint)
}

const fn choice(
    field: Field,
    items: &'static [(&'static str, &'static str)],
    prompt: &'static str,
    hint: &'static str,
) -> Question {
    ask(Target::Answer(field), Kind::Choice(items), prompt, hint)
}

/// The table's words for the optional parts of a question.
impl Question {
    const fn when(self, when: fn(&Asking) -> bool) -> Question {
        Question { when, ..self }
    }

    const fn offer(self, offer: fn(&Asking, Target) -> Option<String>) -> Question {
        Question { offer, ..self }
    }

    const fn check(self, check: fn(&Asking, &Layer) -> Result<(), String>) -> Question {
        Question { check, ..self }
    }

    const fn suggest(self, suggest: fn(&str) -> Option<String>) -> Question {
        Question { suggest, ..self }
    }

    const fn then(self, then: fn(&mut Asking, &mut dyn Prompter)) -> Question {
        Question { then, ..self }
    }
}

const TLS_MODES: &[(&str, &str)] = &[
    (
        "acme",
        "ACME: a free certificate from Let's Encrypt/ZeroSSL (needs public DNS and ports 80/443)",
    ),
    (
        "internal",
        "Caddy's internal CA (for tests and private networks)",
    ),
    ("custom", "Your own certificate and key files"),
    (
        "off",
        "Plain HTTP (the Cells Sync client cannot work without TLS)",
    ),
];

const UPSTREAM_MODES: &[(&str, &str)] = &[
    (
        "ca",
        "cellsctl's private CA: Caddy verifies Cells' certificate (recommended)",
    ),
    (
        "skip-verify",
        "Cells' self-signed certificate, not verified (as in Pydio's tutorial)",
    ),
];

/// Every question, in the order asked.
const QUESTIONS: &[Question] = &[
    text(Field::ExternalUrl, "External URL", "The address people and the Cells Sync client use, e.g. https://cells.example.com (a port is allowed, no path).")
        .suggest(with_https),
    text(Field::Bind, "Cells bind address", "Where Cells listens, IP:PORT; Caddy proxies to it. A 127.0.0.1 address keeps it off the network."),
    choice(Field::PublicTls, TLS_MODES, "Public TLS", "How Caddy gets the certificate visitors see.")
        .offer(tls_mode_offer)
        .then(url_scheme_follows_tls),
    ask(Target::Answer(Field::AcmeEmail), Kind::Optional, "ACME e-mail (optional)", "For expiry notices from the certificate authority; leave empty for none.")
        .when(tls_is_acme),
    text(Field::PublicCert, "Certificate file", "Full chain, PEM, readable by the caddy user.")
        .when(tls_is_custom)
        .check(certificate_is_usable),
    text(Field::PublicKey, "Key file", "PEM, readable by the caddy user.")
        .when(tls_is_custom)
        .check(key_is_usable),
    choice(Field::UpstreamTls, UPSTREAM_MODES, "Upstream TLS", "TLS between Caddy and Cells (end to end, so Cells Sync's gRPC over HTTP/2 works)."),
    ask(Target::Answer(Field::Prometheus), Kind::YesNo, "Serve Prometheus?", "Prometheus metrics under a path of the site, behind basic auth (Cells Enterprise exposes metrics)."),
    text(Field::PrometheusListen, "Prometheus listen address", "A loopback IP:PORT, so the only way in is Caddy's basic auth.")
        .when(prometheus_on),
    text(Field::PrometheusPath, "Prometheus path", "The URL path Caddy serves it under.").when(prometheus_on),
    text(Field::PrometheusUser, "Prometheus user", "The basic-auth login.").when(prometheus_on),
    ask(Target::Gate(Gate::KeepPrometheusPassword), Kind::YesNo, "Keep the current Prometheus password?", "")
        .when(may_keep_prometheus_password)
        .offer(yes),
    password(SecretKind::Prometheus, "Prometheus password", "Stored only as a bcrypt hash, in the Caddyfile and cellsctl's state.")
        .when(needs_prometheus_password),
    text(Field::AdminLogin, "Cells admin login", "The first administrator account of Cells."),
    password(SecretKind::Admin, "Cells admin password", "Goes into install.yml only (delete it after `cells configure`); never stored by cellsctl.")
        .when(needs_install_secrets),
    text(Field::DbHost, "Database host", "MariaDB/MySQL server."),
    text(Field::DbPort, "Database port", "The port MariaDB/MySQL listens on."),
    text(Field::DbName, "Database name", "Created before `cells configure` (the SQL is printed at the end)."),
    text(Field::DbUser, "Database user", "The account Cells connects as."),
    password(SecretKind::Database, "Database password", "Goes into install.yml only; never stored by cellsctl.")
        .when(needs_install_secrets),
    ask(Target::Gate(Gate::Advanced), Kind::YesNo, "Change advanced settings (Cells binary, user, working dir)?", "")
        .when(advanced_unset)
        .offer(no),
    text(Field::CellsBinary, "Cells binary", "Where the cells executable is installed.").when(advanced),
    text(Field::CellsUser, "Cells system user", "Cells runs as this user and group.").when(advanced),
    text(Field::CellsWorkingDir, "Cells working dir", "CELLS_WORKING_DIR: data, config and logs.").when(advanced),
    text(Field::CaddyVersion, "Caddy version", "No `caddy` found on PATH: which Caddy will serve this (e.g. 2.6.2 from Debian, 2.11.7)? The Caddyfile differs between versions.")
        .when(caddy_unknown),
];

/// Asked after a check failed: no asks again (the default).
const TAKE_ANYWAY: &str =
    "Use it anyway? (Caddy cannot serve it until this is fixed; `cellsctl check` reports it)";

/// The wizard's state: what is given so far, what Enter takes, the gates.
struct Asking<'a> {
    given: Given,
    /// The saved answers over the defaults.
    offered: Layer,
    ctx: &'a Context<'a>,
    /// The URL came from a flag: the TLS choice does not rewrite it.
    url_from_flags: bool,
    keep_prometheus_password: bool,
    advanced: bool,
}

fn tls_mode(a: &Asking) -> Option<PublicTlsMode> {
    a.given.answers.public_tls
}

fn tls_is_acme(a: &Asking) -> bool {
    tls_mode(a) == Some(PublicTlsMode::Acme)
}

fn tls_is_custom(a: &Asking) -> bool {
    tls_mode(a) == Some(PublicTlsMode::Custom)
}

fn prometheus_on(a: &Asking) -> bool {
    a.given.answers.prometheus == Some(Toggle::On)
}

/// A password file, variable or hash was given for Prometheus.
fn prometheus_password_given(a: &Asking) -> bool {
    a.given.secrets.prometheus.is_given() || a.given.answers.prometheus_password_hash.is_some()
}

fn may_keep_prometheus_password(a: &Asking) -> bool {
    let saved = a.ctx.saved.is_some_and(|s| s.answers.prometheus.is_some());
    prometheus_on(a) && saved && !prometheus_password_given(a)
}

fn needs_prometheus_password(a: &Asking) -> bool {
    prometheus_on(a) && !prometheus_password_given(a) && !a.keep_prometheus_password
}

fn needs_install_secrets(a: &Asking) -> bool {
    a.ctx.needs_install_secrets
}

fn advanced_unset(a: &Asking) -> bool {
    [Field::CellsBinary, Field::CellsUser, Field::CellsWorkingDir]
        .iter()
        .any(|f| !a.given.answers.is_set(*f))
}

fn advanced(a: &Asking) -> bool {
    a.advanced
}

fn caddy_unknown(a: &Asking) -> bool {
    !a.ctx.caddy_known
}

fn yes(_: &Asking, _: Target) -> Option<String> {
    Some("on".into())
}

fn no(_: &Asking, _: Target) -> Option<String> {
    Some("off".into())
}

/// An http:// URL offers plain HTTP; otherwise the saved mode or the default.
fn tls_mode_offer(a: &Asking, target: Target) -> Option<String> {
    match &a.given.answers.external_url {
        Some(url) if url.scheme == Scheme::Http => Some(PublicTlsMode::Off.to_string()),
        _ => offered(a, target),
    }
}

/// A host typed without a scheme: offer it with https://.
fn with_https(raw: &str) -> Option<String> {
    if raw.contains("://") {
        return None;
    }
    format!("https://{raw}")
        .parse::<ExternalUrl>()
        .ok()
        .map(|u| u.to_string())
}

/// The URL typed here follows the TLS choice: http:// for plain HTTP, https:// otherwise.
fn url_scheme_follows_tls(a: &mut Asking, p: &mut dyn Prompter) {
    let mode = a.given.answers.public_tls;
    let Some(url) = a.given.answers.external_url.as_mut() else {
        return;
    };
    let Some(mode) = mode else {
        return;
    };
    let want = if mode == PublicTlsMode::Off {
        Scheme::Http
    } else {
        Scheme::Https
    };
    if url.scheme != want && !a.url_from_flags {
        url.scheme = want;
        if url.port == Some(if want == Scheme::Http { 443 } else { 80 }) {
            url.port = None;
        }
        p.say(&format!("The external URL is now {url}."));
    }
}

fn certificate_is_usable(a: &Asking, candidate: &Layer) -> Result<(), String> {
    match (&candidate.public_cert, &candidate.external_url) {
        (Some(cert), Some(url)) => {
            match crate::public_cert::cert_problem(a.ctx.root, cert, &url.host) {
                Some(why) => Err(why),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn key_is_usable(a: &Asking, candidate: &Layer) -> Result<(), String> {
    match (&candidate.public_key, &candidate.public_cert) {
        (Some(key), Some(cert)) => match crate::public_cert::key_problem(a.ctx.root, key, cert) {
            Some(why) => Err(why),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Flags that only make sense with one TLS mode choose it.
fn tls_mode_follows_flags(answers: &mut Layer) {
    if answers.public_tls.is_none() && answers.acme_email.is_some() {
        answers.public_tls = Some(PublicTlsMode::Acme);
    }
    if answers.public_tls.is_none()
        && (answers.public_cert.is_some() || answers.public_key.is_some())
    {
        answers.public_tls = Some(PublicTlsMode::Custom);
    }
}

pub(super) fn ask_all(p: &mut dyn Prompter, given: Given, ctx: &Context) -> Result<Given, Error> {
    let saved = ctx
        .saved
        .map(|s| Layer::from_answers(&s.answers))
        .unwrap_or_default();
    let mut a = Asking {
        url_from_flags: given.answers.external_url.is_some(),
        given,
        offered: saved.combine(Layer::defaults().clone()),
        ctx,
        keep_prometheus_password: false,
        advanced: false,
    };
    tls_mode_follows_flags(&mut a.given.answers);
    for q in QUESTIONS {
        if (q.when)(&a) && !a.answered(q.target) {
            if !q.hint.is_empty() {
                p.say(q.hint);
            }
            a.ask(p, q)?;
        }
        (q.then)(&mut a, p);
    }
    Ok(a.given)
}

impl Asking<'_> {
    fn answered(&self, target: Target) -> bool {
        match target {
            Target::Answer(field) => self.given.answers.is_set(field),
            Target::Secret(kind) => self.given.secrets.get(kind).is_given(),
            Target::Gate(_) => false,
        }
    }

    fn ask(&mut self, p: &mut dyn Prompter, q: &Question) -> Result<(), Error> {
        match (q.target, q.kind) {
            (Target::Answer(field), Kind::Text | Kind::Optional) => self.ask_text(p, q, field),
            (Target::Answer(field), Kind::Choice(items)) => {
                let offer = (q.offer)(self, q.target);
                let labels: Vec<&str> = items.iter().map(|(_, label)| *label).collect();
                let default = items
                    .iter()
                    .position(|(value, _)| Some(*value) == offer.as_deref())
                    .unwrap_or(0);
                let chosen = p.select(q.prompt, &labels, default)?;
                self.set(field, items[chosen].0)
            }
            (target, Kind::YesNo) => {
                let default = (q.offer)(self, target).as_deref() == Some("on");
                let yes = p.confirm(q.prompt, default)?;
                match target {
                    Target::Answer(field) => self.set(field, if yes { "on" } else { "off" }),
                    Target::Gate(Gate::KeepPrometheusPassword) => {
                        self.keep_prometheus_password = yes;
                        Ok(())
                    }
                    Target::Gate(Gate::Advanced) => {
                        self.advanced = yes;
                        Ok(())
                    }
                    Target::Secret(_) => Err(Error::runtime("internal: a yes/no secret")),
                }
            }
            (Target::Secret(kind), Kind::Password) => self.ask_secret(p, q, kind),
            _ => Err(Error::runtime(format!(
                "internal: the question \"{}\" cannot be asked this way",
                q.prompt
            ))),
        }
    }

    /// Keeps a value the table itself names (a choice's value).
    fn set(&mut self, field: Field, value: &str) -> Result<(), Error> {
        self.given
            .answers
            .set(field, value)
            .map_err(|e| Error::runtime(format!("internal: {} {value:?}: {e}", field.flag())))
    }

    fn ask_text(&mut self, p: &mut dyn Prompter, q: &Question, field: Field) -> Result<(), Error> {
        let mut offer = (q.offer)(self, q.target);
        loop {
            let raw = p.input(q.prompt, offer.as_deref())?;
            let raw = raw.trim();
            if raw.is_empty() && q.kind == Kind::Optional {
                p.accepted(q.prompt, Some("none"));
                return Ok(());
            }
            let mut candidate = self.given.answers.clone();
            // A value that does not parse is never taken; one that parses
            // but fails the check may be fixed later (a certificate that is
            // still on its way), so the person may take it anyway.
            let problem = match candidate.set(field, raw) {
                Err(why) => Some((why, false)),
                Ok(()) => (q.check)(self, &candidate).err().map(|why| (why, true)),
            };
            let take = match problem {
                None => true,
                Some((why, checked)) => {
                    p.say(&format!("✗ {why}"));
                    if let Some(better) = (q.suggest)(raw) {
                        p.say(&format!("Press Enter to take {better}, or type another."));
                        offer = Some(better);
                    }
                    checked && p.confirm(TAKE_ANYWAY, false)?
                }
            };
            if take {
                p.accepted(q.prompt, candidate.text(field).as_deref());
                self.given.answers = candidate;
                return Ok(());
            }
        }
    }

    fn ask_secret(
        &mut self,
        p: &mut dyn Prompter,
        q: &Question,
        kind: SecretKind,
    ) -> Result<(), Error> {
        loop {
            let raw = p.password(q.prompt)?;
            match kind.check(raw) {
                Ok(secret) => {
                    p.accepted(q.prompt, None);
                    self.given.secrets.get_mut(kind).value = Some(secret.expose().to_string());
                    return Ok(());
                }
                Err(why) => p.say(&format!("✗ the password {why}")),
            }
        }
    }
}

#[cfg(test)]
mod question_tests;
