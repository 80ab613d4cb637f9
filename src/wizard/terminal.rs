//! The terminal prompter: text with line editing (rustyline: arrow keys,
//! Home/End, and ↑ for the offered answer and earlier ones), hidden
//! passwords (rpassword), choices and yes/no (dialoguer). Questions and
//! hints go to the terminal, never to stdout, which `--json` owns.
//!
//! rustyline was chosen over dialoguer's `Input` because it tells end of
//! input (Ctrl-D) from interrupt (Ctrl-C) as distinct results, has history
//! built in, and reads and writes the controlling terminal directly.
//!
//! Ctrl-C at any question ends the run the same way: the prompter installs
//! one SIGINT handler, which puts the terminal back, says so once and exits
//! 130. The libraries raise SIGINT themselves (or, rustyline, report it and
//! we raise it); the question then waits for the handler instead of racing
//! it with a second message.

use super::Prompter;
use crate::error::Error;
use rustyline::error::ReadlineError;
use std::io::BufRead;
use std::sync::Once;
use std::time::Duration;

/// Terminals rustyline cannot edit on: it would then read stdin and write
/// the prompt to stdout, which `--json` owns. (rustyline's own list.)
const NO_LINE_EDITING: [&str; 3] = ["dumb", "cons25", "emacs"];

/// Line editing works: a terminal rustyline supports, reachable as /dev/tty.
fn line_editing_works() -> bool {
    let supported = std::env::var("TERM")
        .map(|t| !NO_LINE_EDITING.iter().any(|u| u.eq_ignore_ascii_case(&t)))
        .unwrap_or(true);
    supported
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok()
}

static INTERRUPT_HANDLER: Once = Once::new();

/// Ctrl-C while a person is asked: the terminal as it was before the first
/// question (a hidden or edited line changes it), the cursor shown, one line
/// said, exit 130.
fn install_interrupt_handler() {
    INTERRUPT_HANDLER.call_once(|| {
        let terminal = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
        let _ = ctrlc::set_handler(move || {
            if let Some(t) = &terminal {
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    t,
                );
            }
            let _ = console::Term::stderr().show_cursor();
            eprintln!("\ncellsctl: {}", crate::ui::interrupted_message());
            std::process::exit(130);
        });
    });
}

/// Ctrl-C was pressed at a question: SIGINT is (or, with `raise`, now gets)
/// raised, and the handler ends the process; this only waits for it.
fn interrupted(raise: bool) -> Error {
    if raise {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
    }
    std::thread::sleep(Duration::from_secs(5));
    Error::Interrupted
}

/// One line from stdin in the terminal's own (cooked) mode, for terminals
/// without line editing: Ctrl-D on an empty line is end of input, Ctrl-C is SIGINT.
fn read_plain_line(what: &str) -> Result<String, Error> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err(Error::Cancelled(format!("end of input at \"{what}\""))),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) => Err(Error::Cancelled(format!("cannot read \"{what}\": {e}"))),
    }
}

pub struct TerminalPrompter {
    theme: Box<dyn dialoguer::theme::Theme>,
    term: console::Term,
    editor: Option<rustyline::DefaultEditor>,
    /// Screen lines of the last question and its answer, replaced by the
    /// accepted answer.
    last_lines: usize,
}

impl TerminalPrompter {
    pub fn new() -> TerminalPrompter {
        install_interrupt_handler();
        let theme: Box<dyn dialoguer::theme::Theme> = if console::colors_enabled_stderr() {
            Box::new(dialoguer::theme::ColorfulTheme::default())
        } else {
            Box::new(dialoguer::theme::SimpleTheme)
        };
        TerminalPrompter {
            theme,
            term: console::Term::stderr(),
            editor: None,
            last_lines: 0,
        }
    }

    fn question(&self, prompt: &str, default: Option<&str>) -> String {
        let default = match default {
            Some(d) if !d.is_empty() => format!(" ({d})"),
            _ => String::new(),
        };
        format!("{} {prompt}{default} › ", console::style("?").yellow())
    }

    /// The line editor, on the controlling terminal; made at the first question.
    fn editor(&mut self) -> Result<&mut rustyline::DefaultEditor, Error> {
        if self.editor.is_none() {
            let config = rustyline::Config::builder()
                .behavior(rustyline::config::Behavior::PreferTerm)
                .auto_add_history(false)
                .build();
            let editor = rustyline::DefaultEditor::with_config(config)
                .map_err(|e| Error::Cancelled(format!("no terminal for the questions: {e}")))?;
            self.editor = Some(editor);
        }
        self.editor
            .as_mut()
            .ok_or_else(|| Error::runtime("internal: the line editor was not made"))
    }

    /// How many screen lines this text takes.
    fn rows(&self, text: &str) -> usize {
        let columns = usize::from(self.term.size().1).max(1);
        console::measure_text_width(text).div_ceil(columns).max(1)
    }
}

impl Default for TerminalPrompter {
    fn default() -> Self {
        TerminalPrompter::new()
    }
}

/// A choice or yes/no made, or why not: dialoguer's errors at a prompt are
/// Ctrl-C (SIGINT already raised), EOF or a lost terminal; `None` is Esc.
fn chosen<T>(answer: dialoguer::Result<Option<T>>, none: &str) -> Result<T, Error> {
    match answer {
        Ok(Some(chosen)) => Ok(chosen),
        Ok(None) => Err(Error::Cancelled(none.into())),
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            Err(interrupted(false))
        }
        Err(e) => Err(Error::Cancelled(format!("no answer ({e})"))),
    }
}

/// One hidden line from the terminal. Ctrl-D on an empty line is end of
/// input; Ctrl-C raises SIGINT, as at any other moment.
fn read_hidden(prompt: &str, what: &str) -> Result<String, Error> {
    rpassword::prompt_password(prompt).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::Cancelled(format!("end of input at \"{what}\""))
        }
        std::io::ErrorKind::Interrupted => Error::Interrupted,
        _ => Error::Cancelled(format!("cannot read \"{what}\": {e}")),
    })
}

impl Prompter for TerminalPrompter {
    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error> {
        let question = self.question(prompt, default);
        if !line_editing_works() {
            let _ = self.term.write_str(&question);
            let line = read_plain_line(prompt)?;
            self.last_lines = self.rows(&format!("{question}{line}"));
            return Ok(match default {
                Some(d) if line.trim().is_empty() => d.to_string(),
                _ => line,
            });
        }
        let editor = self.editor()?;
        if let Some(d) = default.filter(|d| !d.is_empty()) {
            // ↑ brings the offered answer back, to edit rather than retype.
            let _ = editor.add_history_entry(d);
        }
        let line = match editor.readline(&question) {
            Ok(line) => line,
            Err(ReadlineError::Eof) => {
                return Err(Error::Cancelled(format!("end of input at \"{prompt}\"")))
            }
            Err(ReadlineError::Interrupted) => return Err(interrupted(true)),
            Err(e) => return Err(Error::Cancelled(format!("cannot read \"{prompt}\": {e}"))),
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
        }
        self.last_lines = self.rows(&format!("{question}{line}"));
        Ok(match default {
            Some(d) if line.trim().is_empty() => d.to_string(),
            _ => line,
        })
    }

    fn select(&mut self, prompt: &str, items: &[&str], default: usize) -> Result<usize, Error> {
        let select = dialoguer::Select::with_theme(self.theme.as_ref())
            .with_prompt(prompt)
            .items(items)
            .default(default);
        chosen(select.interact_on_opt(&self.term), "no choice made")
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool, Error> {
        // Wait for Enter: an answer typed as "y⏎" must not leave a stray ⏎
        // that accepts the next question (the final "Write these files?").
        let confirm = dialoguer::Confirm::with_theme(self.theme.as_ref())
            .with_prompt(prompt)
            .default(default)
            .wait_for_newline(true);
        chosen(confirm.interact_on_opt(&self.term), "no answer")
    }

    fn password(&mut self, prompt: &str) -> Result<String, Error> {
        loop {
            let first = read_hidden(&self.question(prompt, None), prompt)?;
            let second = read_hidden(&self.question("Again, to confirm", None), prompt)?;
            if first == second {
                self.last_lines = 2;
                return Ok(first);
            }
            self.say("✗ The two entries differ; once more.");
        }
    }

    fn say(&mut self, text: &str) {
        let styled = if text.starts_with('✗') {
            console::style(text).red().to_string()
        } else {
            console::style(text).dim().to_string()
        };
        let _ = self.term.write_line(&styled);
    }

    fn accepted(&mut self, prompt: &str, shown: Option<&str>) {
        let mut line = String::new();
        let _ = self.theme.format_input_prompt_selection(
            &mut line,
            prompt,
            shown.unwrap_or("********"),
        );
        let _ = self.term.clear_last_lines(self.last_lines);
        let _ = self.term.write_line(&line);
        self.last_lines = 0;
    }
}
