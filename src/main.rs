use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cellsctl::cli::Cli::parse();
    match cellsctl::run(cli, time::OffsetDateTime::now_utc()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = cellsctl::ui::colour_diff(&e.to_string(), cellsctl::ui::stderr_colours());
            eprintln!("cellsctl: {message}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
