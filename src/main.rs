use std::process::ExitCode;

fn main() -> ExitCode {
    // No core dump may carry a password out of this process.
    let _ = nix::sys::prctl::set_dumpable(false);
    let cli = cellsctl::cli::parse();
    match cellsctl::run(cli, now()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = cellsctl::ui::colour_diff(&e.to_string(), cellsctl::ui::stderr_colours());
            eprintln!("cellsctl: {message}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The time of this run. Testing hook, in debug builds only:
/// `CELLSCTL_TEST_NOW=UNIX_SECONDS` (say, when a certificate is due).
fn now() -> time::OffsetDateTime {
    #[cfg(debug_assertions)]
    if let Some(t) = std::env::var("CELLSCTL_TEST_NOW")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
    {
        return t;
    }
    time::OffsetDateTime::now_utc()
}
