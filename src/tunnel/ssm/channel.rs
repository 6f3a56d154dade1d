//! The data channel's pump: one task that owns the WebSocket's reading and the protocol state
//! (handshake, sequence numbers, acknowledgements, resends, smux), and two that only write (to
//! the WebSocket, to the session), so that the pump never waits on a write: a session busy
//! drawing never stops acknowledgements, and a slow link never stops the screen.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Frame;
use tracing::{debug, trace};

use super::delivery::{Arrival, Incoming, Outgoing, GIVE_UP};
use super::handshake;
use super::message::{self, Message, PayloadType};
use super::smux::{self, Command};
use super::SsmError;
use crate::tunnel::websocket::{Ended, WebSocket};
use crate::tunnel::TunnelError;

/// The most payload one message of ours carries: the plugin's `StreamDataPayloadSize`.
const CHUNK: usize = 1024;
/// How many bytes may wait in the pipe between the session and the pump.
const PIPE_BUFFER: usize = 256 * 1024;
/// Bytes of the server's waiting for the session to read them before new messages go
/// unacknowledged (to come again later) rather than pile up. A soft limit: a message that fills
/// a gap releases the kept ones behind it at once.
const BACKLOG: usize = 4 << 20;
/// Bytes queued for the WebSocket before the pump stops reading what the session writes: a
/// slow uplink holds the session back instead of a growing queue.
const UPLINK_QUEUE: usize = 512 * 1024;
/// The one smux stream this client opens: a client's streams are odd-numbered.
const STREAM: u32 = 1;
/// How often an smux NOP goes to an agent that wants keepalives (smux's default interval).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// How long a session that ended waits for the agent to acknowledge what is in flight.
const LINGER: Duration = Duration::from_secs(2);
/// The flags of a data message (`PayloadType::Flag`) the agent sends.
const FLAG_TERMINATE: u32 = 2;
const FLAG_CONNECT_ERROR: u32 = 3;
/// What the plugin sends to say the local connection ended (basic port forwarding only).
const FLAG_DISCONNECT: u32 = 1;

/// Sends the token, runs the agent's handshake, and returns the session's end of the pipe once
/// it is complete.
pub async fn start(
    mut ws: WebSocket,
    token: &str,
    port: u16,
) -> Result<(DuplexStream, Ended), TunnelError> {
    let open = serde_json::json!({
        "MessageSchemaVersion": "1.0",
        "RequestId": uuid::Uuid::new_v4().to_string(),
        "TokenValue": token,
        "ClientId": uuid::Uuid::new_v4().to_string(),
        "ClientVersion": handshake::CLIENT_VERSION,
    });
    ws.send(Frame::text(open.to_string()))
        .await
        .map_err(|e| SsmError::Broken(e.to_string()))?;
    let (session_end, tunnel_end) = tokio::io::duplex(PIPE_BUFFER);
    let ended = Ended::default();
    let told = ended.clone();
    let (ready_tx, ready) = oneshot::channel();
    tokio::spawn(async move {
        let mut tunnel_end = tunnel_end;
        let mut ready = Some(ready_tx);
        let result = Pump::new(port).run(ws, &mut tunnel_end, &mut ready).await;
        match (result, ready.take()) {
            (Err(error), Some(ready)) => {
                let _ = ready.send(Err(error));
            }
            (Err(error), None) => {
                debug!(%error, "Session Manager stream failed");
                told.record(error.into());
            }
            (Ok(()), Some(ready)) => {
                let _ = ready.send(Err(SsmError::Closed(String::new())));
            }
            (Ok(()), None) => debug!("Session Manager stream closed"),
        }
        drop(tunnel_end);
    });
    match ready.await {
        Ok(Ok(())) => Ok((session_end, ended)),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(SsmError::Broken("the stream's task ended".into()).into()),
    }
}

/// Where the port session stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the agent's handshake request and completion.
    Handshake,
    /// Carrying bytes, with smux or without.
    Open { smux: bool },
    /// The server's side ended the connection: the session reads to its end.
    Done,
}

struct Pump {
    port: u16,
    phase: Phase,
    smux_agent: bool,
    /// When the next smux keepalive is due, for an agent that wants them.
    keepalive: Option<Instant>,
    outgoing: Outgoing,
    incoming: Incoming,
    smux: smux::Reader,
    /// The service asked for a pause (`pause_publication`).
    paused: bool,
}

/// Where the pump's writes go.
struct Writers {
    ws: mpsc::UnboundedSender<Frame>,
    /// Bytes sent to the WebSocket's writer and not yet written.
    queued: Arc<AtomicUsize>,
    session: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes sent to the session's writer and not yet written.
    backlog: Arc<AtomicUsize>,
}

impl Writers {
    fn send(&self, wire: Vec<u8>) -> Result<(), SsmError> {
        self.queued.fetch_add(wire.len(), Ordering::Relaxed);
        self.ws
            .send(Frame::binary(wire))
            .map_err(|_| SsmError::Broken("the WebSocket's writer ended".into()))
    }

    fn to_session(&self, bytes: Vec<u8>) {
        self.backlog.fetch_add(bytes.len(), Ordering::Relaxed);
        // A session that has gone is seen by the pump reading its end.
        let _ = self.session.send(bytes);
    }
}

impl Pump {
    fn new(port: u16) -> Self {
        Self {
            port,
            phase: Phase::Handshake,
            smux_agent: false,
            keepalive: None,
            outgoing: Outgoing::default(),
            incoming: Incoming::default(),
            smux: smux::Reader::default(),
            paused: false,
        }
    }

    async fn run(
        mut self,
        ws: WebSocket,
        pipe: &mut DuplexStream,
        ready: &mut Option<oneshot::Sender<Result<(), SsmError>>>,
    ) -> Result<(), SsmError> {
        let (mut ws_out, mut ws_in) = ws.split();
        let (mut from_session, mut to_session) = tokio::io::split(pipe);
        let (ws_tx, mut ws_rx) = mpsc::unbounded_channel::<Frame>();
        let (session_tx, mut session_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let backlog = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let writers = Writers {
            ws: ws_tx,
            queued: Arc::clone(&queued),
            session: session_tx,
            backlog: Arc::clone(&backlog),
        };
        // Each writer ends once the core has dropped its sender and all is written.
        let ws_writer = async {
            while let Some(frame) = ws_rx.recv().await {
                let length = match &frame {
                    Frame::Binary(bytes) => bytes.len(),
                    _ => 0,
                };
                if let Err(error) = ws_out.send(frame).await {
                    return Err(SsmError::Broken(error.to_string()));
                }
                queued.fetch_sub(length, Ordering::Relaxed);
            }
            Ok(())
        };
        let session_writer = async {
            while let Some(bytes) = session_rx.recv().await {
                if to_session.write_all(&bytes).await.is_err() {
                    // The session has gone: nothing more to carry.
                    break;
                }
                backlog.fetch_sub(bytes.len(), Ordering::Relaxed);
            }
            Ok(())
        };
        let core = async move {
            let mut buf = vec![0; smux::MAX_FRAME_DATA];
            // Once the session is done: until when what is in flight may still be acknowledged.
            let mut closing: Option<Instant> = None;
            loop {
                let now = Instant::now();
                if let Some(deadline) = closing {
                    if self.outgoing.is_empty() || now >= deadline {
                        close(&writers);
                        return Ok(());
                    }
                }
                if !self.paused && self.outgoing.oldest_wait(now) > GIVE_UP {
                    return Err(SsmError::Silent(GIVE_UP));
                }
                let resend_at = self
                    .outgoing
                    .next_due()
                    .unwrap_or(now + GIVE_UP)
                    .min(closing.unwrap_or(now + GIVE_UP));
                let keepalive_at = self.keepalive.unwrap_or(now + GIVE_UP);
                let reading = matches!(self.phase, Phase::Open { .. })
                    && !self.paused
                    && !self.outgoing.full()
                    && writers.queued.load(Ordering::Relaxed) < UPLINK_QUEUE;
                tokio::select! {
                    frame = ws_in.next() => {
                        match frame {
                            Some(Ok(Frame::Binary(data))) => {
                                let message = Message::decode(&data)
                                    .map_err(|e| SsmError::Protocol(e.to_string()))?;
                                if self.receive(message, &writers, ready)? {
                                    // The server's side ended the connection.
                                    close(&writers);
                                    return Ok(());
                                }
                            }
                            Some(Ok(Frame::Close(frame))) => {
                                let reason = frame.map(|f| f.reason.as_str().to_owned());
                                return Err(SsmError::Closed(reason.unwrap_or_default()));
                            }
                            // Text carries nothing for a port session; pings are answered by
                            // the WebSocket layer while reading.
                            Some(Ok(_)) => {}
                            Some(Err(error)) => return Err(SsmError::Broken(error.to_string())),
                            None => return Err(SsmError::Broken(
                                "the connection ended without a close".into(),
                            )),
                        }
                    }
                    read = from_session.read(&mut buf), if reading => {
                        let n = read.map_err(|e| SsmError::Broken(e.to_string()))?;
                        if n == 0 {
                            self.session_ended(&writers)?;
                            closing = Some(Instant::now() + LINGER);
                        }
                        self.send_data(&buf[..n], &writers)?;
                    }
                    () = tokio::time::sleep_until(keepalive_at.into()), if self.keepalive.is_some() => {
                        self.keepalive = Some(Instant::now() + KEEPALIVE);
                        let mut nop = Vec::new();
                        smux::Frame::encode_into(Command::Nop, 0, &[], &mut nop);
                        self.send_stream(&nop, &writers)?;
                    }
                    () = tokio::time::sleep_until(resend_at.into()), if !self.paused => {
                        if let Some(wire) = self.outgoing.due(Instant::now()) {
                            trace!("resending a message the agent did not acknowledge");
                            writers.send(wire)?;
                        }
                    }
                    // Look again soon whether the uplink queue drained below its limit (the
                    // writer tells nobody); only while it is full.
                    () = tokio::time::sleep(Duration::from_millis(20)),
                        if writers.queued.load(Ordering::Relaxed) >= UPLINK_QUEUE => {}
                }
            }
        };
        tokio::pin!(core, ws_writer, session_writer);
        let (result, core_ended) = tokio::select! {
            ended = &mut core => (ended, true),
            ended = &mut ws_writer => (ended, false),
            ended = &mut session_writer => (ended, false),
        };
        // What the core queued before it ended still goes out: the server's last bytes to the
        // session, the closing frames to the agent. (Only the core's branch completed, so the
        // writers may still be polled.)
        if core_ended {
            let drain = Duration::from_secs(2);
            let _ = tokio::time::timeout(drain, session_writer).await;
            let _ = tokio::time::timeout(drain, ws_writer).await;
        }
        result
    }

    /// Handles one message from the service; true when the stream is over.
    fn receive(
        &mut self,
        message: Message,
        writers: &Writers,
        ready: &mut Option<oneshot::Sender<Result<(), SsmError>>>,
    ) -> Result<bool, SsmError> {
        match message.message_type.as_str() {
            message::OUTPUT => {}
            message::ACKNOWLEDGE => {
                if let Some(sequence) = message::acknowledged(&message) {
                    self.outgoing.acknowledged(sequence, Instant::now());
                }
                return Ok(false);
            }
            message::CHANNEL_CLOSED => {
                let said: serde_json::Value =
                    serde_json::from_slice(&message.payload).unwrap_or_default();
                let reason = said["Output"].as_str().unwrap_or_default().to_owned();
                return Err(SsmError::Closed(reason));
            }
            message::START_PUBLICATION => {
                if self.paused {
                    self.outgoing.resumed(Instant::now());
                }
                self.paused = false;
                return Ok(false);
            }
            message::PAUSE_PUBLICATION => {
                self.paused = true;
                return Ok(false);
            }
            other => {
                trace!(message_type = other, "ignoring a message");
                return Ok(false);
            }
        }
        match self.incoming.arrive(&message) {
            Arrival::Repeat | Arrival::Early => {
                writers.send(message::acknowledgement(&message).encode())?;
                Ok(false)
            }
            Arrival::Dropped => Ok(false),
            Arrival::InOrder if writers.backlog.load(Ordering::Relaxed) > BACKLOG => {
                // The session reads slower than the server sends: let it come again.
                Ok(false)
            }
            Arrival::InOrder => {
                writers.send(message::acknowledgement(&message).encode())?;
                for message in self.incoming.take(message) {
                    if self.handle(message, writers, ready)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    /// Acts on one stream message, in sequence; true when the stream is over.
    fn handle(
        &mut self,
        message: Message,
        writers: &Writers,
        ready: &mut Option<oneshot::Sender<Result<(), SsmError>>>,
    ) -> Result<bool, SsmError> {
        match message.payload_type {
            PayloadType::HandshakeRequest => {
                let request = handshake::parse_request(&message.payload)?;
                debug!(agent = %request.agent_version, "Session Manager handshake");
                self.smux_agent = handshake::uses_smux(&request.agent_version);
                if handshake::wants_keepalive(&request.agent_version) {
                    self.keepalive = Some(Instant::now() + KEEPALIVE);
                }
                let answer = Message::new(
                    message::INPUT,
                    0,
                    0,
                    PayloadType::HandshakeResponse,
                    handshake::response(&request),
                );
                writers.send(self.outgoing.send(answer, Instant::now()))?;
            }
            PayloadType::HandshakeComplete => {
                self.phase = Phase::Open {
                    smux: self.smux_agent,
                };
                if self.smux_agent {
                    let mut syn = Vec::new();
                    smux::Frame::encode_into(Command::Syn, STREAM, &[], &mut syn);
                    self.send_stream(&syn, writers)?;
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            PayloadType::Output => match self.phase {
                Phase::Open { smux: true } => {
                    let frames = self
                        .smux
                        .push(&message.payload)
                        .map_err(|e| SsmError::Protocol(e.to_string()))?;
                    for frame in frames {
                        match frame.command {
                            Command::Psh if frame.stream == STREAM => {
                                writers.to_session(frame.data)
                            }
                            Command::Fin if frame.stream == STREAM => {
                                self.phase = Phase::Done;
                                return Ok(true);
                            }
                            _ => {}
                        }
                    }
                }
                Phase::Open { smux: false } => writers.to_session(message.payload),
                Phase::Handshake | Phase::Done => {}
            },
            PayloadType::Flag => {
                let flag = message
                    .payload
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                match flag {
                    Some(FLAG_CONNECT_ERROR) => return Err(SsmError::PortUnreachable(self.port)),
                    Some(FLAG_TERMINATE) => {
                        return Err(SsmError::Closed("the agent ended the session".into()))
                    }
                    _ => {}
                }
            }
            PayloadType::Error => {
                let text = String::from_utf8_lossy(&message.payload);
                return Err(SsmError::Closed(text.chars().take(300).collect()));
            }
            _ => {}
        }
        Ok(false)
    }

    /// The session's bytes, in smux frames when the agent multiplexes.
    fn send_data(&mut self, bytes: &[u8], writers: &Writers) -> Result<(), SsmError> {
        if self.phase == (Phase::Open { smux: true }) {
            let mut framed = Vec::with_capacity(bytes.len() + 8);
            smux::Frame::encode_into(Command::Psh, STREAM, bytes, &mut framed);
            self.send_stream(&framed, writers)
        } else {
            self.send_stream(bytes, writers)
        }
    }

    /// Bytes of the data stream, in messages of at most [`CHUNK`].
    fn send_stream(&mut self, bytes: &[u8], writers: &Writers) -> Result<(), SsmError> {
        for chunk in bytes.chunks(CHUNK) {
            let message = Message::new(message::INPUT, 0, 0, PayloadType::Output, chunk.to_vec());
            writers.send(self.outgoing.send(message, Instant::now()))?;
        }
        Ok(())
    }

    /// The session closed its end: say so to the agent (the caller closes the WebSocket once
    /// what is in flight is acknowledged).
    fn session_ended(&mut self, writers: &Writers) -> Result<(), SsmError> {
        match self.phase {
            Phase::Open { smux: true } => {
                let mut fin = Vec::new();
                smux::Frame::encode_into(Command::Fin, STREAM, &[], &mut fin);
                self.send_stream(&fin, writers)?;
            }
            Phase::Open { smux: false } => {
                let flag = Message::new(
                    message::INPUT,
                    0,
                    0,
                    PayloadType::Flag,
                    FLAG_DISCONNECT.to_be_bytes().to_vec(),
                );
                writers.send(self.outgoing.send(flag, Instant::now()))?;
            }
            Phase::Handshake | Phase::Done => {}
        }
        self.phase = Phase::Done;
        Ok(())
    }
}

/// Closes the WebSocket normally (queued after everything sent before).
fn close(writers: &Writers) {
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = writers.ws.send(Frame::Close(Some(close)));
}
