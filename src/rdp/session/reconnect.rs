//! Getting a session back after the network dropped it: a new connection to the same server,
//! tried a few times with a growing wait, while the consumer keeps the last frame.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::events::{close_requested, Command, FrameSink, Layout, Outcome, Wanted};
use super::run::sleep_until;
use crate::rdp::connect::Connected;
use crate::rdp::error::RdpError;

/// A new connection to the same server for a session the network dropped: logged on again,
/// with the certificate the session had (a changed one is refused, as on any connection), at
/// the desktop the window last asked for (the first connection's when it asked for none).
pub type Reconnector = Box<
    dyn FnMut(
            Option<Layout>,
        ) -> std::pin::Pin<
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

/// How long a session that came back must last for its connection to count as good again: one
/// that drops sooner (a proxy that cuts every connection, a server that logs each one off) goes
/// on spending the same tries, with the same growing waits, instead of starting over.
pub(super) const STEADY: Duration = Duration::from_secs(60);

/// The reconnection tries a session has left, across connections that drop soon after logon.
#[derive(Debug)]
pub(super) struct Tries {
    pub used: u32,
    pub of: u32,
    /// Connections that came back and dropped again within [`STEADY`].
    pub drops: u32,
}

impl Tries {
    pub fn new(of: u32) -> Tries {
        Tries {
            used: 0,
            of,
            drops: 0,
        }
    }

    /// A session that came back was lost again after `lasted`.
    pub fn lost_after(&mut self, lasted: Duration) {
        if lasted >= STEADY {
            self.used = 0;
            self.drops = 0;
        } else if self.used > 0 {
            self.drops += 1;
        }
    }
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

/// Spends the tries left with a growing wait, while the window keeps the last frame. Input is
/// dropped (it would land at the wrong time); a resize or the lock keys are kept in `wanted`
/// for the new connection; a closed window ends it.
pub(super) async fn come_back(
    reconnect: &mut Reconnect,
    tries: &mut Tries,
    wanted: &mut Wanted,
    commands: &mut mpsc::Receiver<Command>,
    sink: &impl FrameSink,
    deadline: Option<Instant>,
) -> Back {
    let mut last = String::new();
    while tries.used < tries.of {
        tries.used += 1;
        let attempt = tries.used;
        sink.reconnecting(Some((attempt, tries.of)));
        tokio::select! {
            () = tokio::time::sleep(backoff(attempt)) => {}
            () = close_requested(commands, wanted) => return Back::Ended(Outcome::Closed),
            () = sleep_until(deadline), if deadline.is_some() => return Back::Ended(Outcome::TimeUp),
        }
        info!(attempt, of = tries.of, "reconnecting");
        let result = tokio::select! {
            result = (reconnect.connect)(wanted.layout) => result,
            () = close_requested(commands, wanted) => return Back::Ended(Outcome::Closed),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_drops_soon_after_logon_spends_the_same_tries() {
        let mut tries = Tries::new(5);
        // The first loss, after a long session: a full set.
        tries.lost_after(Duration::from_secs(3600));
        assert_eq!((tries.used, tries.drops), (0, 0));
        tries.used = 1;
        // Back, and lost again three seconds later: the count goes on.
        tries.lost_after(Duration::from_secs(3));
        assert_eq!((tries.used, tries.drops), (1, 1));
        tries.used = 2;
        tries.lost_after(STEADY - Duration::from_millis(1));
        assert_eq!((tries.used, tries.drops), (2, 2));
        // One that stayed up a minute earns a full set again.
        tries.lost_after(STEADY);
        assert_eq!((tries.used, tries.drops), (0, 0));
    }

    #[test]
    fn the_waits_grow_to_sixteen_seconds() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 16, 16]);
    }
}
