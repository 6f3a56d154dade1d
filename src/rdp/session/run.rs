//! The active session's loop (MS-RDPBCGR 1.3.1.2 onwards): read PDUs and decode them into the
//! session's canvas, send input, follow resizes and reactivation, probe a quiet server, end cleanly.

use std::time::Duration;

use ironrdp_connector::ConnectionResult;
use ironrdp_input::Database;
use ironrdp_pdu::input::fast_path::FastPathInputEvent;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_tokio::{split_tokio_framed, FramedWrite as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use super::decode::{decode, Decoded};
use super::ending::{ending, ending_without_code, Ending};
use super::events::{close_requested, Command, FrameSink, Outcome, PointerShape, Wanted};
use super::ignorable::holds_reconnect_cookie;
use super::liveness::{Due, Liveness, Probe};
use super::reactivate::reactivate;
use super::recording::Recording;
use crate::rdp::channels::{self, Clipboard};
use crate::rdp::connect::{Connected, Writer};
use crate::rdp::desktop::MAX_DESKTOP_SIDE;
use crate::rdp::error::{is_disconnect, RdpError};
use crate::rdp::updates::Updates;
use crate::render::Canvas;

/// How long to wait after the last resize before asking the server for it.
const RESIZE_DEBOUNCE: Duration = Duration::from_millis(400);

/// How long after the session starts a server may take to open Display Control before we
/// conclude it has none.
const DISPLAY_CONTROL_GRACE: Duration = Duration::from_secs(5);

/// How long a server may take to rebuild the share after tearing it down (a resize takes a
/// second or two): beyond that it is as stuck as a silent one.
const REACTIVATION_LIMIT: Duration = Duration::from_secs(30);

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

/// Drives the session until it ends; the canvas is resized to whatever the server grants. What
/// the user asks that a new connection must keep goes into `wanted`; on a connection that
/// replaces a lost one, the lock keys in it are sent first (the desktop was asked for when
/// connecting).
pub(super) async fn run_session(
    connected: Connected,
    canvas: &mut Canvas,
    commands: &mut mpsc::Receiver<Command>,
    sink: &impl FrameSink,
    wanted: &mut Wanted,
    deadline: Option<Instant>,
) -> Result<Outcome, RdpError> {
    let Connected {
        framed,
        result,
        addr,
        mut clipboard,
        drive,
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
    let mut recording = Recording::from_env();
    let mut stage = active_stage(result);
    let mut updates = Updates::default();
    let mut input = Database::new();
    let mut pending_resize: Option<(Instant, u32, u32, u32)> = None;
    // A resize asked before Display Control opened: sent by the PDU that opens it.
    let mut awaiting_channel: Option<(u32, u32, u32)> = None;
    // The window scales the desktop because the server cannot (yet) follow its size.
    let mut fitting = false;
    let started = Instant::now();
    let lost = |e: &dyn std::fmt::Display| RdpError::SessionLost {
        addr: addr.clone(),
        detail: e.to_string(),
    };
    if let Some(locks) = wanted.locks {
        let sync = lock_sync(locks);
        send_input(&mut stage, canvas, &mut writer, &[sync], &addr).await?;
    }
    if let Some(clipboard) = clipboard.as_mut() {
        // Nothing to send yet: the channel is not open.
        let _ = clipboard.focus(wanted.focused);
    }

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
                if let Some(file) = recording.as_ref() {
                    let cookie = action == ironrdp_pdu::Action::X224
                        && holds_reconnect_cookie(&payload, io_channel);
                    if !cookie && !file.record(&payload) {
                        recording = None;
                    }
                }
                let Some(Decoded { outputs, damaged, error_info }) = decode(
                    &mut stage,
                    &mut updates,
                    canvas,
                    io_channel,
                    action,
                    &payload,
                    reader.last_read_at(),
                    &addr,
                )?
                else {
                    continue;
                };
                if let Some((width, height, scale)) = awaiting_channel {
                    if stage.display_control_ready() == Some(true) {
                        awaiting_channel = None;
                        pending_resize = Some((Instant::now(), width, height, scale));
                    }
                }
                if damaged {
                    sink.frame_ready();
                }
                if let Some(code) = error_info {
                    return ended_by_server(ending(code), &addr);
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
                            return Err(RdpError::Redirected { addr: addr.clone() });
                        }
                        ActiveStageOutput::PointerDefault => sink.pointer(PointerShape::Default),
                        ActiveStageOutput::PointerHidden => sink.pointer(PointerShape::Hidden),
                        ActiveStageOutput::PointerBitmap(bitmap) => {
                            sink.pointer(PointerShape::Bitmap(bitmap));
                        }
                        ActiveStageOutput::PointerPosition { .. } => {}
                        ActiveStageOutput::Terminate(reason) => {
                            return ended_by_server(ending_without_code(&reason), &addr);
                        }
                        ActiveStageOutput::DeactivateAll => {
                            // Bounded, and the window may still close meanwhile; what it asks
                            // otherwise is kept for after (a resize) or dropped (input).
                            let asked = wanted.layout;
                            updates.reset();
                            let sequence = reactivate(&mut reader, &mut writer, &activation, &mut stage, canvas, &addr);
                            tokio::select! {
                                done = tokio::time::timeout(REACTIVATION_LIMIT, sequence) => {
                                    done.map_err(|_| RdpError::Unresponsive {
                                        addr: addr.clone(),
                                        seconds: REACTIVATION_LIMIT.as_secs(),
                                    })??;
                                }
                                () = close_requested(commands, wanted) => return Ok(Outcome::Closed),
                            }
                            if let (Some(layout), true) = (wanted.layout, wanted.layout != asked) {
                                pending_resize = Some((Instant::now(), layout.width, layout.height, layout.scale_percent));
                            }
                            sink.frame_ready();
                        }
                        other => debug!(?other, "ignored session output"),
                    }
                }
            }
            command = commands.recv() => {
                if let Some(command) = &command {
                    wanted.note(command);
                }
                let events: Vec<FastPathInputEvent> = match command {
                    Some(Command::Input(operations)) => input.apply(operations).into_iter().collect(),
                    Some(Command::ReleaseAll) => input.release_all().into_iter().collect(),
                    // A key this connection never saw pressed (held across a reconnection) is
                    // pressed through the key table, so that its release reaches the server.
                    Some(Command::KeyRepeat(scancode)) if !input.is_key_pressed(scancode) => {
                        input.apply([ironrdp_input::Operation::KeyPressed(scancode)]).into_iter().collect()
                    }
                    Some(Command::KeyRepeat(scancode)) => {
                        // Past IronRDP's key table, which turns a press of a held key into a
                        // release and a press.
                        let (extended, code) = scancode.as_u8();
                        let flags = if extended {
                            ironrdp_pdu::input::fast_path::KeyboardFlags::EXTENDED
                        } else {
                            ironrdp_pdu::input::fast_path::KeyboardFlags::empty()
                        };
                        vec![FastPathInputEvent::KeyboardEvent(flags, code)]
                    }
                    Some(Command::SyncLocks(locks)) => vec![lock_sync(locks)],
                    Some(Command::Focus(focused)) => {
                        let waiting = clipboard.as_mut().and_then(|c| c.focus(focused));
                        if let Some(message) = waiting {
                            let bytes = channels::clipboard::encode(&mut stage, message);
                            if !bytes.is_empty() {
                                send(&mut writer, &bytes, &addr).await?;
                            }
                        }
                        continue;
                    }
                    Some(Command::Resize { width, height, scale_percent }) => {
                        pending_resize = Some((Instant::now() + RESIZE_DEBOUNCE, width, height, scale_percent));
                        awaiting_channel = None;
                        continue;
                    }
                    Some(Command::Close) | None => {
                        shutdown(stage.graceful_shutdown(), &mut writer).await;
                        return Ok(Outcome::Closed);
                    }
                };
                if !events.is_empty() {
                    send_input(&mut stage, canvas, &mut writer, &events, &addr).await?;
                }
            }
            () = drive_answers(drive.as_ref()) => {
                let bytes = channels::drive::answers(&mut stage).map_err(|e| RdpError::Protocol {
                    addr: addr.clone(),
                    stage: "the shared drive",
                    detail: e.to_string(),
                })?;
                if !bytes.is_empty() {
                    send(&mut writer, &bytes, &addr).await?;
                }
            }
            message = next_clipboard(&mut clipboard) => {
                let bytes = channels::clipboard::encode(&mut stage, message);
                if !bytes.is_empty() {
                    send(&mut writer, &bytes, &addr).await?;
                }
            }
            () = sleep_until(check_at), if check_at.is_some() => {
                match liveness.due(Instant::now()) {
                    Some(Due::Probe(probe)) => {
                        let desktop = canvas.size();
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
                        // Display Control opens when the server is ready, and the PDU that opens
                        // it sends the resize (above): no polling. Past a grace, the window
                        // scales the desktop meanwhile rather than cut it off.
                        Resize::NotYet => {
                            awaiting_channel = Some((width, height, scale));
                            if !fitting && started.elapsed() >= DISPLAY_CONTROL_GRACE {
                                fitting = true;
                                sink.resize_refused();
                            } else if !fitting {
                                pending_resize = Some((started + DISPLAY_CONTROL_GRACE, width, height, scale));
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

/// How the session ends when the server ends it: well when the user asked for it from inside,
/// with an error of its own otherwise (never reconnected: not a network loss).
fn ended_by_server(ending: Ending, addr: &str) -> Result<Outcome, RdpError> {
    info!(?ending, "the server ended the session");
    match ending {
        Ending::ByUser(words) => Ok(Outcome::ServerEnded(words)),
        Ending::Server(why) => Err(RdpError::ServerEnded {
            addr: addr.to_owned(),
            why,
        }),
    }
}

/// The Synchronize event that sets the server's lock keys to `locks`.
fn lock_sync(locks: crate::rdp::keyboard::Locks) -> FastPathInputEvent {
    ironrdp_input::synchronize_event(locks.scroll, locks.num, locks.caps, false)
}

/// Encodes input events and sends them.
async fn send_input(
    stage: &mut ActiveStage,
    canvas: &mut Canvas,
    writer: &mut Writer,
    events: &[FastPathInputEvent],
    addr: &str,
) -> Result<(), RdpError> {
    let outputs = stage
        .process_fastpath_input(canvas.image_mut(), events)
        .map_err(|e| RdpError::SessionLost {
            addr: addr.to_owned(),
            detail: e.report().to_string(),
        })?;
    for output in outputs {
        if let ActiveStageOutput::ResponseFrame(bytes) = output {
            send(writer, &bytes, addr).await?;
        }
    }
    Ok(())
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

/// The local clipboard's next request; pending forever in a session without one.
async fn next_clipboard(
    clipboard: &mut Option<Clipboard>,
) -> ironrdp_cliprdr::backend::ClipboardMessage {
    match clipboard {
        Some(clipboard) => clipboard.next().await,
        None => std::future::pending().await,
    }
}

/// The shared drive's thread has answers (never, without a drive).
async fn drive_answers(drive: Option<&channels::DriveAnswers>) {
    match drive {
        Some(drive) => drive.ready().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
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
