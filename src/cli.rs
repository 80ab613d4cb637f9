//! Command-line definitions (clap derive). Raw values only: answer flags
//! parse straight into the validated newtypes, and `inputs` layers them
//! over the saved state and the defaults. No flag here has a default of its
//! own: `command()` adds each one's `[default: …]` from the answer table.

use crate::answers::{
    AbsPath, BcryptCost, BcryptHash, CaddyVersion, CertDays, DbHost, DbIdent, Email, ExternalUrl,
    ListenAddr, LoopbackAddr, Port, PublicTlsMode, SystemUser, UpstreamTls, UrlPath, Username,
};
use crate::cluster::{EtcdUrl, NatsUrl, Node, RedisUrl, S3AccessKey, S3Endpoint, VaultUrl};
use crate::inputs::Field;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "cellsctl",
    version,
    about = "Render a correct, secure Pydio Cells deployment behind Caddy v2, and keep it correct",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const INIT_EXAMPLES: &str = "\
Examples:
  # Answer questions on a terminal (flags given here are not asked):
  cellsctl init

  # Pydio's tutorial scenario, unattended (Ansible, cloud-init):
  CELLSCTL_ADMIN_PASSWORD=... CELLSCTL_DB_PASSWORD=... CELLSCTL_PROMETHEUS_PASSWORD=... \\
    cellsctl init --non-interactive --external-url https://cells.example.com \\
      --bind 0.0.0.0:8080 --acme-email tls@example.com --prometheus --prometheus-user sysadminUser

  # Render into a directory without touching the system:
  cellsctl init --root ./demo-root --caddy-version 2.11.7 ...";

const REGENERATE_EXAMPLES: &str = "\
Examples:
  # Move to a new public URL (Caddyfile, unit, install.yml, Prometheus, certificate):
  cellsctl regenerate --external-url https://files.example.org --dry-run
  cellsctl regenerate --external-url https://files.example.org --restart-services

  # Nothing changed? Nothing is written (safe in provisioning loops and timers):
  cellsctl regenerate --non-interactive";

const HASH_EXAMPLES: &str = "\
Examples:
  echo 'my password' | cellsctl hash-password
  cellsctl hash-password --cost 12 < password.txt";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// First setup: validate the answers, render every file, write them and save the state.
    ///
    /// On a terminal, asks for every answer no flag, env var or saved state gave.
    /// On a root that already holds a state, behaves like `regenerate` with the given flags.
    #[command(after_help = INIT_EXAMPLES)]
    Init(GenerateArgs),
    /// Re-render from the saved state and the answer flags given; write only what changed.
    #[command(after_help = REGENERATE_EXAMPLES)]
    Regenerate(GenerateArgs),
    /// Read a password from stdin (one line) and print a bcrypt hash Caddy accepts.
    #[command(after_help = HASH_EXAMPLES)]
    HashPassword(HashPasswordArgs),
    /// Offline check: files agree with the state, certificates, permissions, validators.
    #[command(
        after_help = "Exit status: 0 all passed (warnings allowed), 1 a check failed, 3 files differ from what cellsctl wrote.\n\nExamples:\n  cellsctl check\n  cellsctl check --root ./demo-root --json"
    )]
    Check(CheckArgs),
    /// Live checks against the running deployment: DNS, certificates, redirect, Cells through the proxy, gRPC, websockets, Prometheus auth.
    #[command(
        after_help = "Exit status: 0 when every check passes, 1 otherwise.\n\nExamples:\n  cellsctl verify\n  # Before DNS is live, dialing the server directly:\n  cellsctl verify --connect 203.0.113.7:443\n  # A site on Caddy's internal CA, with the Prometheus login:\n  cellsctl verify --ca /var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt --prometheus-password-file /root/prom.txt"
    )]
    Verify(VerifyArgs),
    /// Take over a deployment made by hand (Pydio's Caddy tutorial): read it, then render and save it as cellsctl's.
    ///
    /// Reads the Caddyfile through the installed caddy (`caddy adapt`), cells.service and Prometheus' flags;
    /// answer flags win over what was read. Refuses (exit 3) a Caddyfile with parts cellsctl would drop, unless --force.
    #[command(
        after_help = "Examples:\n  cellsctl adopt --dry-run     # what was read, from where, and what would change\n  cellsctl adopt               # then: cellsctl regenerate, as on any managed server"
    )]
    Adopt(GenerateArgs),
    /// Cluster mode: write a node's files to stdout as a tar archive, to unpack on that node.
    #[command(
        after_help = "Regular files only, paths relative to /, owners by name; the same bytes for the same state.\nSecrets (Vault's token; in the first node's bundle the install file) are read again from the files recorded in the state, or from the same flags and env as init.\n\nExamples:\n  cellsctl node-bundle node2 | ssh root@node2 tar -xpf - -C /\n  cellsctl node-bundle node1 | tar -tvf -"
    )]
    NodeBundle(NodeBundleArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  cellsctl completions bash > /etc/bash_completion.d/cellsctl\n  cellsctl completions zsh > \"${fpath[1]}/_cellsctl\""
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(
        after_help = "Examples:\n  cellsctl man > /usr/local/share/man/man1/cellsctl.1\n  cellsctl man | man -l -"
    )]
    Man,
}

#[derive(Args, Debug)]
pub struct HashPasswordArgs {
    /// bcrypt cost, 4 to 20.
    #[arg(long, value_name = "N")]
    pub cost: Option<BcryptCost>,
}

#[derive(Args, Debug)]
pub struct NodeBundleArgs {
    /// The node, as named with --node.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The root holding the state (the proxy host's deployment).
    #[arg(long, value_name = "DIR", default_value = "/", env = "CELLSCTL_ROOT")]
    pub root: PathBuf,
    /// File whose first line is Vault's token (or env CELLSCTL_VAULT_TOKEN).
    #[arg(long, value_name = "PATH")]
    pub vault_token_file: Option<PathBuf>,
    /// File holding the MongoDB DSN (or env CELLSCTL_MONGODB_DSN).
    #[arg(long, value_name = "PATH")]
    pub mongodb_dsn_file: Option<PathBuf>,
    /// File whose first line is the S3 secret key (or env CELLSCTL_S3_SECRET_KEY).
    #[arg(long, value_name = "PATH")]
    pub s3_secret_key_file: Option<PathBuf>,
    /// File whose first line is the Cells admin password (or env CELLSCTL_ADMIN_PASSWORD).
    #[arg(long, value_name = "PATH")]
    pub admin_password_file: Option<PathBuf>,
    /// File whose first line is the database password (or env CELLSCTL_DB_PASSWORD).
    #[arg(long, value_name = "PATH")]
    pub db_password_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The root the deployment was written below.
    #[arg(long, value_name = "DIR", default_value = "/", env = "CELLSCTL_ROOT")]
    pub root: PathBuf,
    /// Print the findings as JSON.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The root holding the state (the deployment to check).
    #[arg(long, value_name = "DIR", default_value = "/", env = "CELLSCTL_ROOT")]
    pub root: PathBuf,
    /// Check this URL instead of the one in the state.
    #[arg(long, value_name = "URL")]
    pub url: Option<ExternalUrl>,
    /// Dial this address for HTTPS instead of resolving the host (like curl --resolve).
    #[arg(long, value_name = "IP:PORT")]
    pub connect: Option<std::net::SocketAddr>,
    /// Dial this address for the plain-HTTP redirect check [default: the --connect IP, port 80].
    #[arg(long, value_name = "IP:PORT")]
    pub connect_http: Option<std::net::SocketAddr>,
    /// Also trust this root certificate (PEM), e.g. Caddy's internal CA.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The Prometheus password, to check that the login works too (or env CELLSCTL_PROMETHEUS_PASSWORD).
    #[arg(long, value_name = "PATH")]
    pub prometheus_password_file: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub answers: AnswerArgs,
}

#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Write every path beneath this directory.
    #[arg(long, value_name = "DIR", default_value = "/", env = "CELLSCTL_ROOT")]
    pub root: PathBuf,
    /// Print the plan and unified diffs (secrets redacted); write nothing.
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,
    /// Print the plan or result as JSON on stdout (schema in the README).
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// Print nothing but errors (and --json output); no spinner.
    #[arg(long, short, help_heading = "Output", conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say what each step does, on stderr.
    #[arg(long, short, help_heading = "Output")]
    pub verbose: bool,
    /// After writing, run the needed systemctl steps in order and report each.
    #[arg(long, conflicts_with = "dry_run")]
    pub restart_services: bool,
    /// On this server (as root, --root /): also create the Cells user and database, run `cells configure`, start and enable the services, and verify; each step skipped when already done.
    #[arg(long)]
    pub provision: bool,
    /// Overwrite hand-edited or unknown files, keeping a backup FILE.cellsctl-bak.TIMESTAMP.
    #[arg(long)]
    pub force: bool,
    /// Re-create managed files that were deleted by hand (install.yml excepted).
    #[arg(long)]
    pub restore: bool,
    /// Never prompt (also the case when stdin is not a terminal); fail listing every missing answer.
    #[arg(long, env = "CELLSCTL_NON_INTERACTIVE")]
    pub non_interactive: bool,
}

/// Every answer. None of them uses a clap default: an absent flag falls
/// back to the saved state, then to the default named in its help.
#[derive(Args, Debug, Default, Clone)]
pub struct AnswerArgs {
    /// Public URL of Cells: https://HOST or https://HOST:PORT (http:// only with --public-tls off).
    #[arg(
        long,
        help_heading = "Site",
        value_name = "URL",
        env = "CELLSCTL_EXTERNAL_URL"
    )]
    pub external_url: Option<ExternalUrl>,
    /// Where Cells listens, IP:PORT.
    #[arg(
        long,
        help_heading = "Site",
        value_name = "HOST:PORT",
        env = "CELLSCTL_BIND"
    )]
    pub bind: Option<ListenAddr>,
    /// How Caddy gets the public certificate.
    #[arg(
        long,
        help_heading = "TLS",
        value_name = "MODE",
        env = "CELLSCTL_PUBLIC_TLS"
    )]
    pub public_tls: Option<PublicTlsMode>,
    /// ACME account e-mail (with --public-tls acme).
    #[arg(
        long,
        help_heading = "TLS",
        value_name = "EMAIL",
        env = "CELLSCTL_ACME_EMAIL"
    )]
    pub acme_email: Option<Email>,
    /// Public certificate file (with --public-tls custom).
    #[arg(
        long,
        help_heading = "TLS",
        value_name = "PATH",
        env = "CELLSCTL_PUBLIC_CERT"
    )]
    pub public_cert: Option<AbsPath>,
    /// Public key file (with --public-tls custom).
    #[arg(
        long,
        help_heading = "TLS",
        value_name = "PATH",
        env = "CELLSCTL_PUBLIC_KEY"
    )]
    pub public_key: Option<AbsPath>,
    /// TLS between Caddy and Cells: ca = cellsctl's private CA, verified; skip-verify = Cells' self-signed cert, unverified.
    #[arg(
        long,
        help_heading = "TLS",
        value_name = "MODE",
        env = "CELLSCTL_UPSTREAM_TLS"
    )]
    pub upstream_tls: Option<UpstreamTls>,
    /// Lifetime of the Cells certificate in days, 31-3650.
    #[arg(
        long,
        help_heading = "TLS",
        value_name = "N",
        env = "CELLSCTL_CERT_DAYS"
    )]
    pub cert_days: Option<CertDays>,
    /// Serve Prometheus under --prometheus-path behind basic auth.
    #[arg(
        long,
        help_heading = "Prometheus",
        env = "CELLSCTL_PROMETHEUS",
        overrides_with = "no_prometheus"
    )]
    pub prometheus: bool,
    /// Turn Prometheus off.
    #[arg(
        long,
        help_heading = "Prometheus",
        env = "CELLSCTL_NO_PROMETHEUS",
        overrides_with = "prometheus"
    )]
    pub no_prometheus: bool,
    /// Where Prometheus listens, IP:PORT.
    #[arg(
        long,
        help_heading = "Prometheus",
        value_name = "HOST:PORT",
        env = "CELLSCTL_PROMETHEUS_LISTEN"
    )]
    pub prometheus_listen: Option<LoopbackAddr>,
    /// URL path Caddy serves Prometheus under.
    #[arg(
        long,
        help_heading = "Prometheus",
        value_name = "PATH",
        env = "CELLSCTL_PROMETHEUS_PATH"
    )]
    pub prometheus_path: Option<UrlPath>,
    /// Basic-auth user for Prometheus (required with --prometheus).
    #[arg(
        long,
        help_heading = "Prometheus",
        value_name = "NAME",
        env = "CELLSCTL_PROMETHEUS_USER"
    )]
    pub prometheus_user: Option<Username>,
    /// File whose first line is the Prometheus password (or env CELLSCTL_PROMETHEUS_PASSWORD).
    #[arg(
        long,
        help_heading = "Prometheus",
        value_name = "PATH",
        env = "CELLSCTL_PROMETHEUS_PASSWORD_FILE"
    )]
    pub prometheus_password_file: Option<PathBuf>,
    /// A ready bcrypt hash for the Prometheus user, instead of a password.
    #[arg(
        long,
        help_heading = "Prometheus",
        value_name = "BCRYPT",
        env = "CELLSCTL_PROMETHEUS_PASSWORD_HASH"
    )]
    pub prometheus_password_hash: Option<BcryptHash>,
    /// bcrypt cost for hashing the Prometheus password, 4-20.
    #[arg(
        long,
        help_heading = "Prometheus",
        value_name = "N",
        env = "CELLSCTL_BCRYPT_COST"
    )]
    pub bcrypt_cost: Option<BcryptCost>,
    /// Targets file Cells writes for Prometheus.
    #[arg(
        long,
        help_heading = "Prometheus",
        value_name = "PATH",
        env = "CELLSCTL_PROMETHEUS_TARGETS_FILE"
    )]
    pub prometheus_targets_file: Option<AbsPath>,
    /// Cells admin login.
    #[arg(
        long,
        help_heading = "Cells",
        value_name = "NAME",
        env = "CELLSCTL_ADMIN_LOGIN"
    )]
    pub admin_login: Option<Username>,
    /// File whose first line is the Cells admin password (or env CELLSCTL_ADMIN_PASSWORD).
    #[arg(
        long,
        help_heading = "Cells",
        value_name = "PATH",
        env = "CELLSCTL_ADMIN_PASSWORD_FILE"
    )]
    pub admin_password_file: Option<PathBuf>,
    /// Database host.
    #[arg(
        long,
        help_heading = "Database",
        value_name = "HOST",
        env = "CELLSCTL_DB_HOST"
    )]
    pub db_host: Option<DbHost>,
    /// Database port.
    #[arg(
        long,
        help_heading = "Database",
        value_name = "PORT",
        env = "CELLSCTL_DB_PORT"
    )]
    pub db_port: Option<Port>,
    /// Database name.
    #[arg(
        long,
        help_heading = "Database",
        value_name = "NAME",
        env = "CELLSCTL_DB_NAME"
    )]
    pub db_name: Option<DbIdent>,
    /// Database user.
    #[arg(
        long,
        help_heading = "Database",
        value_name = "NAME",
        env = "CELLSCTL_DB_USER"
    )]
    pub db_user: Option<DbIdent>,
    /// File whose first line is the database password (or env CELLSCTL_DB_PASSWORD).
    #[arg(
        long,
        help_heading = "Database",
        value_name = "PATH",
        env = "CELLSCTL_DB_PASSWORD_FILE"
    )]
    pub db_password_file: Option<PathBuf>,
    /// Path of the Cells binary.
    #[arg(
        long,
        help_heading = "Cells",
        value_name = "PATH",
        env = "CELLSCTL_CELLS_BINARY"
    )]
    pub cells_binary: Option<AbsPath>,
    /// System user (and group) Cells runs as.
    #[arg(
        long,
        help_heading = "Cells",
        value_name = "NAME",
        env = "CELLSCTL_CELLS_USER"
    )]
    pub cells_user: Option<SystemUser>,
    /// Cells working directory, CELLS_WORKING_DIR.
    #[arg(
        long,
        help_heading = "Cells",
        value_name = "PATH",
        env = "CELLSCTL_CELLS_WORKING_DIR"
    )]
    pub cells_working_dir: Option<AbsPath>,
    /// Where cellsctl itself is installed, for the certificate renewal timer.
    #[arg(
        long,
        help_heading = "Cells",
        value_name = "PATH",
        env = "CELLSCTL_CELLSCTL_BINARY"
    )]
    pub cellsctl_binary: Option<AbsPath>,
    /// Caddy release to render for, X.Y.Z.
    #[arg(
        long,
        help_heading = "Site",
        value_name = "X.Y.Z",
        env = "CELLSCTL_CADDY_VERSION"
    )]
    pub caddy_version: Option<CaddyVersion>,
    /// Cluster mode: a Cells node, NAME=IP:PORT (its site bind, reachable from this host); give it once per node, two or more. Replaces the saved list.
    #[arg(
        long,
        help_heading = "Cluster",
        value_name = "NAME=IP:PORT",
        env = "CELLSCTL_NODE",
        value_delimiter = ','
    )]
    pub node: Vec<Node>,
    /// Cluster: etcd for Cells' config and registry, etcd://HOST:PORT or etcd+tls://HOST:PORT.
    #[arg(
        long,
        help_heading = "Cluster",
        value_name = "URL",
        env = "CELLSCTL_ETCD_URL"
    )]
    pub etcd_url: Option<EtcdUrl>,
    /// Cluster: NATS with JetStream, nats://HOST:PORT.
    #[arg(
        long,
        help_heading = "Cluster",
        value_name = "URL",
        env = "CELLSCTL_NATS_URL"
    )]
    pub nats_url: Option<NatsUrl>,
    /// Cluster: Redis, redis://HOST:PORT or redis+tls://HOST:PORT.
    #[arg(
        long,
        help_heading = "Cluster",
        value_name = "URL",
        env = "CELLSCTL_REDIS_URL"
    )]
    pub redis_url: Option<RedisUrl>,
    /// Cluster: Vault, vault://HOST:PORT or vaults://HOST:PORT.
    #[arg(
        long,
        help_heading = "Cluster",
        value_name = "URL",
        env = "CELLSCTL_VAULT_URL"
    )]
    pub vault_url: Option<VaultUrl>,
    /// Cluster: S3 endpoint, http(s)://HOST[:PORT].
    #[arg(
        long,
        help_heading = "Cluster",
        value_name = "URL",
        env = "CELLSCTL_S3_ENDPOINT"
    )]
    pub s3_endpoint: Option<S3Endpoint>,
    /// Cluster: S3 access key id.
    #[arg(
        long,
        help_heading = "Cluster",
        value_name = "KEY",
        env = "CELLSCTL_S3_ACCESS_KEY"
    )]
    pub s3_access_key: Option<S3AccessKey>,
    /// Cluster: file whose first line is Vault's token (or env CELLSCTL_VAULT_TOKEN).
    #[arg(long, help_heading = "Cluster", value_name = "PATH")]
    pub vault_token_file: Option<PathBuf>,
    /// Cluster: file holding the MongoDB DSN, mongodb://… or mongodb+srv://… (or env CELLSCTL_MONGODB_DSN).
    #[arg(long, help_heading = "Cluster", value_name = "PATH")]
    pub mongodb_dsn_file: Option<PathBuf>,
    /// Cluster: file whose first line is the S3 secret key (or env CELLSCTL_S3_SECRET_KEY).
    #[arg(long, help_heading = "Cluster", value_name = "PATH")]
    pub s3_secret_key_file: Option<PathBuf>,
}

/// The command line with every answer's default (and `hash-password`'s
/// cost, which is the same as `--bcrypt-cost`'s) shown in its help, from the
/// answer table. `--help`, the man page and the completions all use this.
pub fn command() -> clap::Command {
    let with_default = |arg: clap::Arg, field: Field| match field.fallback().help_text() {
        Some(text) => {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            arg.help(format!("{help} [default: {text}]"))
        }
        None => arg,
    };
    // In place: `mut_arg` would move each flag to the end of the help.
    let answers = |sub: clap::Command| {
        sub.mut_args(
            |arg| match Field::ALL.iter().find(|f| f.arg_id() == arg.get_id()) {
                Some(field) => with_default(arg, *field),
                None => arg,
            },
        )
    };
    // In place: `mut_subcommand` would move each subcommand to the end.
    Cli::command().mut_subcommands(|sub| match sub.get_name() {
        "init" | "regenerate" => answers(sub),
        // Not an answer (no saved state to fall back to): a plain clap default.
        "hash-password" => sub.mut_args(|arg| match arg.get_id().as_str() {
            "cost" => arg.default_value(Field::BcryptCost.fallback().value()),
            _ => arg,
        }),
        _ => sub,
    })
}

/// Parses the process's arguments (exits with clap's message on an error).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
