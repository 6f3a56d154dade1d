//! Commands the session's queue had no room for (a server that stopped reading, a long
//! reactivation), kept in order and sent as room appears: the window never blocks on the
//! session. What waited too long loses its presses, as input does while the session reconnects:
//! keys typed into a frozen desktop would land seconds later, perhaps in another control. Their
//! releases still go, so that nothing stays held down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ironrdp_input::Operation;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::rdp::Command;

/// How long a press may wait and still be sent.
const STALE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Backlog {
    waiting: VecDeque<(Instant, Command)>,
}

impl Backlog {
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Sends `command` after whatever waits, or keeps it waiting when the queue is full.
    pub(super) fn send(&mut self, queue: &mpsc::Sender<Command>, command: Command, now: Instant) {
        self.waiting.push_back((now, command));
        self.flush(queue, now);
    }

    /// A mouse move replaces one still waiting: only where the pointer is now matters.
    pub(super) fn send_move(&mut self, queue: &mpsc::Sender<Command>, op: Operation, now: Instant) {
        if let Some((at, Command::Input(last))) = self.waiting.back_mut() {
            if let [Operation::MouseMove(_)] = last.as_slice() {
                *last = vec![op];
                *at = now;
                return;
            }
        }
        self.send(queue, Command::Input(vec![op]), now);
    }

    /// Moves what waits into the queue, as far as there is room; presses older than [`STALE`]
    /// are dropped on the way.
    pub(super) fn flush(&mut self, queue: &mpsc::Sender<Command>, now: Instant) {
        while let Some((at, command)) = self.waiting.pop_front() {
            let command = if now.duration_since(at) > STALE {
                match without_presses(command) {
                    Some(command) => command,
                    None => continue,
                }
            } else {
                command
            };
            match queue.try_send(command) {
                Ok(()) => {}
                Err(TrySendError::Full(command)) => {
                    self.waiting.push_front((at, command));
                    return;
                }
                // The session is gone; `Ended` is on its way.
                Err(TrySendError::Closed(_)) => {
                    self.waiting.clear();
                    return;
                }
            }
        }
    }
}

/// A command that waited too long, without what would act late: presses, repeats and wheel
/// turns go; releases, moves and everything else stay.
fn without_presses(command: Command) -> Option<Command> {
    match command {
        Command::Input(ops) => {
            let kept: Vec<Operation> = ops
                .into_iter()
                .filter(|op| {
                    !matches!(
                        op,
                        Operation::KeyPressed(_)
                            | Operation::UnicodeKeyPressed(_)
                            | Operation::MouseButtonPressed(_)
                            | Operation::WheelRotations(_)
                    )
                })
                .collect();
            (!kept.is_empty()).then_some(Command::Input(kept))
        }
        Command::KeyRepeat(_) => None,
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_input::{MouseButton, MousePosition, Scancode};

    fn key(down: bool) -> Command {
        let a = Scancode::from_u8(false, 0x1E);
        Command::Input(vec![if down {
            Operation::KeyPressed(a)
        } else {
            Operation::KeyReleased(a)
        }])
    }

    fn received(queue: &mut mpsc::Receiver<Command>) -> Vec<String> {
        std::iter::from_fn(|| queue.try_recv().ok())
            .map(|c| format!("{c:?}"))
            .collect()
    }

    #[test]
    fn input_waits_in_order_and_stale_presses_are_dropped_but_not_their_releases() {
        let (queue, mut session) = mpsc::channel(1);
        let mut backlog = Backlog::default();
        let start = Instant::now();
        backlog.send(&queue, Command::Focus(true), start);
        // The session stopped reading: these wait.
        backlog.send(&queue, key(true), start);
        backlog.send(&queue, key(false), start);
        let click = Operation::MouseButtonPressed(MouseButton::Left);
        let later = start + Duration::from_millis(1500);
        backlog.send(&queue, Command::Input(vec![click.clone()]), later);
        backlog.send_move(
            &queue,
            Operation::MouseMove(MousePosition { x: 1, y: 1 }),
            later,
        );
        backlog.send_move(
            &queue,
            Operation::MouseMove(MousePosition { x: 2, y: 2 }),
            later,
        );
        assert_eq!(
            received(&mut session),
            [format!("{:?}", Command::Focus(true))]
        );

        // Two seconds in: the key waited too long (its press goes, its release stays); the
        // click is fresh; the moves became one.
        let now = start + Duration::from_secs(2);
        let mut got = Vec::new();
        while !backlog.is_empty() {
            backlog.flush(&queue, now);
            got.extend(received(&mut session));
        }
        let want: Vec<String> = [
            key(false),
            Command::Input(vec![click]),
            Command::Input(vec![Operation::MouseMove(MousePosition { x: 2, y: 2 })]),
        ]
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
        assert_eq!(got, want);
    }
}
