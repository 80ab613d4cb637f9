//! The interactive wizard of `cellsctl init`.
//!
//! The questions are data (`questions::QUESTIONS`): which answer each fills,
//! how it is asked, when. The wizard asks only what no flag or variable gave,
//! offering the saved answer or the default from the same table the flags
//! use, and hands back the same `Given` the flags produce (plus what was
//! typed), so prompted and scripted runs are one code path. Every answer
//! goes through the same parsers as the flags; an invalid one is explained
//! and asked again.

mod questions;
#[cfg(test)]
mod scripted;
mod terminal;

pub use terminal::TerminalPrompter;

use crate::error::Error;
use crate::inputs::Given;
use crate::state::State;
use std::path::Path;

/// Asking a person. EOF or a closed terminal is `Error::Cancelled`, Ctrl-C
/// `Error::Interrupted`.
pub trait Prompter {
    /// A line of text; an empty answer takes `default` when there is one.
    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error>;
    /// One of `items`, by index.
    fn select(&mut self, prompt: &str, items: &[&str], default: usize) -> Result<usize, Error>;
    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool, Error>;
    /// Hidden input, typed twice.
    fn password(&mut self, prompt: &str) -> Result<String, Error>;
    /// A hint before a question, or why an answer was refused.
    fn say(&mut self, text: &str);
    /// A text or password answer was accepted: show it (`None`: hidden) as
    /// the choices show theirs.
    fn accepted(&mut self, prompt: &str, shown: Option<&str>);
}

/// What is known before asking.
pub struct Context<'a> {
    pub root: &'a Path,
    pub saved: Option<&'a State>,
    /// install.yml will be written for the first time: its passwords are needed.
    pub needs_install_secrets: bool,
    /// A Caddy version can be found without asking (flag, state or PATH).
    pub caddy_known: bool,
}

/// Asks every question that `given` does not answer, in the documented order.
pub fn run(p: &mut dyn Prompter, given: Given, ctx: &Context) -> Result<Given, Error> {
    questions::ask_all(p, given, ctx)
}
