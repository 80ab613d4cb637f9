//! Running the host's tools for provisioning: bounded in time, output
//! captured (bounded too), killed by pid when they overrun.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a tool printed is read up to this much per stream.
const OUTPUT_LIMIT: u64 = 256 << 10;

/// How a command ended.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// stderr, else stdout, trimmed: what to show when it failed.
    pub fn message(&self) -> String {
        let err = self.stderr.trim();
        let text = if err.is_empty() {
            self.stdout.trim()
        } else {
            err
        };
        format!("{text} ({})", self.status)
    }
}

/// Why a command did not give an answer.
#[derive(Debug)]
pub enum NotRun {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It ran past its time and was killed.
    TimedOut(Duration),
}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRun::Spawn(e) => write!(f, "cannot start it: {e}"),
            NotRun::TimedOut(t) => write!(f, "no answer within {} s, stopped", t.as_secs()),
        }
    }
}

fn drain(stream: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(s) = stream {
            let _ = s.take(OUTPUT_LIMIT).read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` with `input` on its stdin, for at most `limit`.
pub fn run(cmd: &mut Command, input: &[u8], limit: Duration) -> Result<Ran, NotRun> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(NotRun::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A tool that exits without reading its input is not an error here.
        let _ = stdin.write_all(input);
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait(&mut child, limit)?;
    Ok(Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Waits for `child` at most `limit`; past it, kills it (by its pid) and says so.
pub fn wait(child: &mut std::process::Child, limit: Duration) -> Result<ExitStatus, NotRun> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NotRun::TimedOut(limit));
            }
            Err(e) => return Err(NotRun::Spawn(e)),
        }
    }
}

#[cfg(test)]
mod exec_tests {
    use super::*;

    #[test]
    fn output_and_status_come_back() {
        let ran = run(
            Command::new("sh").args(["-c", "cat; echo oops >&2; exit 3"]),
            b"hello",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(ran.stdout, "hello");
        assert_eq!(ran.status.code(), Some(3));
        assert!(ran.message().starts_with("oops ("), "{}", ran.message());
    }

    #[test]
    fn an_overrun_is_killed_and_named() {
        let start = Instant::now();
        let Err(NotRun::TimedOut(_)) = run(
            Command::new("sleep").arg("30"),
            b"",
            Duration::from_millis(300),
        ) else {
            panic!("sleep 30 overran a 300 ms limit")
        };
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
