//! Is the server still there?
//!
//! RDP has no ping, and a live server may send nothing for minutes while the desktop is still. A
//! dead one (the instance stopped, a NAT mapping expired, a tunnel that stopped forwarding) looks
//! just the same until something is sent, and a proxy or tunnel in between even acknowledges what
//! we send, so TCP alone cannot tell. After a quiet spell the session therefore asks for a redraw,
//! which most live servers answer with pixels; silence after that means the peer is gone.
//!
//! Not every server answers (Weston's RDP backend ignores both requests), so the verdict is only
//! given on a server that has answered a probe before in this session; on the others a dead peer
//! is left to TCP's own checks (keepalive and the user timeout, which the probes' bytes arm).
//!
//! Pure bookkeeping on instants, so that the policy is tested without a network.

use std::time::Duration;

use tokio::time::Instant;

/// Silence before each step: a small redraw at 1×, a full redraw at 2×, the verdict at 3×.
pub const QUIET: Duration = Duration::from_secs(10);

/// How many probes go unanswered before the verdict.
const PROBES: u32 = 2;

/// What to ask the server for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// One tile (Refresh Rect): cheap, and what most servers answer.
    Tile,
    /// The whole desktop, with Suppress Output off and on again where the server supports it:
    /// some Windows versions ignore Refresh Rect (MS-RDPBCGR 2.2.11.3.1) but always repaint on
    /// resume.
    Desktop,
}

/// What is due now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Probe(Probe),
    /// Nothing came back for this long despite the probes.
    Dead(Duration),
}

#[derive(Debug)]
pub struct Liveness {
    heard: Instant,
    probes: u32,
    /// The server has answered a probe, so its silence after one means something.
    answers: bool,
    /// A server that takes neither Refresh Rect nor Suppress Output cannot be asked; then only
    /// TCP's own checks (keepalive, user timeout) remain.
    can_probe: bool,
}

impl Liveness {
    pub fn new(now: Instant, can_probe: bool) -> Liveness {
        Liveness {
            heard: now,
            probes: 0,
            answers: false,
            can_probe,
        }
    }

    /// Anything from the server counts as an answer.
    pub fn heard(&mut self, now: Instant) {
        // An answer comes before the next step would have been due.
        self.answers |= self.probes > 0 && now < self.heard + QUIET * (self.probes + 1);
        self.heard = now;
        self.probes = 0;
    }

    /// When [`Liveness::due`] has something to say, if ever.
    pub fn next_check(&self) -> Option<Instant> {
        let judged = self.probes < PROBES || self.answers;
        (self.can_probe && judged).then(|| self.heard + QUIET * (self.probes + 1))
    }

    /// The step due at `now`, if any; each probe is handed out once.
    pub fn due(&mut self, now: Instant) -> Option<Due> {
        if self.next_check().is_none_or(|at| now < at) {
            return None;
        }
        if self.probes == PROBES {
            return Some(Due::Dead(now - self.heard));
        }
        self.probes += 1;
        Some(Due::Probe(if self.probes == 1 {
            Probe::Tile
        } else {
            Probe::Desktop
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answered the probes of an earlier quiet spell.
    fn answering(start: Instant) -> Liveness {
        let mut live = Liveness::new(start - QUIET * 3 / 2, true);
        assert_eq!(live.due(start - QUIET / 2), Some(Due::Probe(Probe::Tile)));
        live.heard(start);
        live
    }

    #[test]
    fn silence_brings_a_tile_then_the_desktop_then_the_verdict() {
        let start = Instant::now();
        let mut live = answering(start);
        assert_eq!(live.due(start + QUIET / 2), None);
        assert_eq!(live.due(start + QUIET), Some(Due::Probe(Probe::Tile)));
        assert_eq!(live.due(start + QUIET), None, "a probe is handed out once");
        assert_eq!(live.next_check(), Some(start + QUIET * 2));
        assert_eq!(
            live.due(start + QUIET * 2),
            Some(Due::Probe(Probe::Desktop))
        );
        assert_eq!(live.due(start + QUIET * 3), Some(Due::Dead(QUIET * 3)));
    }

    #[test]
    fn a_server_that_never_answered_is_not_judged_by_silence() {
        let start = Instant::now();
        let mut live = Liveness::new(start, true);
        assert_eq!(live.due(start + QUIET), Some(Due::Probe(Probe::Tile)));
        assert_eq!(
            live.due(start + QUIET * 2),
            Some(Due::Probe(Probe::Desktop))
        );
        assert_eq!(live.next_check(), None);
        assert_eq!(live.due(start + QUIET * 100), None);
        // Pixels that come for other reasons are not an answer either.
        live.heard(start + QUIET * 100);
        assert_eq!(live.due(start + QUIET * 101), Some(Due::Probe(Probe::Tile)));
    }

    #[test]
    fn an_answer_starts_the_count_again() {
        let start = Instant::now();
        let mut live = answering(start);
        live.due(start + QUIET);
        live.due(start + QUIET * 2);
        live.heard(start + QUIET * 2 + Duration::from_millis(1));
        assert_eq!(live.due(start + QUIET * 3), None);
        assert_eq!(
            live.due(start + QUIET * 3 + Duration::from_millis(1)),
            Some(Due::Probe(Probe::Tile))
        );
    }

    #[test]
    fn a_server_that_cannot_be_asked_is_never_judged() {
        let start = Instant::now();
        let mut live = Liveness::new(start, false);
        assert_eq!(live.next_check(), None);
        assert_eq!(live.due(start + QUIET * 10), None);
    }
}
