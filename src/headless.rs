//! The session without a window: for scripts, tests and machines with no display. The desktop
//! can be written to a PNG when the session ends.
//!
//! A consumer of [`Session`], like the window; knows neither the commands nor the command line.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::info;

use crate::rdp::{Command, FrameSink, Outcome, PointerShape, RdpError, Session};
use crate::snapshot::{write_png, SnapshotError};

/// How a session without a window failed, or its snapshot.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    #[error(transparent)]
    Session(#[from] RdpError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// What the headless runner does besides running the session.
#[derive(Clone, Debug)]
pub struct HeadlessOptions {
    /// Write the desktop here when the session ends.
    pub snapshot: Option<PathBuf>,
    /// When the command started, for the time-to-first-frame log.
    pub started: Instant,
}

/// How long Ctrl-C waits for the session to say goodbye before dropping the connection.
const CTRL_C_GRACE: Duration = Duration::from_secs(2);

/// Runs the session to its end. Ctrl-C ends it cleanly, so the snapshot is still written; a
/// session stuck writing to a peer that stopped reading is dropped after a short grace.
pub async fn run(session: Session, options: HeadlessOptions) -> Result<Outcome, HeadlessError> {
    let frame = session.frame();
    let commands = session.commands();
    let interrupted = async move {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling here: only the session itself can end the run.
            return std::future::pending().await;
        }
        // The session may have ended already; then there is nobody left to tell.
        let _ = commands.try_send(Command::Close);
        tokio::time::sleep(CTRL_C_GRACE).await;
    };
    let sink = QuietSink {
        started: options.started,
        seen: AtomicBool::new(false),
    };
    let outcome = tokio::select! {
        outcome = session.run(sink) => outcome,
        () = interrupted => Ok(Outcome::Closed),
    };
    // Write what was seen even when the session failed, but report the failure first.
    let snapshot = match &options.snapshot {
        Some(path) => write_png(&frame.lock(), path),
        None => Ok(()),
    };
    let outcome = outcome?;
    snapshot?;
    Ok(outcome)
}

/// Notes the first frame (for the time-to-first-frame log) and nothing else: nobody watches.
struct QuietSink {
    started: Instant,
    seen: AtomicBool,
}

impl FrameSink for QuietSink {
    fn frame_ready(&self) {
        if !self.seen.swap(true, Ordering::Relaxed) {
            info!(
                ms = self.started.elapsed().as_millis() as u64,
                "first frame"
            );
        }
    }

    fn pointer(&self, _shape: PointerShape) {}
}
