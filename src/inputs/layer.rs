//! One layer of answers: every answer as an optional value. The flags (with
//! their `CELLSCTL_*` variables, through clap, and what the wizard adds to
//! them), the saved state and the built-in defaults are each a `Layer`;
//! `Combine` merges two of them field by field, the higher one winning.
//!
//! The table at the bottom is the one place where each answer's flag, value
//! name and default are written: `--help`, the wizard's offers, the missing
//! answers' names and the merge all read it.

use crate::answers::{
    AbsPath, Answers, BcryptCost, BcryptHash, CaddyVersion, CertDays, DbHost, DbIdent, Email,
    ExternalUrl, ListenAddr, LoopbackAddr, Port, PublicTls, PublicTlsMode, SystemUser, Toggle,
    UpstreamTls, UrlPath, Username, TARGETS_FILE_IN_WORKING_DIR,
};
use crate::cli::AnswerArgs;
use crate::cluster::{EtcdUrl, NatsUrl, Nodes, RedisUrl, S3AccessKey, S3Endpoint, VaultUrl};
use std::sync::LazyLock;

/// Merging two layers: `self` wins where it has a value.
pub trait Combine {
    fn combine(self, lower: Self) -> Self;
}

impl<T> Combine for Option<T> {
    fn combine(self, lower: Self) -> Self {
        self.or(lower)
    }
}

/// What an answer falls back to when no layer gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// No default: the answer is required, or optional and then absent.
    None,
    /// This value, parsed as the flag's would be.
    Value(&'static str),
    /// This path below the Cells working dir.
    InWorkingDir(&'static str),
    /// Worked out when cellsctl runs; the text says how.
    Found(&'static str),
}

impl Fallback {
    /// The value itself, when it is one.
    pub fn value(self) -> Option<&'static str> {
        match self {
            Fallback::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The text `--help` shows as `[default: …]`.
    pub fn help_text(self) -> Option<String> {
        match self {
            Fallback::None => None,
            Fallback::Value(v) | Fallback::Found(v) => Some(v.to_string()),
            Fallback::InWorkingDir(rest) => Some(format!("<cells working dir>/{rest}")),
        }
    }
}

macro_rules! answer_table {
    ($( $variant:ident $field:ident : $ty:ty = $fallback:expr, $flag:literal $value_name:literal; )*) => {
        /// Every answer, each optional: one layer of the merge.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Layer {
            $( pub $field: Option<$ty>, )*
        }

        /// The answers by name, for the wizard's questions and the help text.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Field {
            $( $variant, )*
        }

        impl Field {
            pub const ALL: &'static [Field] = &[$( Field::$variant, )*];

            /// The flag that gives this answer, e.g. `--bind`.
            pub fn flag(self) -> &'static str {
                match self { $( Field::$variant => $flag, )* }
            }

            /// The flag with its value name, e.g. `--bind IP:PORT`.
            pub fn usage(self) -> String {
                match self { $( Field::$variant => format!("{} {}", $flag, $value_name).trim_end().to_string(), )* }
            }

            /// The clap id of the flag (its field in `AnswerArgs`).
            pub fn arg_id(self) -> &'static str {
                match self { $( Field::$variant => stringify!($field), )* }
            }

            pub fn fallback(self) -> Fallback {
                match self { $( Field::$variant => $fallback, )* }
            }
        }

        impl Combine for Layer {
            fn combine(self, lower: Layer) -> Layer {
                Layer { $( $field: self.$field.combine(lower.$field), )* }
            }
        }

        impl Layer {
            /// The answer as its flag would spell it.
            pub fn text(&self, field: Field) -> Option<String> {
                match field { $( Field::$variant => self.$field.as_ref().map(|v| v.to_string()), )* }
            }

            pub fn is_set(&self, field: Field) -> bool {
                match field { $( Field::$variant => self.$field.is_some(), )* }
            }

            /// Parses `raw` as the flag would, and keeps it.
            pub fn set(&mut self, field: Field, raw: &str) -> Result<(), String> {
                match field {
                    $( Field::$variant => self.$field = Some(raw.parse::<$ty>().map_err(|e| e.to_string())?), )*
                }
                Ok(())
            }
        }
    };
}

answer_table! {
    ExternalUrl external_url: ExternalUrl = Fallback::None, "--external-url" "URL";
    Bind bind: ListenAddr = Fallback::Value("127.0.0.1:8080"), "--bind" "HOST:PORT";
    PublicTls public_tls: PublicTlsMode = Fallback::Value("acme"), "--public-tls" "MODE";
    AcmeEmail acme_email: Email = Fallback::None, "--acme-email" "EMAIL";
    PublicCert public_cert: AbsPath = Fallback::None, "--public-cert" "PATH";
    PublicKey public_key: AbsPath = Fallback::None, "--public-key" "PATH";
    UpstreamTls upstream_tls: UpstreamTls = Fallback::Value("ca"), "--upstream-tls" "MODE";
    CertDays cert_days: CertDays = Fallback::Value("825"), "--cert-days" "N";
    Prometheus prometheus: Toggle = Fallback::Value("off"), "--prometheus" "";
    PrometheusListen prometheus_listen: LoopbackAddr = Fallback::Value("127.0.0.1:9090"), "--prometheus-listen" "HOST:PORT";
    PrometheusPath prometheus_path: UrlPath = Fallback::Value("/prometheus"), "--prometheus-path" "PATH";
    PrometheusUser prometheus_user: Username = Fallback::None, "--prometheus-user" "NAME";
    PrometheusPasswordHash prometheus_password_hash: BcryptHash = Fallback::None, "--prometheus-password-hash" "BCRYPT";
    BcryptCost bcrypt_cost: BcryptCost = Fallback::Value("14"), "--bcrypt-cost" "N";
    PrometheusTargetsFile prometheus_targets_file: AbsPath = Fallback::InWorkingDir(TARGETS_FILE_IN_WORKING_DIR), "--prometheus-targets-file" "PATH";
    AdminLogin admin_login: Username = Fallback::Value("admin"), "--admin-login" "NAME";
    DbHost db_host: DbHost = Fallback::Value("127.0.0.1"), "--db-host" "HOST";
    DbPort db_port: Port = Fallback::Value("3306"), "--db-port" "PORT";
    DbName db_name: DbIdent = Fallback::Value("cells"), "--db-name" "NAME";
    DbUser db_user: DbIdent = Fallback::Value("pydio"), "--db-user" "NAME";
    CellsBinary cells_binary: AbsPath = Fallback::Value("/opt/pydio/bin/cells"), "--cells-binary" "PATH";
    CellsUser cells_user: SystemUser = Fallback::Value("pydio"), "--cells-user" "NAME";
    CellsWorkingDir cells_working_dir: AbsPath = Fallback::Value("/var/cells"), "--cells-working-dir" "PATH";
    CellsctlBinary cellsctl_binary: AbsPath = Fallback::Value("/usr/bin/cellsctl"), "--cellsctl-binary" "PATH";
    CaddyVersion caddy_version: CaddyVersion = Fallback::Found("detected from `caddy version` on PATH"), "--caddy-version" "X.Y.Z";
    Node node: Nodes = Fallback::None, "--node" "NAME=IP:PORT";
    EtcdUrl etcd_url: EtcdUrl = Fallback::None, "--etcd-url" "URL";
    NatsUrl nats_url: NatsUrl = Fallback::None, "--nats-url" "URL";
    RedisUrl redis_url: RedisUrl = Fallback::None, "--redis-url" "URL";
    VaultUrl vault_url: VaultUrl = Fallback::None, "--vault-url" "URL";
    S3Endpoint s3_endpoint: S3Endpoint = Fallback::None, "--s3-endpoint" "URL";
    S3AccessKey s3_access_key: S3AccessKey = Fallback::None, "--s3-access-key" "KEY";
}

static DEFAULTS: LazyLock<Result<Layer, String>> = LazyLock::new(|| {
    let mut layer = Layer::default();
    for field in Field::ALL {
        if let Fallback::Value(text) = field.fallback() {
            layer
                .set(*field, text)
                .map_err(|e| format!("the default {text:?} of {}: {e}", field.flag()))?;
        }
    }
    Ok(layer)
});

impl Layer {
    /// The built-in defaults: the lowest layer.
    pub fn defaults() -> &'static Layer {
        match &*DEFAULTS {
            Ok(layer) => layer,
            // The table is compiled in; a default that does not parse fails
            // the unit test `every_default_parses` long before a release.
            Err(e) => panic!("built-in defaults: {e}"),
        }
    }

    /// The answer flags given (clap already put each flag over its variable).
    pub fn from_flags(a: &AnswerArgs) -> Layer {
        Layer {
            external_url: a.external_url.clone(),
            bind: a.bind,
            public_tls: a.public_tls,
            acme_email: a.acme_email.clone(),
            public_cert: a.public_cert.clone(),
            public_key: a.public_key.clone(),
            upstream_tls: a.upstream_tls,
            cert_days: a.cert_days,
            prometheus: match (a.prometheus, a.no_prometheus) {
                (true, _) => Some(Toggle::On),
                (_, true) => Some(Toggle::Off),
                _ => None,
            },
            prometheus_listen: a.prometheus_listen,
            prometheus_path: a.prometheus_path.clone(),
            prometheus_user: a.prometheus_user.clone(),
            prometheus_password_hash: a.prometheus_password_hash.clone(),
            bcrypt_cost: a.bcrypt_cost,
            prometheus_targets_file: a.prometheus_targets_file.clone(),
            admin_login: a.admin_login.clone(),
            db_host: a.db_host.clone(),
            db_port: a.db_port,
            db_name: a.db_name.clone(),
            db_user: a.db_user.clone(),
            cells_binary: a.cells_binary.clone(),
            cells_user: a.cells_user.clone(),
            cells_working_dir: a.cells_working_dir.clone(),
            cellsctl_binary: a.cellsctl_binary.clone(),
            caddy_version: a.caddy_version,
            node: (!a.node.is_empty()).then(|| Nodes(a.node.clone())),
            etcd_url: a.etcd_url.clone(),
            nats_url: a.nats_url.clone(),
            redis_url: a.redis_url.clone(),
            vault_url: a.vault_url.clone(),
            s3_endpoint: a.s3_endpoint.clone(),
            s3_access_key: a.s3_access_key.clone(),
        }
    }

    /// The saved answers. The Caddy version is left out: the saved Caddy
    /// target (pinned or detected) is resolved on its own.
    pub fn from_answers(a: &Answers) -> Layer {
        let (acme_email, public_cert, public_key) = match &a.public_tls {
            PublicTls::Acme { email } => (email.clone(), None, None),
            PublicTls::Custom { cert, key } => (None, Some(cert.clone()), Some(key.clone())),
            PublicTls::Internal | PublicTls::Off => (None, None, None),
        };
        let p = a.prometheus.as_ref();
        let c = a.cluster.as_ref();
        Layer {
            external_url: Some(a.external_url.clone()),
            bind: Some(a.bind),
            public_tls: Some(a.public_tls.mode()),
            acme_email,
            public_cert,
            public_key,
            upstream_tls: Some(a.upstream_tls),
            cert_days: Some(a.cert_days),
            prometheus: Some(if p.is_some() { Toggle::On } else { Toggle::Off }),
            prometheus_listen: p.map(|p| p.listen),
            prometheus_path: p.map(|p| p.path.clone()),
            prometheus_user: p.map(|p| p.user.clone()),
            prometheus_password_hash: p.map(|p| p.password_hash.clone()),
            bcrypt_cost: p.map(|p| p.bcrypt_cost),
            prometheus_targets_file: p.and_then(|p| p.targets_file.clone()),
            admin_login: Some(a.admin_login.clone()),
            db_host: Some(a.database.host.clone()),
            db_port: Some(a.database.port),
            db_name: Some(a.database.name.clone()),
            db_user: Some(a.database.user.clone()),
            cells_binary: Some(a.cells.binary.clone()),
            cells_user: Some(a.cells.user.clone()),
            cells_working_dir: Some(a.cells.working_dir.clone()),
            cellsctl_binary: Some(a.cellsctl_binary.clone()),
            caddy_version: None,
            node: c.map(|c| Nodes(c.nodes.clone())),
            etcd_url: c.map(|c| c.etcd.clone()),
            nats_url: c.map(|c| c.nats.clone()),
            redis_url: c.map(|c| c.redis.clone()),
            vault_url: c.map(|c| c.vault.clone()),
            s3_endpoint: c.map(|c| c.s3_endpoint.clone()),
            s3_access_key: c.map(|c| c.s3_access_key.clone()),
        }
    }
}

#[cfg(test)]
mod answer_table_tests {
    use super::*;

    #[test]
    fn every_default_parses() {
        assert!(DEFAULTS.is_ok(), "{:?}", DEFAULTS.as_ref().err());
        for field in Field::ALL {
            let has_value = matches!(field.fallback(), Fallback::Value(_));
            assert_eq!(Layer::defaults().is_set(*field), has_value, "{field:?}");
        }
    }

    #[test]
    fn the_higher_layer_wins_field_by_field() {
        let mut flags = Layer::default();
        flags.set(Field::Bind, "0.0.0.0:8080").unwrap();
        let mut saved = Layer::default();
        saved.set(Field::Bind, "127.0.0.1:9000").unwrap();
        saved.set(Field::DbName, "files").unwrap();
        let merged = flags.combine(saved).combine(Layer::defaults().clone());
        assert_eq!(merged.text(Field::Bind).as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(merged.text(Field::DbName).as_deref(), Some("files"));
        assert_eq!(merged.text(Field::DbUser).as_deref(), Some("pydio"));
        assert_eq!(merged.text(Field::ExternalUrl), None);
    }

    /// `--help` shows each default from the table, and the flag definitions
    /// hold none of their own: the table is the one place defaults are written.
    #[test]
    fn help_defaults_come_from_the_table() {
        let raw = <crate::cli::Cli as clap::CommandFactory>::command();
        let shown = crate::cli::command();
        for sub in ["init", "regenerate"] {
            let raw = raw.find_subcommand(sub).unwrap();
            let shown = shown.find_subcommand(sub).unwrap();
            for field in Field::ALL {
                let arg = |cmd: &clap::Command| {
                    cmd.get_arguments()
                        .find(|a| a.get_id() == field.arg_id())
                        .unwrap_or_else(|| panic!("{sub}: no flag for {field:?}"))
                        .clone()
                };
                let (raw_arg, shown_arg) = (arg(raw), arg(shown));
                assert_eq!(
                    Some(field.flag().trim_start_matches("--")),
                    raw_arg.get_long()
                );
                if raw_arg.get_action().takes_values() {
                    let value_name = raw_arg.get_value_names().unwrap().join(" ");
                    assert_eq!(field.usage(), format!("{} {value_name}", field.flag()));
                }
                let raw_help = raw_arg.get_help().unwrap().to_string();
                assert!(!raw_help.contains("[default:"), "{raw_help}");
                let help = shown_arg.get_help().unwrap().to_string();
                match field.fallback().help_text() {
                    Some(text) => assert!(help.ends_with(&format!(" [default: {text}]")), "{help}"),
                    None => assert_eq!(help, raw_help),
                }
            }
        }
    }
}
