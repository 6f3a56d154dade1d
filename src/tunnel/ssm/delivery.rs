//! The data channel's reliability, which Session Manager leaves to its two ends: every stream
//! message carries a sequence number and is acknowledged; the sender keeps what is not yet
//! acknowledged and sends it again after a retransmission timeout (RTO) estimated from round
//! trips, as TCP does (RFC 6298, with Karn's rule); the receiver hands messages on in sequence,
//! keeping early ones and acknowledging repeats again. Pure: the caller passes the time.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::message::Message;

/// Messages sent and not yet acknowledged, at most: past it the client stops reading what the
/// session writes until acknowledgements come.
const WINDOW: usize = 512;
/// Messages, and their bytes, that arrived ahead of a missing one, kept at most; more are
/// dropped unacknowledged and come again.
const EARLY: usize = 4096;
const EARLY_BYTES: usize = 8 << 20;
/// The plugin's first and largest retransmission timeouts.
const FIRST_RTO: Duration = Duration::from_millis(200);
const MAX_RTO: Duration = Duration::from_secs(1);
const MIN_RTO: Duration = Duration::from_millis(50);
/// How long a message may go unacknowledged, resent all the while, before the stream counts as
/// broken.
pub const GIVE_UP: Duration = Duration::from_secs(30);
/// The longest wait before resending a message that was resent already: each resend doubles
/// its wait, so that a slow uplink is not flooded with copies.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

struct Pending {
    sequence: i64,
    wire: Vec<u8>,
    first_sent: Instant,
    last_sent: Instant,
    /// How many times it was resent (Karn: its acknowledgement then teaches no round trip).
    resends: u32,
}

impl Pending {
    fn due_at(&self, rto: Duration) -> Instant {
        let wait = rto
            .saturating_mul(1 << self.resends.min(8))
            .min(MAX_BACKOFF.max(rto));
        self.last_sent + wait
    }
}

/// The sending side: numbers messages and resends the unacknowledged.
pub struct Outgoing {
    next_sequence: i64,
    pending: VecDeque<Pending>,
    smoothed: Option<Duration>,
    variation: Duration,
    rto: Duration,
}

impl Default for Outgoing {
    fn default() -> Self {
        Self {
            next_sequence: 0,
            pending: VecDeque::new(),
            smoothed: None,
            variation: Duration::ZERO,
            rto: FIRST_RTO,
        }
    }
}

impl Outgoing {
    /// Numbers `message`, keeps it until acknowledged, and returns its wire form.
    pub fn send(&mut self, mut message: Message, now: Instant) -> Vec<u8> {
        message.sequence = self.next_sequence;
        self.next_sequence += 1;
        let wire = message.encode();
        self.pending.push_back(Pending {
            sequence: message.sequence,
            wire: wire.clone(),
            first_sent: now,
            last_sent: now,
            resends: 0,
        });
        wire
    }

    /// Whether everything sent was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether the window is full: read no more from the session until acknowledgements come.
    pub fn full(&self) -> bool {
        self.pending.len() >= WINDOW
    }

    /// The agent acknowledged `sequence`: forget it, and learn the round trip from it unless it
    /// was resent (whose acknowledgement answers which copy, nobody knows).
    pub fn acknowledged(&mut self, sequence: i64, now: Instant) {
        let Some(at) = self.pending.iter().position(|p| p.sequence == sequence) else {
            return;
        };
        let Some(pending) = self.pending.remove(at) else {
            return;
        };
        if pending.resends == 0 {
            self.learn(now.saturating_duration_since(pending.first_sent));
        }
    }

    fn learn(&mut self, sample: Duration) {
        match self.smoothed {
            None => {
                self.smoothed = Some(sample);
                self.variation = sample / 2;
            }
            Some(smoothed) => {
                let difference = smoothed.abs_diff(sample);
                self.variation = self.variation * 3 / 4 + difference / 4;
                self.smoothed = Some(smoothed * 7 / 8 + sample / 8);
            }
        }
        let smoothed = self.smoothed.unwrap_or(FIRST_RTO);
        self.rto = (smoothed + self.variation * 4).clamp(MIN_RTO, MAX_RTO);
    }

    /// The oldest unacknowledged message, when its timeout passed, to send again now. Only
    /// the oldest, as the plugin resends: on a slow uplink every message of the window is
    /// overdue at once, and copies of all of them would only queue behind each other; the
    /// next one's turn comes when this one is acknowledged.
    pub fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let rto = self.rto;
        let oldest = self.pending.front_mut().filter(|p| p.due_at(rto) <= now)?;
        oldest.last_sent = now;
        oldest.resends += 1;
        Some(oldest.wire.clone())
    }

    /// When the oldest message's resend falls due, if anything waits for an acknowledgement.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.due_at(self.rto))
    }

    /// The service paused the stream (`pause_publication`) and resumed it: time spent paused
    /// is not silence, so every waiting message counts from now.
    pub fn resumed(&mut self, now: Instant) {
        for pending in &mut self.pending {
            pending.first_sent = now;
            pending.last_sent = now;
        }
    }

    /// How long the oldest unacknowledged message has waited.
    pub fn oldest_wait(&self, now: Instant) -> Duration {
        self.pending.front().map_or(Duration::ZERO, |p| {
            now.saturating_duration_since(p.first_sent)
        })
    }
}

/// What became of a stream message that arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Next in sequence: acknowledge it, then hand it on with the kept ones it unblocks.
    InOrder,
    /// Seen before: acknowledge it again (the first acknowledgement may have been lost).
    Repeat,
    /// Ahead of a missing one: kept and acknowledged.
    Early,
    /// Ahead, with no room to keep it: neither kept nor acknowledged, so it comes again.
    Dropped,
}

/// The receiving side: hands messages on in sequence.
#[derive(Default)]
pub struct Incoming {
    expected: i64,
    early: BTreeMap<i64, Message>,
    early_bytes: usize,
}

impl Incoming {
    /// Sorts `message` by its sequence number (see [`Arrival`]).
    pub fn arrive(&mut self, message: &Message) -> Arrival {
        use std::cmp::Ordering::*;
        match message.sequence.cmp(&self.expected) {
            Less => Arrival::Repeat,
            Equal => Arrival::InOrder,
            Greater if self.early.contains_key(&message.sequence) => Arrival::Repeat,
            Greater
                if self.early.len() < EARLY
                    && self.early_bytes + message.payload.len() <= EARLY_BYTES =>
            {
                self.early_bytes += message.payload.len();
                self.early.insert(message.sequence, message.clone());
                Arrival::Early
            }
            Greater => Arrival::Dropped,
        }
    }

    /// Takes the in-order `message` and the kept ones that follow it, in sequence.
    pub fn take(&mut self, message: Message) -> Vec<Message> {
        self.expected = message.sequence + 1;
        let mut ready = vec![message];
        while let Some(next) = self.early.remove(&self.expected) {
            self.early_bytes -= next.payload.len();
            self.expected += 1;
            ready.push(next);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{PayloadType, OUTPUT};
    use super::*;

    fn numbered(sequence: i64) -> Message {
        let mut message = Message::new(OUTPUT, 0, 0, PayloadType::Output, vec![0]);
        message.sequence = sequence;
        message
    }

    #[test]
    fn messages_out_of_order_come_out_in_order_and_repeats_are_reacknowledged() {
        let mut incoming = Incoming::default();
        assert_eq!(incoming.arrive(&numbered(1)), Arrival::Early);
        assert_eq!(incoming.arrive(&numbered(1)), Arrival::Repeat);
        assert_eq!(incoming.arrive(&numbered(0)), Arrival::InOrder);
        let taken: Vec<i64> = incoming
            .take(numbered(0))
            .iter()
            .map(|m| m.sequence)
            .collect();
        assert_eq!(taken, [0, 1]);
        assert_eq!(incoming.arrive(&numbered(0)), Arrival::Repeat);
        assert_eq!(incoming.arrive(&numbered(2)), Arrival::InOrder);
    }

    #[test]
    fn unacknowledged_messages_are_resent_after_the_timeout_learned_from_round_trips() {
        let start = Instant::now();
        let mut outgoing = Outgoing::default();
        let message = || Message::new(OUTPUT, 0, 0, PayloadType::Output, vec![1]);
        outgoing.send(message(), start);
        outgoing.send(message(), start);
        assert!(outgoing.due(start + Duration::from_millis(100)).is_none());
        // A fast round trip shortens the timeout for what is still waiting.
        outgoing.acknowledged(0, start + Duration::from_millis(20));
        assert_eq!(outgoing.rto, Duration::from_millis(60));
        let at = start + Duration::from_millis(70);
        assert!(outgoing.due(at).is_some());
        assert!(outgoing.due(at).is_none(), "one copy at a time");
        // Resent once, it waits twice as long before the next copy.
        assert!(outgoing.due(at + Duration::from_millis(100)).is_none());
        assert!(outgoing.due(at + Duration::from_millis(120)).is_some());
        // Karn: the acknowledgement of a resent message teaches nothing.
        outgoing.acknowledged(1, start + Duration::from_millis(900));
        assert_eq!(outgoing.rto, Duration::from_millis(60));
        assert_eq!(outgoing.next_due(), None);
    }

    proptest::proptest! {
        /// Whatever order and however often the messages arrive (each at least once), each is
        /// handed on exactly once, in sequence.
        #[test]
        fn any_arrival_order_hands_each_message_on_once_in_sequence(
            arrivals in proptest::collection::vec(0i64..40, 0..200)
        ) {
            let mut order: Vec<i64> = (0..40).collect();
            order.extend(arrivals);
            // Shuffled by the generated values, but every number is there at least once.
            order.sort_by_key(|n| (n * 7919) % 41);
            let mut incoming = Incoming::default();
            let mut handed = Vec::new();
            for sequence in order {
                if incoming.arrive(&numbered(sequence)) == Arrival::InOrder {
                    handed.extend(incoming.take(numbered(sequence)).iter().map(|m| m.sequence));
                }
            }
            proptest::prop_assert_eq!(handed, (0..40).collect::<Vec<_>>());
        }
    }
}
