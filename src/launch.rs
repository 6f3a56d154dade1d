//! From an [`Endpoint`] to a running session: connect (on the terminal, before any window
//! opens, so trust questions and login errors appear where the command was typed), then hand
//! the session to the window or to the headless runner.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::cli::{SecurityChoice, SessionArgs};
use crate::error::Error;
use crate::headless::{write_png, QuietSink};
use crate::rdp::{
    connect, run_session, Command, ConnectOptions, Endpoint, Outcome, RdpError, Security, TrustKey,
    TrustPrompt, TrustStore,
};
use crate::render::SharedFrame;

/// The desktop size when neither `--size` nor a window says otherwise.
pub const DEFAULT_DESKTOP: (u16, u16) = (1280, 800);

/// Runs a whole session and reports how it ended.
pub fn run(
    runtime: tokio::runtime::Runtime,
    endpoint: Endpoint,
    args: &SessionArgs,
) -> Result<ExitCode, Error> {
    let started = Instant::now();
    let store = TrustStore::open_default()?;
    if args.headless {
        let outcome = runtime.block_on(headless(endpoint, args, &store, started))?;
        report(&outcome);
        return Ok(ExitCode::SUCCESS);
    }
    crate::window::run(runtime, endpoint, args, store, started)
}

/// The options `connect` needs, from the flags and the window's view of things.
pub fn connect_options(
    args: &SessionArgs,
    desktop: (u16, u16),
    scale_percent: u32,
) -> ConnectOptions {
    ConnectOptions {
        // `app` fills in the default of each kind of target; NLA when nobody did.
        security: match args.security {
            Some(SecurityChoice::Tls) => Security::NlaOrTls,
            Some(SecurityChoice::Nla) | None => Security::Nla,
        },
        desktop,
        scale_percent,
        lossless: args.lossless,
        login_screen: args.login_screen,
        connect_timeout: args.connect_timeout,
    }
}

async fn headless(
    endpoint: Endpoint,
    args: &SessionArgs,
    store: &TrustStore,
    started: Instant,
) -> Result<Outcome, Error> {
    let desktop = args.size.unwrap_or(DEFAULT_DESKTOP);
    let options = connect_options(args, desktop, 100);
    let connected = connect(&endpoint, &options, store, &TerminalPrompt, args.trust_new).await?;
    // The password has done its work; do not keep it for the whole session.
    drop(endpoint);
    let frame = Arc::new(SharedFrame::new(connected.desktop.0, connected.desktop.1));
    let (commands, receiver) = mpsc::channel(8);
    // Ctrl-C ends the session cleanly, so the snapshot is still written.
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            // The session may have ended already; then there is nobody left to tell.
            let _ = commands.send(Command::Close).await;
        }
    });
    let sink = QuietSink {
        started,
        seen: AtomicBool::new(false),
    };
    let outcome = run_session(
        connected,
        Arc::clone(&frame),
        receiver,
        sink,
        args.exit_after,
    )
    .await;
    // Write what was seen even when the session failed, but report the failure first.
    let snapshot = match &args.snapshot {
        Some(path) => write_png(&frame.lock().image, path),
        None => Ok(()),
    };
    let outcome = outcome?;
    snapshot?;
    Ok(outcome)
}

/// Tells the user how the session ended, when it was not their doing.
pub fn report(outcome: &Outcome) {
    if let Outcome::ServerEnded(reason) = outcome {
        eprintln!("ecsrdp: the server ended the session: {reason}");
    }
}

/// Asks about a new certificate on the terminal; without one, refuses (see `--trust-new`).
pub struct TerminalPrompt;

impl TrustPrompt for TerminalPrompt {
    fn confirm_new(&self, key: &TrustKey, fingerprint: &str) -> Result<bool, RdpError> {
        let unconfirmed = || RdpError::CertificateUnconfirmed {
            key: key.to_string(),
            fingerprint: fingerprint.to_owned(),
        };
        if !std::io::stdin().is_terminal() {
            return Err(unconfirmed());
        }
        let mut stderr = std::io::stderr().lock();
        write!(
            stderr,
            "First connection to {key}. Its certificate's SHA-256 fingerprint is\n  {fingerprint}\n\
             Trust it and connect? [y/N] "
        )
        .and_then(|()| stderr.flush())
        .map_err(|_| unconfirmed())?;
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|_| unconfirmed())?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
    }

    fn warn(&self, message: &str) {
        eprintln!("ecsrdp: warning: {message}");
    }
}
