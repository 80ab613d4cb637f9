use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cellsctl::cli::parse();
    match cellsctl::run(cli, time::OffsetDateTime::now_utc()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = cellsctl::ui::colour_diff(&e.to_string(), cellsctl::ui::stderr_colours());
            eprintln!("cellsctl: {message}");
            ExitCode::from(e.exit_code())
        }
    }
}
