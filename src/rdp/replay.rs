//! Replaying a recorded server stream through the session's own decoding, without a server:
//! for the fuzz target, the replay tests and the per-codec benches, which must all run exactly
//! the session's code. Not part of the client: built only with the `replay` feature.

use ironrdp_session::{ActiveStage, ActiveStageBuilder};

use super::channels::dynamic_channels;
use super::config::Codecs;
use super::error::RdpError;
use super::graphics::DecoderChoice;
use super::session::decode;
use super::updates::Updates;
use crate::render::{Canvas, Frame};

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
pub fn replay_stage(codecs: Codecs) -> ActiveStage {
    replay_stage_decoding(codecs, DecoderChoice::Auto)
}

/// [`replay_stage`] with H.264 decoded by `decoder`: for holding the decoders to each other.
pub fn replay_stage_decoding(codecs: Codecs, decoder: DecoderChoice) -> ActiveStage {
    replay_stage_with(dynamic_channels(codecs, decoder))
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
/// the shown frame after each PDU that changed it. Stops at the first error, as a session would, or
/// at a frame cut short; returns how many PDUs were decoded. For the fuzz target, the replay
/// tests and the per-codec benches, which must all run exactly the session's code.
pub fn replay(
    stage: &mut ActiveStage,
    canvas: &mut Canvas,
    mut stream: &[u8],
    mut on_damage: impl FnMut(&mut Frame),
) -> Result<usize, RdpError> {
    let shown = canvas.frame();
    let mut updates = Updates::default();
    let mut decoded = 0;
    while let Ok(Some(info)) = ironrdp_pdu::find_size(stream) {
        if info.length == 0 || info.length > stream.len() {
            break;
        }
        let (pdu, rest) = stream.split_at(info.length);
        stream = rest;
        let outcome = decode(
            stage,
            &mut updates,
            canvas,
            REPLAY_CHANNELS.io,
            info.action,
            pdu,
            None,
            "replay",
        )?;
        decoded += 1;
        if outcome.is_some_and(|o| o.damaged) {
            on_damage(&mut shown.lock());
        }
    }
    Ok(decoded)
}
