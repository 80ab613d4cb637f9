//! Terminal niceties that must stay quiet in pipes and under `--quiet`:
//! the spinner, `-v` step messages, and coloured diffs.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);
static WRITING: AtomicBool = AtomicBool::new(false);
static VERBOSE: AtomicBool = AtomicBool::new(false);
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Set once from the command line.
pub fn configure(quiet: bool, verbose: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    VERBOSE.store(verbose, Ordering::Relaxed);
    START.get_or_init(std::time::Instant::now);
}

/// With `-v`: one line on stderr saying what starts now, and the time since
/// the command started (so where the time goes can be read off directly).
pub fn step(message: impl AsRef<str>) {
    if VERBOSE.load(Ordering::Relaxed) {
        let ms = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
            * 1000.0;
        eprintln!("cellsctl: [{ms:8.1} ms] {}", message.as_ref());
    }
}

/// One line on stderr, unless `--quiet`: what the person waits for.
pub fn say(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("cellsctl: {message}");
    }
}

/// Runs `work` with a spinner on stderr when stderr is a terminal (and not `--quiet`).
pub fn with_spinner<T>(message: &str, work: impl FnOnce() -> T) -> T {
    step(message);
    if QUIET.load(Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        return work();
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let out = work();
    bar.finish_and_clear();
    out
}

/// Colours a unified diff (red removals, green additions) when stdout is a
/// terminal and NO_COLOR is unset; otherwise returns it unchanged.
pub fn colour_diff(diff: &str, colours: bool) -> String {
    if !colours {
        return diff.to_string();
    }
    diff.split_inclusive('\n')
        .map(|line| {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            let styled = if line.starts_with("+++") || line.starts_with("---") {
                console::style(body).bold().force_styling(true).to_string()
            } else if line.starts_with('+') {
                console::style(body).green().force_styling(true).to_string()
            } else if line.starts_with('-') {
                console::style(body).red().force_styling(true).to_string()
            } else if line.starts_with("@@") {
                console::style(body).cyan().force_styling(true).to_string()
            } else {
                body.to_string()
            };
            format!("{styled}{nl}")
        })
        .collect()
}

/// A command for an external tool, with a clean environment (only PATH):
/// the tools cellsctl runs must never see `CELLSCTL_*_PASSWORD`.
pub fn tool(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// Whether stdout takes colours: a terminal, and NO_COLOR/CLICOLOR allow it.
pub fn stdout_colours() -> bool {
    console::colors_enabled()
}

/// Whether stderr takes colours.
pub fn stderr_colours() -> bool {
    console::colors_enabled_stderr()
}

/// Files are being written from now on (an interrupt then says so).
pub fn writing_started() {
    WRITING.store(true, Ordering::SeqCst);
}

/// What an interrupt (Ctrl-C) leaves behind, for the one line said about it.
pub fn interrupted_message() -> &'static str {
    if WRITING.load(Ordering::SeqCst) {
        "interrupted while writing; run `cellsctl regenerate` to finish (each file is whole, old or new)"
    } else {
        "interrupted; nothing was written"
    }
}
