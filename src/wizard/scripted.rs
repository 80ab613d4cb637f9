//! A prompter that replays scripted answers, for the wizard's unit tests.

use super::Prompter;
use crate::error::Error;
use std::collections::VecDeque;

/// A prompter that replays answers, for tests; running out is EOF.
#[derive(Default)]
pub struct ScriptedPrompter {
    pub answers: VecDeque<Scripted>,
    /// Every prompt asked, in order.
    pub asked: Vec<String>,
    /// Every hint and complaint shown.
    pub said: Vec<String>,
    /// Every text answer accepted, as shown.
    pub shown: Vec<String>,
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// Type this (for input and password).
    Text(&'static str),
    /// Press Enter: take the default.
    Enter,
    /// Pick this item (select) or answer yes/no (confirm).
    Choice(usize),
    Yes,
    No,
}

impl ScriptedPrompter {
    pub fn new(answers: impl IntoIterator<Item = Scripted>) -> ScriptedPrompter {
        ScriptedPrompter {
            answers: answers.into_iter().collect(),
            ..ScriptedPrompter::default()
        }
    }

    fn next(&mut self, prompt: &str) -> Result<Scripted, Error> {
        self.asked.push(prompt.to_string());
        self.answers
            .pop_front()
            .ok_or_else(|| Error::Cancelled(format!("end of input at \"{prompt}\"")))
    }
}

impl Prompter for ScriptedPrompter {
    fn input(&mut self, prompt: &str, default: Option<&str>) -> Result<String, Error> {
        match self.next(prompt)? {
            Scripted::Text(t) => Ok(t.to_string()),
            Scripted::Enter => Ok(default.unwrap_or("").to_string()),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the input \"{prompt}\""
            ))),
        }
    }

    fn select(&mut self, prompt: &str, items: &[&str], default: usize) -> Result<usize, Error> {
        match self.next(prompt)? {
            Scripted::Choice(i) if i < items.len() => Ok(i),
            Scripted::Enter => Ok(default),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the choice \"{prompt}\""
            ))),
        }
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool, Error> {
        match self.next(prompt)? {
            Scripted::Yes => Ok(true),
            Scripted::No => Ok(false),
            Scripted::Enter => Ok(default),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the question \"{prompt}\""
            ))),
        }
    }

    fn password(&mut self, prompt: &str) -> Result<String, Error> {
        match self.next(prompt)? {
            Scripted::Text(t) => Ok(t.to_string()),
            Scripted::Enter => Ok(String::new()),
            other => Err(Error::Cancelled(format!(
                "script gave {other:?} to the password \"{prompt}\""
            ))),
        }
    }

    fn say(&mut self, text: &str) {
        self.said.push(text.to_string());
    }

    fn accepted(&mut self, prompt: &str, shown: Option<&str>) {
        self.shown
            .push(format!("{prompt} · {}", shown.unwrap_or("********")));
    }
}
