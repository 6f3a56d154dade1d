//! The handle a consumer gets: the frame to show, a sender for commands, and the loop to run
//! with the consumer's sink, which comes back after a dropped connection when asked to.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::events::{Command, FrameSink, Outcome, Wanted};
use super::reconnect::{come_back, Back, Reconnect, Tries};
use super::run::{run_session, sleep_until};
use crate::rdp::connect::Connected;
use crate::rdp::error::RdpError;
use crate::render::{Canvas, SharedFrame};

/// How long a session that should end may take to say goodbye to the server.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

/// How many commands may wait for the session; the window keeps its own backlog beyond that.
const COMMAND_QUEUE: usize = 256;

/// A connected session, ready for a consumer (the window or the headless runner): the frame
/// to show, a sender for commands, and the loop to run with the consumer's sink.
pub struct Session {
    connected: Connected,
    canvas: Canvas,
    commands: mpsc::Sender<Command>,
    receiver: mpsc::Receiver<Command>,
    exit_after: Option<Duration>,
    reconnect: Option<Reconnect>,
}

impl Session {
    /// `exit_after` ends the session cleanly after that long.
    pub fn new(connected: Connected, exit_after: Option<Duration>) -> Session {
        let canvas = Canvas::new(connected.desktop.0, connected.desktop.1);
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        Session {
            connected,
            canvas,
            commands,
            receiver,
            exit_after,
            reconnect: None,
        }
    }

    /// Comes back after the network drops the session, as `reconnect` says.
    pub fn with_reconnect(mut self, reconnect: Reconnect) -> Session {
        self.reconnect = Some(reconnect);
        self
    }

    /// The frame that shows what the session decoded.
    pub fn frame(&self) -> Arc<SharedFrame> {
        self.canvas.frame()
    }

    /// Where the consumer sends input, resizes and Close. The session also ends when every
    /// sender is gone.
    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.commands.clone()
    }

    /// Runs until the session ends, reconnecting when the network drops it (if asked to). The
    /// session runs as a task of its own, so that a panic in it (a decoder outside the contained
    /// call, a bug of ours) ends it with an error the consumer reports and a non-zero exit,
    /// instead of leaving a window with nothing behind it. Dropping the future ends the task.
    pub async fn run(self, sink: impl FrameSink) -> Result<Outcome, RdpError> {
        let addr = self.connected.addr.clone();
        let task = AbortOnDrop(tokio::spawn(self.run_here(sink)));
        match task.await {
            Ok(outcome) => outcome,
            Err(failed) => Err(RdpError::Crashed {
                addr,
                detail: match failed.try_into_panic() {
                    Ok(panic) => panic_message(panic.as_ref()),
                    Err(cancelled) => cancelled.to_string(),
                },
            }),
        }
    }

    async fn run_here(self, sink: impl FrameSink) -> Result<Outcome, RdpError> {
        let Session {
            connected,
            mut canvas,
            mut receiver,
            exit_after,
            mut reconnect,
            ..
        } = self;
        // `--exit-after` is bounded on the command line; a later instant than the clock can
        // hold would be no deadline at all.
        let deadline = exit_after.and_then(|after| Instant::now().checked_add(after));
        // `--exit-after` holds even when the session is stuck in a write to a peer that stopped
        // reading: past the goodbye's grace, the connection is simply dropped.
        let hard_stop = deadline.and_then(|at| at.checked_add(GOODBYE_GRACE));
        let work = async {
            let mut connected = connected;
            let mut wanted = Wanted::default();
            let mut tries = Tries::new(reconnect.as_ref().map_or(0, |r| r.attempts));
            loop {
                let began = Instant::now();
                let addr = connected.addr.clone();
                let ended = run_session(
                    connected,
                    &mut canvas,
                    &mut receiver,
                    &sink,
                    &mut wanted,
                    deadline,
                )
                .await;
                let (Err(lost), Some(reconnect)) = (&ended, reconnect.as_mut()) else {
                    return ended;
                };
                if !lost.is_network_loss() {
                    return ended;
                }
                tries.lost_after(began.elapsed());
                warn!(error = %lost, drops = tries.drops, "the connection was lost; reconnecting");
                let back = come_back(
                    reconnect,
                    &mut tries,
                    &mut wanted,
                    &mut receiver,
                    &sink,
                    deadline,
                )
                .await;
                connected = match back {
                    Back::Connected(connected) => *connected,
                    Back::Ended(outcome) => return Ok(outcome),
                    Back::GaveUp(_) if tries.drops > 0 => {
                        return Err(RdpError::KeepsDropping {
                            addr,
                            drops: tries.drops,
                            attempts: tries.of,
                        })
                    }
                    Back::GaveUp(last) => {
                        return Err(RdpError::ReconnectFailed {
                            lost: lost.to_string(),
                            attempts: tries.of,
                            last,
                        })
                    }
                    Back::Refused(error) => return Err(error),
                };
                canvas.replace(connected.desktop.0, connected.desktop.1);
                canvas.show(&[]);
                sink.reconnecting(None);
                sink.frame_ready();
                info!("reconnected");
            }
        };
        tokio::select! {
            outcome = work => outcome,
            () = sleep_until(hard_stop) => Ok(Outcome::TimeUp),
        }
    }
}

/// A task handle that aborts the task when dropped, as a plain future would end.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}
