//! One server PDU into the session's canvas: IronRDP's processing, inside a panic guard, the bound on
//! what a server may grant, and the damage. The fuzz target and the replays run exactly this.

use ironrdp_session::{ActiveStage, ActiveStageOutput};
use tracing::debug;

use super::ending::error_info;
use super::ignorable::ignorable;
use crate::rdp::contain::contained;
use crate::rdp::desktop::check_desktop;
use crate::rdp::error::RdpError;
use crate::rdp::graphics;
use crate::render::{Canvas, Rect};

/// What one server PDU did.
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
pub fn decode(
    stage: &mut ActiveStage,
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
    let mut damage: Vec<Rect> = stage.take_damage_regions().iter().map(Rect::from).collect();
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
    Ok(Some(Decoded {
        outputs,
        damaged: painted || !damage.is_empty(),
        error_info: None,
    }))
}
