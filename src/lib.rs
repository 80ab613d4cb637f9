//! cellsctl: inputs -> Answers -> Plan -> Apply -> (check / verify).
//!
//! - `cli` parses the flags; `inputs` layers them (and the wizard's answers,
//!   `wizard`) over the saved `state` and the defaults into `Answers`, the
//!   validated model of `answers`;
//! - `prepare` turns the answers, install.yml's secrets and the key material
//!   of `pki` into a `Plan` through the pure renderers of `render`;
//! - `apply` decides what happens to each file, then writes it;
//! - `report` tells the admin; `check` and `verify` look at the result.
//!
//! Each command has its file in `commands`; `run` only dispatches.

pub mod adopt;
pub mod answers;
pub mod apply;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod error;
pub mod inputs;
pub mod lock;
pub mod pki;
pub mod plan;
pub mod prepare;
pub mod provision;
pub mod public_cert;
pub mod render;
pub mod report;
pub mod root;
pub mod secrets;
pub mod services;
pub mod state;
pub mod ui;
pub mod verify;
pub mod wizard;

use crate::cli::{Cli, Command};
use crate::commands::generate::Mode;
use crate::error::Error;
use time::OffsetDateTime;

/// Runs one command. `now` is injected so that certificates and backups are reproducible in tests.
pub fn run(cli: Cli, now: OffsetDateTime) -> Result<(), Error> {
    match cli.command {
        Command::Init(args) => commands::generate::run(&args, Mode::Init, now),
        Command::Regenerate(args) => commands::generate::run(&args, Mode::Regenerate, now),
        Command::Adopt(args) => commands::generate::run(&args, Mode::Adopt, now),
        Command::HashPassword(args) => commands::hash_password::run(&args),
        Command::Completions { shell } => commands::man::completions(shell),
        Command::Check(args) => commands::check::run(&args, now),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Man => commands::man::man(),
        Command::NodeBundle(args) => commands::node_bundle::run(&args),
    }
}
