//! The active session (MS-RDPBCGR 1.3.1.2 onwards): read PDUs and decode them into the shared
//! framebuffer, send input, follow resizes and reactivation, end cleanly.
//!
//! Commands in (a bounded channel from the window), wake-ups out (a [`FrameSink`]): pixels never
//! travel through a channel, they stay in [`SharedFrame`].

use std::sync::Arc;
use std::time::Duration;

use ironrdp_connector::connection_activation::ConnectionActivationState;
use ironrdp_connector::ConnectionResult;
use ironrdp_graphics::pointer::DecodedPointer;
use ironrdp_input::{Database, Operation};
use ironrdp_pdu::input::fast_path::FastPathInputEvent;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_tokio::{split_tokio_framed, FramedWrite as _, TokioFramed};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use super::connect::{is_disconnect, Connected, Stream};
use super::ignorable::ignorable;
use super::liveness::{Due, Liveness, Probe};
use super::RdpError;
use crate::render::{Rect, SharedFrame};

/// What the window asks of the session.
#[derive(Clone, Debug)]
pub enum Command {
    Input(Vec<Operation>),
    /// Release every held key and button (the window lost focus).
    ReleaseAll,
    /// The lock keys as they are now (the window gained focus): MS-RDPBCGR 2.2.8.1.1.3.1.1.5.
    SyncLocks(crate::keyboard::Locks),
    /// Ask the server for a new desktop size (debounced here: resizes come in bursts).
    Resize {
        width: u32,
        height: u32,
        scale_percent: u32,
    },
    Close,
}

/// The pointer the server wants shown.
#[derive(Clone, Debug)]
pub enum PointerShape {
    Default,
    Hidden,
    Bitmap(Arc<DecodedPointer>),
}

/// Where the session's news goes: a wake-up per batch of pixels, pointer changes.
pub trait FrameSink: Send + 'static {
    /// New damage is in the shared frame. Called once per PDU at most; coalescing is the
    /// sink's job.
    fn frame_ready(&self);
    fn pointer(&self, shape: PointerShape);
    /// The server cannot follow a resize (no Display Control channel, or not yet): scale
    /// instead.
    fn resize_refused(&self) {}
    /// Display Control opened after all: follow the window's size again.
    fn resize_resumed(&self) {}
    /// The connection was lost and ecsrdp is getting it back: `Some((attempt, of))` while it
    /// tries, `None` once the session is back.
    fn reconnecting(&self, _attempt: Option<(u32, u32)>) {}
}

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

/// How a session ended, when it ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server ended it (log off, admin disconnect...) with this reason.
    ServerEnded(String),
    /// The window was closed.
    Closed,
    /// `--exit-after` ran out.
    TimeUp,
}

/// How long to wait after the last resize before asking the server for it.
const RESIZE_DEBOUNCE: Duration = Duration::from_millis(400);

/// How long after the session starts a server may take to open Display Control before we
/// conclude it has none.
const DISPLAY_CONTROL_GRACE: Duration = Duration::from_secs(5);

/// How often a resize waiting for Display Control checks whether the channel has opened.
const DISPLAY_CONTROL_POLL: Duration = Duration::from_millis(500);

/// How long a session that should end may take to say goodbye to the server.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

/// The largest desktop side a server may grant (MS-RDPBCGR allows up to 32766, MS-RDPEDISP up
/// to 8192): anything larger is refused rather than allocated.
pub(super) const MAX_DESKTOP_SIDE: u16 = 8192;

/// How long a write may wait for a server that stopped reading before the session counts as
/// lost (TCP's user timeout covers a dead network; this covers a live socket nobody drains).
const WRITE_LIMIT: Duration = Duration::from_secs(30);

/// What became of a resize request.
enum Resize {
    Sent,
    /// Display Control is not open (yet).
    NotYet,
    Refused,
}

type Reader = TokioFramed<ReadHalf<Stream>>;
type Writer = TokioFramed<WriteHalf<Stream>>;

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

/// What came of trying to get a lost session back.
enum Back {
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
async fn come_back(
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

/// Drives the session until it ends; the frame is resized to whatever the server grants.
pub async fn run_session(
    connected: Connected,
    frame: &SharedFrame,
    commands: &mut mpsc::Receiver<Command>,
    sink: &impl FrameSink,
    deadline: Option<Instant>,
) -> Result<Outcome, RdpError> {
    let Connected {
        framed,
        result,
        addr,
        mut clipboard,
        ..
    } = connected;
    let (mut reader, mut writer) = split_tokio_framed(framed);
    let activation = result.activation_factory.clone();
    // The MCS channels stay those of the connection through any reactivation.
    let io_channel = result.io_channel_id;
    let redraws = Redraws {
        refresh_rect: result.refresh_rect_support,
        suppress_output: result.suppress_output_support,
    };
    let mut liveness = Liveness::new(Instant::now(), redraws.any());
    let mut recording = recording();
    let mut stage = active_stage(result);
    let mut input = Database::new();
    let mut pending_resize: Option<(Instant, u32, u32, u32)> = None;
    // The window scales the desktop because the server cannot (yet) follow its size.
    let mut fitting = false;
    let started = Instant::now();
    let lost = |e: &dyn std::fmt::Display| RdpError::SessionLost {
        addr: addr.clone(),
        detail: e.to_string(),
    };

    loop {
        let resize_at = pending_resize.map(|(at, ..)| at);
        let check_at = liveness.next_check();
        tokio::select! {
            pdu = reader.read_pdu() => {
                let (action, payload) = pdu.map_err(|e| {
                    if is_disconnect(&e) {
                        RdpError::Dropped { addr: addr.clone(), stage: "the session" }
                    } else {
                        lost(&e)
                    }
                })?;
                trace!(?action, len = payload.len(), "pdu");
                liveness.heard(Instant::now());
                if let Some(file) = recording.as_mut() {
                    if !record(file, &payload) {
                        recording = None;
                    }
                }
                let Some(Decoded { outputs, damaged }) = decode(
                    &mut stage,
                    frame,
                    io_channel,
                    action,
                    &payload,
                    reader.last_read_at(),
                    &addr,
                )?
                else {
                    continue;
                };
                if damaged {
                    sink.frame_ready();
                }
                for output in outputs {
                    match output {
                        ActiveStageOutput::GraphicsUpdate(_) => {}
                        ActiveStageOutput::ResponseFrame(bytes) => {
                            if !bytes.is_empty() {
                                send(&mut writer, &bytes, &addr).await?;
                            }
                        }
                        ActiveStageOutput::ServerRedirection(_) => {
                            return Err(RdpError::SessionLost {
                                addr: addr.clone(),
                                detail: "the server redirected the session to another host, which \
                                         ecsrdp does not follow".into(),
                            });
                        }
                        ActiveStageOutput::PointerDefault => sink.pointer(PointerShape::Default),
                        ActiveStageOutput::PointerHidden => sink.pointer(PointerShape::Hidden),
                        ActiveStageOutput::PointerBitmap(bitmap) => {
                            sink.pointer(PointerShape::Bitmap(bitmap));
                        }
                        ActiveStageOutput::PointerPosition { .. } => {}
                        ActiveStageOutput::Terminate(reason) => {
                            let reason = reason.description();
                            info!(%reason, "the server ended the session");
                            return Ok(Outcome::ServerEnded(reason));
                        }
                        ActiveStageOutput::DeactivateAll => {
                            reactivate(&mut reader, &mut writer, &activation, &mut stage, frame, &addr)
                                .await?;
                            sink.frame_ready();
                        }
                        other => debug!(?other, "ignored session output"),
                    }
                }
            }
            command = commands.recv() => {
                let events: Vec<FastPathInputEvent> = match command {
                    Some(Command::Input(operations)) => input.apply(operations).into_iter().collect(),
                    Some(Command::ReleaseAll) => input.release_all().into_iter().collect(),
                    Some(Command::SyncLocks(locks)) => {
                        vec![ironrdp_input::synchronize_event(locks.scroll, locks.num, locks.caps, false)]
                    }
                    Some(Command::Resize { width, height, scale_percent }) => {
                        pending_resize = Some((Instant::now() + RESIZE_DEBOUNCE, width, height, scale_percent));
                        continue;
                    }
                    Some(Command::Close) | None => {
                        shutdown(stage.graceful_shutdown(), &mut writer).await;
                        return Ok(Outcome::Closed);
                    }
                };
                if events.is_empty() {
                    continue;
                }
                let outputs = {
                    let mut frame = frame.lock();
                    stage.process_fastpath_input(&mut frame.image, &events)
                }
                .map_err(|e| lost(&e.report()))?;
                for output in outputs {
                    if let ActiveStageOutput::ResponseFrame(bytes) = output {
                        send(&mut writer, &bytes, &addr).await?;
                    }
                }
            }
            message = next_clipboard(&mut clipboard) => {
                let bytes = super::clipboard::encode(&mut stage, message);
                if !bytes.is_empty() {
                    send(&mut writer, &bytes, &addr).await?;
                }
            }
            () = sleep_until(check_at), if check_at.is_some() => {
                match liveness.due(Instant::now()) {
                    Some(Due::Probe(probe)) => {
                        let desktop = frame.lock().size();
                        debug!(?probe, "the server is quiet: asking for a redraw");
                        let requests = redraws.encode(&stage, probe, desktop).map_err(|e| lost(&e.report()))?;
                        for bytes in requests {
                            send(&mut writer, &bytes, &addr).await?;
                        }
                    }
                    Some(Due::Dead(silence)) => {
                        return Err(RdpError::Unresponsive { addr: addr.clone(), seconds: silence.as_secs() });
                    }
                    None => {}
                }
            }
            () = sleep_until(resize_at), if resize_at.is_some() => {
                if let Some((_, width, height, scale)) = pending_resize.take() {
                    let sent = request_resize(&mut stage, &mut writer, width, height, scale)
                        .await
                        .map_err(|e| lost(&e))?;
                    match sent {
                        Resize::Sent if fitting => {
                            // The channel opened late (a first logon can take a minute): back
                            // to following the window.
                            fitting = false;
                            sink.resize_resumed();
                        }
                        Resize::Sent => {}
                        // Display Control opens when the server is ready, which the channel
                        // itself tells; until then keep asking, and let the window scale the
                        // desktop meanwhile rather than cut it off.
                        Resize::NotYet => {
                            pending_resize = Some((Instant::now() + DISPLAY_CONTROL_POLL, width, height, scale));
                            if !fitting && started.elapsed() >= DISPLAY_CONTROL_GRACE {
                                fitting = true;
                                sink.resize_refused();
                            }
                        }
                        Resize::Refused => {
                            fitting = true;
                            sink.resize_refused();
                        }
                    }
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                shutdown(stage.graceful_shutdown(), &mut writer).await;
                return Ok(Outcome::TimeUp);
            }
        }
    }
}

/// Where `ECSRDP_RECORD` asks the server's PDUs to be written, as they came (TPKT and
/// fast-path frames, back to back: what the fuzz target and replays read). For debugging and
/// benchmarks; the stream holds the session's pixels (and any auto-reconnect cookie), never the
/// password, which went before it.
fn recording() -> Option<std::fs::File> {
    let path = std::env::var_os("ECSRDP_RECORD")?;
    match std::fs::File::create(&path) {
        Ok(file) => Some(file),
        Err(error) => {
            warn!(%error, path = %std::path::Path::new(&path).display(), "cannot record the session");
            None
        }
    }
}

/// Appends one PDU; false (after saying why) once the file cannot take more.
fn record(file: &mut std::fs::File, pdu: &[u8]) -> bool {
    use std::io::Write as _;
    match file.write_all(pdu) {
        Ok(()) => true,
        Err(error) => {
            warn!(%error, "recording stopped");
            false
        }
    }
}

/// What one server PDU did.
pub struct Decoded {
    /// What the session must act on (responses, pointer, termination...).
    pub outputs: Vec<ActiveStageOutput>,
    /// New damage is in the frame.
    pub damaged: bool,
}

/// Decodes one server PDU into the frame: IronRDP's processing, the bound on what a server
/// may grant, the damage. `None` for a PDU passed over (see [`ignorable`]). Everything a
/// hostile server sends goes through here, which is why the fuzz target calls it too.
pub fn decode(
    stage: &mut ActiveStage,
    frame: &SharedFrame,
    io_channel: u16,
    action: ironrdp_pdu::Action,
    payload: &[u8],
    received_at: Option<ironrdp_connector::MonotonicInstant>,
    addr: &str,
) -> Result<Option<Decoded>, RdpError> {
    if action == ironrdp_pdu::Action::X224 {
        if let Some(name) = ignorable(payload, io_channel) {
            debug!(pdu = name, "passed over");
            return Ok(None);
        }
    }
    let mut frame = frame.lock();
    let size = frame.image_size();
    let image = &mut frame.image;
    let processed = super::contain::contained(|| {
        let outputs = stage.process(image, action, payload, received_at)?;
        // The graphics pipeline is ours (see `graphics`), so IronRDP's session does not
        // composite it: that happens here, after each PDU, as the session would.
        let graphics = stage
            .get_dvc_mut::<super::graphics::Pipeline>()
            .map(|mut pipeline| pipeline.processor_mut().composite(image))
            .transpose()?;
        Ok::<_, ironrdp_session::SessionError>((outputs, graphics))
    });
    let (outputs, graphics) = processed
        .map_err(|panic| RdpError::Protocol {
            addr: addr.to_owned(),
            stage: "the session",
            detail: format!("IronRDP's decoder failed on it: {panic}"),
        })?
        .map_err(|e| RdpError::Protocol {
            addr: addr.to_owned(),
            stage: "the session",
            detail: e.report().to_string(),
        })?;
    if frame.image_size() != size {
        let (width, height) = frame.image_size();
        check_desktop(addr, width, height)?;
        frame.resized_in_place();
    }
    // The exact rectangles each update touched, not their union.
    let mut damage = stage.take_damage_regions();
    let mut reset = false;
    if let Some(graphics) = graphics {
        reset = graphics.reset;
        if reset {
            // The image was cleared for the server's new size: all of it is to be painted.
            let (width, height) = frame.image_size();
            frame.add_damage(Rect::new(0, 0, u32::from(width), u32::from(height)));
        }
        damage.extend(graphics.regions);
    }
    for rect in &damage {
        frame.add_damage(Rect::from(rect));
    }
    Ok(Some(Decoded {
        outputs,
        damaged: reset || !damage.is_empty(),
    }))
}

/// The MCS channels of [`replay_stage`]'s fictitious connection.
pub const REPLAY_CHANNELS: ReplayChannels = ReplayChannels {
    io: 1003,
    user: 1002,
    drdynvc: 1004,
};

/// Channel IDs of a connection, as the server assigned them.
#[derive(Clone, Copy, Debug)]
pub struct ReplayChannels {
    pub io: u16,
    pub user: u16,
    pub drdynvc: u16,
}

/// An active stage as after a connection with the channels ecsrdp opens (Display Control, and
/// the graphics pipeline with `Codecs::H264`), with the channel IDs of [`REPLAY_CHANNELS`]:
/// for feeding server PDUs to [`decode`] without a server, as the fuzz target does.
pub fn replay_stage(codecs: super::Codecs) -> ActiveStage {
    replay_stage_with(super::connect::dynamic_channels(codecs))
}

/// An active stage like [`replay_stage`]'s with other dynamic channels: for comparing ecsrdp's
/// with IronRDP's own on the same stream.
pub fn replay_stage_with(dynamic_channels: ironrdp_dvc::DrdynvcClient) -> ActiveStage {
    let mut static_channels = ironrdp_svc::StaticChannelSet::new();
    static_channels.insert(dynamic_channels);
    static_channels.attach_channel_id(
        std::any::TypeId::of::<ironrdp_dvc::DrdynvcClient>(),
        REPLAY_CHANNELS.drdynvc,
    );
    ActiveStageBuilder {
        static_channels,
        user_channel_id: REPLAY_CHANNELS.user,
        io_channel_id: REPLAY_CHANNELS.io,
        message_channel_id: None,
        share_id: 0x0001_03ea,
        compression_type: None,
        enable_server_pointer: true,
        pointer_software_rendering: false,
    }
    .build()
}

/// Feeds a server's byte stream (TPKT and fast-path frames back to back, as `ECSRDP_RECORD`
/// writes them) through [`decode`] on `stage` (a [`replay_stage`]), calling `on_damage` with
/// the frame after each PDU that changed it. Stops at the first error, as a session would, or
/// at a frame cut short; returns how many PDUs were decoded. For the fuzz target, the replay
/// tests and the per-codec benches, which must all run exactly the session's code.
pub fn replay(
    stage: &mut ActiveStage,
    frame: &SharedFrame,
    mut stream: &[u8],
    mut on_damage: impl FnMut(&mut crate::render::Frame),
) -> Result<usize, RdpError> {
    let mut decoded = 0;
    while let Ok(Some(info)) = ironrdp_pdu::find_size(stream) {
        if info.length == 0 || info.length > stream.len() {
            break;
        }
        let (pdu, rest) = stream.split_at(info.length);
        stream = rest;
        let outcome = decode(
            stage,
            frame,
            REPLAY_CHANNELS.io,
            info.action,
            pdu,
            None,
            "replay",
        )?;
        decoded += 1;
        if outcome.is_some_and(|o| o.damaged) {
            on_damage(&mut frame.lock());
        }
    }
    Ok(decoded)
}

/// Writes one PDU, or gives up on a server that has not read anything for [`WRITE_LIMIT`].
async fn send(writer: &mut Writer, bytes: &[u8], addr: &str) -> Result<(), RdpError> {
    match tokio::time::timeout(WRITE_LIMIT, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_disconnect(&e) => Err(RdpError::Dropped {
            addr: addr.to_owned(),
            stage: "the session",
        }),
        Ok(Err(e)) => Err(RdpError::SessionLost {
            addr: addr.to_owned(),
            detail: e.to_string(),
        }),
        Err(_) => Err(RdpError::Unresponsive {
            addr: addr.to_owned(),
            seconds: WRITE_LIMIT.as_secs(),
        }),
    }
}

/// The redraw requests a server accepts (its General capability set), used to probe liveness.
#[derive(Clone, Copy, Debug)]
struct Redraws {
    refresh_rect: bool,
    suppress_output: bool,
}

impl Redraws {
    fn any(self) -> bool {
        self.refresh_rect || self.suppress_output
    }

    /// The PDUs that ask for `probe`, within a `desktop`-sized screen.
    fn encode(
        self,
        stage: &ActiveStage,
        probe: Probe,
        desktop: (u32, u32),
    ) -> ironrdp_session::SessionResult<Vec<Vec<u8>>> {
        use ironrdp_pdu::geometry::InclusiveRectangle;
        use ironrdp_pdu::rdp::headers::ShareDataPdu;
        use ironrdp_pdu::rdp::refresh_rectangle::RefreshRectanglePdu;

        // The session never accepts a desktop beyond MAX_DESKTOP_SIDE, so these fit.
        let side = |n: u32| u16::try_from(n.max(1)).unwrap_or(MAX_DESKTOP_SIDE);
        let (width, height) = (side(desktop.0), side(desktop.1));
        if probe == Probe::Tile && self.refresh_rect {
            let tile = InclusiveRectangle {
                left: 0,
                top: 0,
                right: width.min(64).saturating_sub(1),
                bottom: height.min(64).saturating_sub(1),
            };
            let mut buf = ironrdp_core::WriteBuf::new();
            stage.encode_static(
                &mut buf,
                ShareDataPdu::RefreshRectangle(RefreshRectanglePdu {
                    areas_to_refresh: vec![tile],
                }),
            )?;
            return Ok(vec![buf.into_inner()]);
        }
        stage.request_full_redraw(width, height, self.refresh_rect, self.suppress_output)
    }
}

/// Refuses a desktop size no real screen has: a hostile server must not make us allocate
/// gigabytes.
pub(super) fn check_desktop(addr: &str, width: u16, height: u16) -> Result<(), RdpError> {
    if width == 0 || height == 0 || width > MAX_DESKTOP_SIDE || height > MAX_DESKTOP_SIDE {
        return Err(RdpError::Protocol {
            addr: addr.to_owned(),
            stage: "the session",
            detail: format!(
                "the server granted a {width}x{height} desktop; at most \
                 {MAX_DESKTOP_SIDE}x{MAX_DESKTOP_SIDE} is accepted"
            ),
        });
    }
    Ok(())
}

/// The local clipboard's next request; pending forever in a session without one.
async fn next_clipboard(
    clipboard: &mut Option<super::Clipboard>,
) -> ironrdp_cliprdr::backend::ClipboardMessage {
    match clipboard {
        Some(clipboard) => clipboard.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn active_stage(result: ConnectionResult) -> ActiveStage {
    ActiveStageBuilder {
        static_channels: result.static_channels,
        user_channel_id: result.user_channel_id,
        io_channel_id: result.io_channel_id,
        message_channel_id: result.message_channel_id,
        share_id: result.share_id,
        compression_type: result.compression_type,
        enable_server_pointer: result.enable_server_pointer,
        pointer_software_rendering: result.pointer_software_rendering,
    }
    .build()
}

/// Deactivation-Reactivation Sequence (MS-RDPBCGR 1.3.1.3): the server tears the share down
/// (usually to change the desktop size) and builds it again. The image is replaced at the new
/// size; the session keeps its bulk decompression history.
async fn reactivate(
    reader: &mut Reader,
    writer: &mut Writer,
    activation: &ironrdp_connector::connection_activation::ConnectionActivationFactory,
    stage: &mut ActiveStage,
    frame: &SharedFrame,
    addr: &str,
) -> Result<(), RdpError> {
    let mut sequence = activation.create();
    let mut buf = ironrdp_core::WriteBuf::new();
    loop {
        let written = ironrdp_tokio::single_sequence_step_read(reader, &mut sequence, &mut buf)
            .await
            .map_err(|e| super::connect::classify(e, addr, "", "reactivation"))?;
        if written.size().is_some() {
            writer
                .write_all(buf.filled())
                .await
                .map_err(|e| RdpError::SessionLost {
                    addr: addr.to_owned(),
                    detail: e.to_string(),
                })?;
        }
        match sequence.connection_activation_state() {
            ConnectionActivationState::Finalized {
                desktop_size,
                share_id,
                static_channel_chunk_size,
                enable_server_pointer,
                pointer_software_rendering,
                window_support_level,
                ..
            } => {
                check_desktop(addr, desktop_size.width, desktop_size.height)?;
                info!(
                    width = desktop_size.width,
                    height = desktop_size.height,
                    "reactivated"
                );
                frame
                    .lock()
                    .replace(desktop_size.width, desktop_size.height);
                let valid = stage.reactivate(
                    sequence.io_channel_id(),
                    sequence.user_channel_id(),
                    share_id,
                    enable_server_pointer,
                    pointer_software_rendering,
                    static_channel_chunk_size,
                );
                if !valid {
                    return Err(RdpError::Protocol {
                        addr: addr.to_owned(),
                        stage: "reactivation",
                        detail: format!(
                            "invalid virtual channel chunk size {static_channel_chunk_size}"
                        ),
                    });
                }
                stage.set_window_support_level(window_support_level);
                return Ok(());
            }
            ConnectionActivationState::Redirected { .. } => {
                return Err(RdpError::SessionLost {
                    addr: addr.to_owned(),
                    detail: "the server redirected the session to another host, which ecsrdp \
                             does not follow"
                        .into(),
                })
            }
            _ => {}
        }
    }
}

/// Asks for a new desktop size over Display Control (MS-RDPEDISP 2.2.2.2).
async fn request_resize(
    stage: &mut ActiveStage,
    writer: &mut Writer,
    width: u32,
    height: u32,
    scale_percent: u32,
) -> std::io::Result<Resize> {
    use ironrdp_displaycontrol::pdu::MonitorLayoutEntry;
    let (width, height) = MonitorLayoutEntry::adjust_display_size(width, height);
    // DesktopScaleFactor must lie in 100..=500 (MS-RDPEDISP 2.2.2.2.1); a screen outside that
    // range still gets the nearest, not a refusal that would stop the desktop from resizing.
    let scale_percent = scale_percent.clamp(100, 500);
    match stage.encode_resize(width, height, Some(scale_percent), None) {
        Some(Ok(bytes)) => {
            debug!(width, height, "asking the server to resize");
            writer.write_all(&bytes).await.map(|()| Resize::Sent)
        }
        Some(Err(e)) => {
            warn!(error = %e.report(), "cannot encode a resize request");
            Ok(Resize::Refused)
        }
        // Not registered at all: this server will never resize.
        None if stage.display_control_ready().is_none() => Ok(Resize::Refused),
        None => {
            debug!("display control is not open yet");
            Ok(Resize::NotYet)
        }
    }
}

/// Tells the server we are leaving (MS-RDPBCGR 1.3.1.4.1); a failure here changes nothing for
/// the user, who is leaving anyway.
async fn shutdown(
    outputs: ironrdp_session::SessionResult<Vec<ActiveStageOutput>>,
    writer: &mut Writer,
) {
    if let Ok(outputs) = outputs {
        for output in outputs {
            if let ActiveStageOutput::ResponseFrame(bytes) = output {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}
