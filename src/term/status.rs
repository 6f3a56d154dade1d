//! What ecsrdp is doing, for a person at a terminal: one line on stderr naming the phase
//! (resolving, waiting for the password, connecting, logging on), replaced by the next and
//! cleared when the session starts. Nothing decorative when stderr is not a terminal, and
//! nothing but errors with `-q`.
//!
//! Process-wide, like the logger: warnings come from every layer, and each must be printed
//! around the line rather than into it, which [`warn`] does.

use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

struct Status {
    /// The phase line, when stderr is a terminal and not `-q`.
    line: Option<ProgressBar>,
    quiet: bool,
    /// When the command started: the time to the first frame counts from here, AWS included.
    started: Instant,
}

static STATUS: OnceLock<Status> = OnceLock::new();

/// Decides once, at start-up, whether the phase line and warnings are shown.
pub fn init(quiet: bool) {
    let line = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let line = ProgressBar::new_spinner();
        // INVARIANT: a constant, valid template.
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}") {
            line.set_style(style);
        }
        line
    });
    let _ = STATUS.set(Status {
        line,
        quiet,
        started: Instant::now(),
    });
}

/// When [`init`] ran, at the start of the command (now, if it never ran).
pub fn command_started() -> Instant {
    STATUS.get().map_or_else(Instant::now, |s| s.started)
}

/// Shows `phase` ("connecting to …"), with the time spent in it.
pub fn phase(phase: impl Into<String>) {
    if let Some(line) = STATUS.get().and_then(|s| s.line.as_ref()) {
        line.reset_elapsed();
        line.set_message(phase.into());
        line.enable_steady_tick(Duration::from_millis(120));
    }
}

/// Removes the line: the session (window or headless) has started, or ecsrdp is done.
pub fn clear() {
    if let Some(line) = STATUS.get().and_then(|s| s.line.as_ref()) {
        line.finish_and_clear();
    }
}

/// `ecsrdp: warning: …` on its own line, unless `-q`.
pub fn warn(text: impl std::fmt::Display) {
    if STATUS.get().is_some_and(|s| s.quiet) {
        return;
    }
    print(format_args!("ecsrdp: warning: {text}"));
}

/// `ecsrdp: …`, something worth knowing that is not a problem, unless `-q`.
pub fn note(text: impl std::fmt::Display) {
    if STATUS.get().is_some_and(|s| s.quiet) {
        return;
    }
    print(format_args!("ecsrdp: {text}"));
}

/// A line that must be seen even with `-q` (a question, a security notice), printed around the
/// phase line.
pub fn print(text: impl std::fmt::Display) {
    suspend(|| eprintln!("{text}"));
}

/// Runs `f` (a prompt, say) with the phase line out of the way.
pub fn suspend<T>(f: impl FnOnce() -> T) -> T {
    match STATUS.get().and_then(|s| s.line.as_ref()) {
        Some(line) => line.suspend(f),
        None => f(),
    }
}
