//! Property tests: any string is either rejected by the newtype parsers or
//! renders into Caddyfile, YAML and unit text that reads back as the same
//! value, with the same structure as a plain value gives.

use crate::answers::*;
use crate::render::{plan, InstallSecrets, RenderInputs};
use crate::secrets::Secret;
use proptest::prelude::*;
use std::str::FromStr;

/// Strings built mostly from characters that mean something to one of the formats.
fn hostile() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '{', '}', '$', '#', '"', '\'', '`', '\\', ';', '<', '>', '%', ':', '@', '/', '.', '-', '_',
        '[', ']', ' ', '\n', '\r', '\t', '\0', '\u{202e}', '\u{435}', 'a', 'z', 'A', '0', '9', '*',
        '?', '&', '=', '+', '~', '|',
    ]);
    prop::collection::vec(prop_oneof![3 => special, 1 => any::<char>()], 0..48)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Strings that often pass the parsers, with the odd dangerous character.
fn plausible() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'b', 'x', 'Z', '0', '7', '.', '-', '_', '/', ':', '/', '/', 'h', 't', 'p', 's', '{',
        '$', ' ', '#',
    ]);
    prop_oneof![
        prop::collection::vec(chars.clone(), 1..24).prop_map(|c| c.into_iter().collect::<String>()),
        prop::collection::vec(chars, 1..16)
            .prop_map(|c| format!("https://{}.example", c.into_iter().collect::<String>())),
        prop::collection::vec(
            prop::sample::select(vec!['a', 'b', '0', '.', '-', '{', '$']),
            1..16
        )
        .prop_map(|c| format!("/{}", c.into_iter().collect::<String>())),
    ]
}

fn label() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', 'x', 'z', '0', '7', '-']),
        1..8,
    )
    .prop_map(|c| c.into_iter().collect())
}

/// `https://label.label[:port]`, sometimes with a hostile character spliced in.
fn url_like() -> impl Strategy<Value = String> {
    let hostile = prop::sample::select(vec![
        "", "", "", "", "{", "}", " ", "\n", "#", "{$X}", "/x", "?q", "@", "\"", "`", "\u{202e}",
    ]);
    (
        prop::collection::vec(label(), 1..4),
        prop::option::of(1u16..65535),
        hostile,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(labels, port, bad, at)| {
            let mut url = format!("https://{}", labels.join("."));
            if let Some(p) = port {
                url.push_str(&format!(":{p}"));
            }
            let i = at.index(url.len() - 8) + 8;
            url.insert_str(i, bad);
            url
        })
}

/// Login names, sometimes with a hostile character spliced in.
fn user_like() -> impl Strategy<Value = String> {
    let hostile = prop::sample::select(vec!["", "", "", ":", " ", "{", "}", "\n", "$", "#", "é"]);
    (label(), hostile, any::<prop::sample::Index>()).prop_map(|(mut user, bad, at)| {
        let i = at.index(user.len() + 1);
        user.insert_str(i, bad);
        user
    })
}

fn base_answers() -> Answers {
    Answers {
        external_url: parsed("https://cells.example.com"),
        bind: parsed("0.0.0.0:8080"),
        public_tls: PublicTls::Acme {
            email: Some(parsed("tls@example.com")),
        },
        upstream_tls: UpstreamTls::SkipVerify,
        cert_days: parsed("825"),
        prometheus: Some(Prometheus {
            listen: parsed("127.0.0.1:9090"),
            path: parsed("/prometheus"),
            user: parsed("sysadminUser"),
            password_hash: parsed("$2b$04$cbs/Xvhk5eAseo8me.YBX.dDIQV2IMHEcw4ula5VFqKpenH3U5m5m"),
            bcrypt_cost: BcryptCost(4),
            targets_file: None,
        }),
        admin_login: parsed("admin"),
        database: Database {
            host: parsed("127.0.0.1"),
            port: parsed("3306"),
            name: parsed("cells"),
            user: parsed("pydio"),
        },
        cells: CellsRuntime {
            binary: parsed("/opt/pydio/bin/cells"),
            user: parsed("pydio"),
            working_dir: parsed("/var/cells"),
        },
        caddy_version: CaddyVersion::new(2, 11, 7),
        cellsctl_binary: parsed("/usr/bin/cellsctl"),
        cluster: None,
    }
}

fn secrets() -> InstallSecrets {
    InstallSecrets {
        admin_password: Secret::new("admin-pw".into()).expect("valid"),
        db_password: Secret::new("db-pw".into()).expect("valid"),
    }
}

/// The plan for these answers, with install.yml and without key material.
fn plan_for(a: &Answers, s: &InstallSecrets) -> crate::plan::Plan {
    plan(
        a,
        &RenderInputs {
            install_secrets: Some(s),
            pki: None,
            cluster_pki: None,
        },
    )
    .expect("renders")
}

/// Every rendered text file, by path.
fn render(a: &Answers, s: &InstallSecrets) -> Vec<(String, String)> {
    plan_for(a, s)
        .files
        .into_iter()
        .map(|f| (f.path, String::from_utf8(f.contents).expect("utf-8")))
        .collect()
}

fn files_visibility(a: &Answers, s: &InstallSecrets) -> crate::plan::Visibility {
    plan_for(a, s)
        .files
        .into_iter()
        .find(|f| f.path.ends_with("install.yml"))
        .map(|f| f.visibility)
        .expect("install.yml")
}

/// Line counts and the words of each line that carry no value: the structure.
fn structure(files: &[(String, String)]) -> Vec<(String, usize, Vec<usize>)> {
    files
        .iter()
        .map(|(p, t)| {
            (
                p.clone(),
                t.lines().count(),
                t.lines().map(|l| l.split_whitespace().count()).collect(),
            )
        })
        .collect()
}

/// Characters that would let a value escape its place in one of the formats.
fn is_inert(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "{}\"'`\\#;%<>|*?&=".contains(c))
}

/// Parsing a string that a newtype accepts: its text form is inert and parses back to itself.
fn round_trips<T>(raw: &str) -> Option<T>
where
    T: FromStr<Err = String> + std::fmt::Display + PartialEq + std::fmt::Debug,
{
    let v: T = raw.parse().ok()?;
    let shown = v.to_string();
    assert!(is_inert(&shown), "{raw:?} accepted as {shown:?}");
    assert_eq!(
        shown.parse::<T>().as_ref(),
        Ok(&v),
        "{raw:?} does not round-trip"
    );
    Some(v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn newtypes_accept_only_inert_text(raw in hostile()) {
        round_trips::<ExternalUrl>(&raw);
        round_trips::<ListenAddr>(&raw);
        round_trips::<Email>(&raw);
        round_trips::<Username>(&raw);
        round_trips::<SystemUser>(&raw);
        round_trips::<AbsPath>(&raw);
        round_trips::<UrlPath>(&raw);
        round_trips::<DbHost>(&raw);
        round_trips::<DbIdent>(&raw);
        round_trips::<Port>(&raw);
        round_trips::<BcryptHash>(&raw);
        round_trips::<CaddyVersion>(&raw);
    }

    #[test]
    fn accepted_values_keep_every_file_structure(user in plausible(), path in plausible(), dir in plausible(), url in plausible()) {
        let base = base_answers();
        let baseline = structure(&render(&base, &secrets()));
        let mut a = base.clone();
        if let Ok(u) = user.parse::<Username>() { a.prometheus.as_mut().expect("on").user = u; }
        if let Ok(p) = path.parse::<UrlPath>() { a.prometheus.as_mut().expect("on").path = p; }
        if let Ok(d) = dir.parse::<AbsPath>() { a.cells.working_dir = d; }
        if let Ok(u) = url.parse::<ExternalUrl>() {
            if u.scheme == Scheme::Https { a.external_url = u; }
        }
        prop_assert_eq!(structure(&render(&a, &secrets())), baseline);
    }

    /// URL-shaped strings with a hostile character now and then: the accepted
    /// ones read back from every file exactly as parsed.
    #[test]
    fn accepted_urls_and_users_read_back_from_every_file(url in url_like(), user in user_like()) {
        let parsed_url = url.parse::<ExternalUrl>();
        let parsed_user = user.parse::<Username>();
        prop_assume!(parsed_url.is_ok() || parsed_user.is_ok());
        let mut a = base_answers();
        if let Ok(u) = &parsed_url { a.external_url = u.clone(); }
        if let Ok(u) = &parsed_user { a.prometheus.as_mut().expect("on").user = u.clone(); }
        let files = render(&a, &secrets());
        let file = |name: &str| files.iter().find(|(p, _)| p.ends_with(name)).map(|(_, t)| t.clone()).expect("file");
        let caddyfile = file("Caddyfile");
        let site = format!("{} {{", a.external_url);
        prop_assert!(caddyfile.lines().any(|l| l == site), "site address line missing");
        prop_assert_eq!(caddyfile.lines().filter(|l| l.ends_with(" {") && !l.starts_with('\t')).count(), 1, "exactly one site");
        let unit = file("cells.service");
        let env_line = format!("Environment=CELLS_SITE_EXTERNAL={}", a.external_url);
        prop_assert!(unit.lines().any(|l| l == env_line));
        let install: crate::render::cells_install::InstallFile = serde_yaml::from_str(&file("install.yml")).expect("parses");
        let back: Result<ExternalUrl, String> = install.proxyconfig.reverseproxyurl.parse();
        prop_assert_eq!(back, Ok(a.external_url.clone()));
        let p = a.prometheus.as_ref().expect("on");
        let auth = format!("{} {}", p.user, p.password_hash);
        prop_assert!(caddyfile.lines().any(|l| l.trim() == auth), "basic auth line missing");
        let user_back: Result<Username, String> = p.user.to_string().parse();
        prop_assert_eq!(user_back, Ok(p.user.clone()));
    }

    #[test]
    fn secrets_round_trip_through_install_yml(raw in hostile()) {
        let Ok(secret) = Secret::new(raw.clone()) else { return Ok(()) };
        let s = InstallSecrets { admin_password: secret.clone(), db_password: secret };
        let files = render(&base_answers(), &s);
        let (_, text) = files.iter().find(|(p, _)| p.ends_with("install.yml")).expect("install.yml");
        let substituted = text.contains("{$");
        prop_assert!(!substituted, "install.yml contains a span Cells would substitute");
        let parsed: crate::render::cells_install::InstallFile = serde_yaml::from_str(text).expect("parses");
        prop_assert_eq!(&parsed.frontendpassword, &raw);
        prop_assert_eq!(&parsed.dbtcppassword, &raw);
        // And what a diff shows of it hides the secret lines entirely.
        let visibility = files_visibility(&base_answers(), &s);
        let masked = crate::apply::shown(text, &visibility);
        prop_assert!(masked.lines().any(|l| l == "frontendpassword: <redacted>"));
        prop_assert!(masked.lines().any(|l| l == "dbtcppassword: <redacted>"));
        if raw.len() >= 4 {
            prop_assert!(!masked.contains(raw.as_str()), "the password is visible after masking");
        }
    }

    #[test]
    fn answers_round_trip_through_the_state_yaml(user in hostile(), url in hostile()) {
        let mut a = base_answers();
        if let Ok(u) = user.parse::<Username>() { a.admin_login = u; }
        if let Ok(u) = url.parse::<ExternalUrl>() { a.external_url = u; }
        let text = serde_yaml::to_string(&a).expect("serializes");
        let back: Answers = serde_yaml::from_str(&text).expect("parses");
        prop_assert_eq!(back, a);
    }
}
