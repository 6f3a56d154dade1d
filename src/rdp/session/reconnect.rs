//! Getting a session back after the network dropped it: a new connection to the same server,
//! tried a few times with a growing wait, while the consumer keeps the last frame.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::events::{Command, FrameSink, Outcome};
use super::run::sleep_until;
use crate::rdp::connect::Connected;
use crate::rdp::error::RdpError;

/// A new connection to the same server for a session the network dropped: logged on again,
/// with the certificate the session had (a changed one is refused, as on any connection).
pub type Reconnector = Box<
    dyn FnMut() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Connected, RdpError>> + Send>,
        > + Send,
>;

/// How a session comes back when the network drops it: how many times to try, and how.
pub struct Reconnect {
    pub attempts: u32,
    pub connect: Reconnector,
}

/// The wait before each reconnection attempt: 1 s, 2 s, 4 s... at most 16 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1 << attempt.saturating_sub(1).min(4))
}

/// What came of trying to get a lost session back.
pub(super) enum Back {
    Connected(Box<Connected>),
    /// The user closed the window meanwhile, or `--exit-after` ran out.
    Ended(Outcome),
    /// Every attempt failed to reach the server; the last failure, as said to the user.
    GaveUp(String),
    /// The server answered but must not be trusted or logged on to (a changed certificate, a
    /// refused password): no point in trying again.
    Refused(RdpError),
}

/// Tries `reconnect.attempts` times with a growing wait, while the window keeps the last frame
/// and input is dropped (it would land at the wrong time); a closed window ends it.
pub(super) async fn come_back(
    reconnect: &mut Reconnect,
    commands: &mut mpsc::Receiver<Command>,
    sink: &impl FrameSink,
    deadline: Option<Instant>,
) -> Back {
    let mut last = String::new();
    for attempt in 1..=reconnect.attempts {
        sink.reconnecting(Some((attempt, reconnect.attempts)));
        tokio::select! {
            () = tokio::time::sleep(backoff(attempt)) => {}
            () = close_requested(commands) => return Back::Ended(Outcome::Closed),
            () = sleep_until(deadline), if deadline.is_some() => return Back::Ended(Outcome::TimeUp),
        }
        info!(attempt, of = reconnect.attempts, "reconnecting");
        let result = tokio::select! {
            result = (reconnect.connect)() => result,
            () = close_requested(commands) => return Back::Ended(Outcome::Closed),
        };
        match result {
            Ok(connected) => return Back::Connected(Box::new(connected)),
            Err(error) if error.is_unreachable() => {
                warn!(%error, attempt, "reconnection failed");
                last = error.to_string();
            }
            Err(error) => return Back::Refused(error),
        }
    }
    Back::GaveUp(last)
}

/// Resolves when the window asks to close (other commands are dropped meanwhile).
async fn close_requested(commands: &mut mpsc::Receiver<Command>) {
    loop {
        match commands.recv().await {
            Some(Command::Close) | None => return,
            Some(_) => {}
        }
    }
}
