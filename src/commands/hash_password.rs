//! `cellsctl hash-password`: one password in, a bcrypt hash Caddy accepts out.

use crate::cli::HashPasswordArgs;
use crate::error::Error;
use crate::inputs::Layer;
use crate::secrets::{self, Secret};
use crate::ui;
use crate::wizard::{Prompter, TerminalPrompter};
use std::io::{BufRead, IsTerminal};

pub fn run(args: &HashPasswordArgs) -> Result<(), Error> {
    let cost = args
        .cost
        .or(Layer::defaults().bcrypt_cost)
        .ok_or_else(|| Error::runtime("internal: no default bcrypt cost"))?;
    // On a terminal: hidden, typed twice. Otherwise one line from stdin.
    let password = if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        TerminalPrompter::new().password("Password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::runtime(format!("cannot read the password from stdin: {e}")))?;
        secrets::strip_one_line(&line)
    };
    let password = Secret::for_basic_auth(password)
        .map_err(|why| Error::usage(format!("stdin: the password {why}")))?;
    let hash = ui::with_spinner(&format!("Hashing (bcrypt cost {cost})"), || {
        secrets::bcrypt_hash(password.expose(), cost)
    })?;
    super::print(&format!("{hash}\n"))
}
