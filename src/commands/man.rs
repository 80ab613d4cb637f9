//! `cellsctl man` and `cellsctl completions`: from the same definitions as `--help`.

use crate::cli;
use crate::error::Error;
use std::io::Write;

/// The man page: the command, its subcommands, and every flag of
/// `init`/`regenerate` grouped as in `--help`.
pub fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_subcommands_section(out)?;
    if let Some(init) = cmd.find_subcommand("init") {
        writeln!(out, ".SH \"INIT AND REGENERATE\"")?;
        writeln!(out, "Both take the same flags; every answer flag can also be given as the environment variable CELLSCTL_<FLAG_NAME>.")?;
        clap_mangen::Man::new(init.clone()).render_options_section(out)?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    writeln!(out, "0 ok, 1 runtime failure or cancelled, 2 invalid input or usage, 3 refused because of hand edits or unknown existing files.")?;
    writeln!(out, ".SH FILES")?;
    writeln!(out, "/etc/cellsctl/cellsctl.yaml (the saved answers and file hashes), /etc/caddy/Caddyfile, /etc/cells/install.yml, /etc/systemd/system/cells.service, /etc/prometheus/cellsctl.yml, /etc/systemd/system/prometheus.service.d/cellsctl.conf, /etc/systemd/system/cellsctl-renew.service and .timer, /etc/cellsctl/pki/, /etc/cells/tls/.")?;
    man.render_version_section(out)
}

pub fn man() -> Result<(), Error> {
    man_page(&mut std::io::stdout())
        .map_err(|e| Error::runtime(format!("cannot write the man page: {e}")))
}

pub fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    let mut cmd = cli::command();
    clap_complete::generate(shell, &mut cmd, "cellsctl", &mut std::io::stdout());
    Ok(())
}
