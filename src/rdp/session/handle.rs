//! The handle a consumer gets: the frame to show, a sender for commands, and the loop to run
//! with the consumer's sink, which comes back after a dropped connection when asked to.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::events::{Command, FrameSink, Outcome};
use super::reconnect::{come_back, Back, Reconnect};
use super::run::{run_session, sleep_until};
use crate::rdp::connect::Connected;
use crate::rdp::error::RdpError;
use crate::render::SharedFrame;

/// How long a session that should end may take to say goodbye to the server.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

/// How many commands may wait for the session; the window keeps its own backlog beyond that.
const COMMAND_QUEUE: usize = 256;

/// A connected session, ready for a consumer (the window or the headless runner): the frame
/// to show, a sender for commands, and the loop to run with the consumer's sink.
pub struct Session {
    connected: Connected,
    frame: Arc<SharedFrame>,
    commands: mpsc::Sender<Command>,
    receiver: mpsc::Receiver<Command>,
    exit_after: Option<Duration>,
    reconnect: Option<Reconnect>,
}

impl Session {
    /// `exit_after` ends the session cleanly after that long.
    pub fn new(connected: Connected, exit_after: Option<Duration>) -> Session {
        let frame = Arc::new(SharedFrame::new(connected.desktop.0, connected.desktop.1));
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        Session {
            connected,
            frame,
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

    /// The frame the session decodes into.
    pub fn frame(&self) -> Arc<SharedFrame> {
        Arc::clone(&self.frame)
    }

    /// Where the consumer sends input, resizes and Close. The session also ends when every
    /// sender is gone.
    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.commands.clone()
    }

    /// Runs until the session ends, reconnecting when the network drops it (if asked to).
    pub async fn run(self, sink: impl FrameSink) -> Result<Outcome, RdpError> {
        let Session {
            connected,
            frame,
            mut receiver,
            exit_after,
            mut reconnect,
            ..
        } = self;
        let deadline = exit_after.map(|after| Instant::now() + after);
        // `--exit-after` holds even when the session is stuck in a write to a peer that stopped
        // reading: past the goodbye's grace, the connection is simply dropped.
        let hard_stop = deadline.map(|at| at + GOODBYE_GRACE);
        let work = async {
            let mut connected = connected;
            loop {
                let ended = run_session(connected, &frame, &mut receiver, &sink, deadline).await;
                let (Err(lost), Some(reconnect)) = (&ended, reconnect.as_mut()) else {
                    return ended;
                };
                if !lost.is_network_loss() {
                    return ended;
                }
                warn!(error = %lost, "the connection was lost; reconnecting");
                connected = match come_back(reconnect, &mut receiver, &sink, deadline).await {
                    Back::Connected(connected) => *connected,
                    Back::Ended(outcome) => return Ok(outcome),
                    Back::GaveUp(last) => {
                        return Err(RdpError::ReconnectFailed {
                            lost: lost.to_string(),
                            attempts: reconnect.attempts,
                            last,
                        })
                    }
                    Back::Refused(error) => return Err(error),
                };
                frame
                    .lock()
                    .replace(connected.desktop.0, connected.desktop.1);
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
