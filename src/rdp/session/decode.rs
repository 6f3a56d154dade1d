//! One server PDU into the session's canvas: IronRDP's processing, inside a panic guard, the bound on
//! what a server may grant, and the damage. The fuzz target and the replays run exactly this.

use ironrdp_pdu::codecs::rfx::FrameAcknowledgePdu;
use ironrdp_pdu::rdp::headers::ShareDataPdu;
use ironrdp_session::{ActiveStage, ActiveStageOutput};
use tracing::debug;

use super::ending::error_info;
use super::ignorable::ignorable;
use crate::rdp::contain::contained;
use crate::rdp::desktop::check_desktop;
use crate::rdp::error::RdpError;
use crate::rdp::graphics;
use crate::rdp::updates::{bitmaps, commands, Command, Run, Step, Updates};
use crate::render::{Canvas, Rect};

/// What one server PDU did.
#[derive(Default)]
pub struct Decoded {
    /// What the session must act on (responses, pointer, termination...).
    pub outputs: Vec<ActiveStageOutput>,
    /// New damage is in the frame.
    pub damaged: bool,
    /// The server is ending the session with this reason (a Set Error Info PDU): the session
    /// ends on it, as the server closes the connection next.
    pub error_info: Option<u32>,
}

/// Decodes one server PDU into the canvas and shows what it changed: IronRDP's processing (no
/// lock held), the bound on what a server may grant, the damage. `None` for a PDU passed over (see [`ignorable`]). Everything a
/// hostile server sends goes through here, which is why the fuzz target calls it too.
#[allow(clippy::too_many_arguments)]
pub fn decode(
    stage: &mut ActiveStage,
    updates: &mut Updates,
    canvas: &mut Canvas,
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
        if let Some(code) = error_info(payload, io_channel) {
            debug!(code, "the server is ending the session");
            return Ok(Some(Decoded {
                outputs: Vec::new(),
                damaged: false,
                error_info: Some(code),
            }));
        }
    }
    if action == ironrdp_pdu::Action::FastPath {
        let split = updates
            .split(payload)
            .map_err(|detail| protocol(addr, detail))?;
        if let Some(steps) = split {
            let mut decoded = Decoded::default();
            for step in steps {
                decoded.add(match step {
                    Step::Theirs(pdu) => {
                        ironrdp(stage, canvas, action, &pdu, received_at, addr, false)?
                    }
                    Step::Surface(update) => {
                        surface_commands(stage, updates, canvas, &update, received_at, addr)?
                    }
                    Step::Bitmap(update) => {
                        bitmap_update(stage, updates, canvas, &update, received_at, addr)?
                    }
                });
            }
            return Ok(Some(decoded));
        }
    }
    ironrdp(stage, canvas, action, payload, received_at, addr, false).map(Some)
}

/// A whole surface-commands update: its RemoteFX bits painted by ecsrdp, its frame ends
/// acknowledged, the rest through IronRDP's session.
fn surface_commands(
    stage: &mut ActiveStage,
    updates: &mut Updates,
    canvas: &mut Canvas,
    update: &[u8],
    received_at: Option<ironrdp_connector::MonotonicInstant>,
    addr: &str,
) -> Result<Decoded, RdpError> {
    let mut decoded = Decoded::default();
    for command in commands(update).map_err(|detail| protocol(addr, detail))? {
        match command {
            Command::RemoteFx { at, data } => {
                decoded.damaged |= paint_remotefx(updates, canvas, at, data, addr)?;
            }
            Command::FrameEnd(id) => decoded.outputs.push(acknowledge(stage, id, addr)?),
            Command::Theirs(pdus) => {
                decoded.add(reencoded(stage, canvas, pdus, received_at, addr, true)?);
            }
        }
    }
    Ok(decoded)
}

/// A whole bitmap update: its planar bitmaps painted by ecsrdp, the rest through IronRDP's
/// session.
fn bitmap_update(
    stage: &mut ActiveStage,
    updates: &mut Updates,
    canvas: &mut Canvas,
    update: &[u8],
    received_at: Option<ironrdp_connector::MonotonicInstant>,
    addr: &str,
) -> Result<Decoded, RdpError> {
    let mut decoded = Decoded::default();
    for run in bitmaps(update, canvas.image_size()) {
        match run {
            Run::Ours(rectangles) => {
                let painted =
                    contained(|| updates.paint_bitmaps(canvas, &rectangles)).map_err(|panic| {
                        protocol(addr, format!("decoding a bitmap failed: {panic}"))
                    })?;
                decoded.damaged |= painted > 0;
            }
            Run::Theirs(pdus) => {
                decoded.add(reencoded(stage, canvas, pdus, received_at, addr, false)?);
            }
        }
    }
    Ok(decoded)
}

/// Fast-path PDUs ecsrdp re-encoded (see [`crate::rdp::updates`]), through IronRDP's
/// session; `surface_commands` as for [`ironrdp`].
fn reencoded(
    stage: &mut ActiveStage,
    canvas: &mut Canvas,
    pdus: Vec<Vec<u8>>,
    received_at: Option<ironrdp_connector::MonotonicInstant>,
    addr: &str,
    surface_commands: bool,
) -> Result<Decoded, RdpError> {
    let mut decoded = Decoded::default();
    for pdu in pdus {
        let action = ironrdp_pdu::Action::FastPath;
        let one = ironrdp(
            stage,
            canvas,
            action,
            &pdu,
            received_at,
            addr,
            surface_commands,
        )?;
        decoded.add(one);
    }
    Ok(decoded)
}

impl Decoded {
    fn add(&mut self, other: Decoded) {
        self.outputs.extend(other.outputs);
        self.damaged |= other.damaged;
    }
}

fn protocol(addr: &str, detail: String) -> RdpError {
    RdpError::Protocol {
        addr: addr.to_owned(),
        stage: "the session",
        detail,
    }
}

/// The client's Frame Acknowledge PDU for the frame `id` (MS-RDPBCGR 2.2.14.3).
fn acknowledge(stage: &ActiveStage, id: u32, addr: &str) -> Result<ActiveStageOutput, RdpError> {
    let mut ack = ironrdp_core::WriteBuf::new();
    let pdu = ShareDataPdu::FrameAcknowledge(FrameAcknowledgePdu { frame_id: id });
    stage.encode_static(&mut ack, pdu).map_err(|e| {
        protocol(
            addr,
            format!("acknowledging a frame failed: {}", e.report()),
        )
    })?;
    Ok(ActiveStageOutput::ResponseFrame(ack.filled().to_vec()))
}

/// RemoteFX bits of a surface command, painted straight into the shown frame (see
/// [`crate::rdp::updates`]); whether any pixel was.
fn paint_remotefx(
    updates: &mut Updates,
    canvas: &mut Canvas,
    at: (u32, u32),
    data: &[u8],
    addr: &str,
) -> Result<bool, RdpError> {
    contained(|| updates.paint_remotefx(canvas, at, data))
        .map_err(|panic| protocol(addr, format!("decoding RemoteFX failed: {panic}")))?
        .map(|px| px > 0)
        .map_err(|detail| protocol(addr, detail))
}

/// One PDU through IronRDP's session: its processing, the bound on what a server may grant,
/// the damage, and the graphics pipeline's ended frames. For `surface_commands` re-encoded by
/// ecsrdp, IronRDP reports "nothing painted" as damage to the image's first pixel, which is
/// not to be copied over what ecsrdp painted there.
fn ironrdp(
    stage: &mut ActiveStage,
    canvas: &mut Canvas,
    action: ironrdp_pdu::Action,
    payload: &[u8],
    received_at: Option<ironrdp_connector::MonotonicInstant>,
    addr: &str,
    surface_commands: bool,
) -> Result<Decoded, RdpError> {
    let size = canvas.image_size();
    let image = canvas.image_mut();
    let processed = contained(|| {
        let outputs = stage.process(image, action, payload, received_at)?;
        // The graphics pipeline is ours (see `graphics`), so IronRDP's session does not
        // composite it: its resets of the image happen here, after each PDU, as the session's
        // would; its pixels are shown below.
        let graphics = stage
            .get_dvc_mut::<graphics::Pipeline>()
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
    if canvas.image_size() != size {
        let (width, height) = canvas.image_size();
        check_desktop(addr, width, height)?;
        canvas.resized_in_place();
    }
    // The exact rectangles each update touched, not their union.
    use ironrdp_pdu::geometry::{InclusiveRectangle, Rectangle as _};
    let nothing = InclusiveRectangle::empty();
    let mut damage: Vec<Rect> = stage
        .take_damage_regions()
        .iter()
        .filter(|r| !(surface_commands && **r == nothing))
        .map(Rect::from)
        .collect();
    if let Some(graphics) = graphics {
        if graphics.reset {
            // The image was cleared for the server's new size: all of it is to be painted.
            let (width, height) = canvas.size();
            damage.push(Rect::new(0, 0, width, height));
        }
        damage.extend(graphics.regions.iter().map(Rect::from));
    }
    if !damage.is_empty() {
        canvas.show(&damage);
    }
    // What the graphics pipeline's ended frames changed, straight from its surfaces.
    let painted = contained(|| {
        stage
            .get_dvc_mut::<graphics::Pipeline>()
            .is_some_and(|mut pipeline| pipeline.processor_mut().show(canvas))
    })
    .map_err(|panic| RdpError::Protocol {
        addr: addr.to_owned(),
        stage: "the session",
        detail: format!("showing the graphics pipeline's surfaces failed: {panic}"),
    })?;
    Ok(Decoded {
        outputs,
        damaged: painted || !damage.is_empty(),
        error_info: None,
    })
}
