//! Surface commands (MS-RDPBCGR 2.2.9.2): their RemoteFX bits are ecsrdp's (painted by
//! [`super::RemoteFx`]); the end of each frame is acknowledged, as IronRDP would (its session
//! reports a frame marker as damage to the image's first pixel, which the image does not have:
//! RemoteFX is not in it); the other codecs' commands go back to IronRDP re-encoded.

use ironrdp_core::encode_vec;
use ironrdp_pdu::fast_path::{FastPathUpdate, UpdateCode};
use ironrdp_pdu::rdp::capability_sets::CODEC_ID_REMOTEFX;
use ironrdp_pdu::surface_commands::{FrameAction, SurfaceCommand};
use tracing::warn;

use super::pdus;

/// One run of a surface-commands update's commands.
pub enum Command<'a> {
    /// RemoteFX data whose frames go at this point of the desktop.
    RemoteFx { at: (u32, u32), data: &'a [u8] },
    /// The end of the server's frame with this ID: it waits for the client to acknowledge it
    /// (MS-RDPBCGR 2.2.9.2.3).
    FrameEnd(u32),
    /// Fast-path PDUs with the other commands (other codecs), for IronRDP's session.
    Theirs(Vec<Vec<u8>>),
}

/// A whole surface-commands update's commands in runs: RemoteFX bits for ecsrdp, the rest for
/// IronRDP. An update that does not parse ends the session, as it does in IronRDP's; surface
/// bits for an empty rectangle are passed over (IronRDP's arithmetic on them overflows).
pub fn commands(update: &[u8]) -> Result<Vec<Command<'_>>, String> {
    let commands = match FastPathUpdate::decode_with_code(update, UpdateCode::SurfaceCommands) {
        Ok(FastPathUpdate::SurfaceCommands(commands)) => commands,
        Ok(_) => Vec::new(),
        Err(e) => return Err(format!("a surface-commands update is malformed: {e}")),
    };
    let mut runs = Vec::new();
    let mut theirs = Vec::new();
    for command in commands {
        match command {
            SurfaceCommand::SetSurfaceBits(bits) | SurfaceCommand::StreamSurfaceBits(bits)
                if Some(CODEC_ID_REMOTEFX)
                    == ironrdp_pdu::rdp::capability_sets::CodecId::from_u8(
                        bits.extended_bitmap_data.codec_id,
                    ) =>
            {
                if !theirs.is_empty() {
                    runs.push(Command::Theirs(reencoded(std::mem::take(&mut theirs))));
                }
                let at = (
                    u32::from(bits.destination.left),
                    u32::from(bits.destination.top),
                );
                runs.push(Command::RemoteFx {
                    at,
                    data: bits.extended_bitmap_data.data,
                });
            }
            SurfaceCommand::FrameMarker(marker) => {
                if marker.frame_action == FrameAction::End {
                    if !theirs.is_empty() {
                        runs.push(Command::Theirs(reencoded(std::mem::take(&mut theirs))));
                    }
                    runs.push(Command::FrameEnd(marker.frame_id.unwrap_or(0)));
                }
            }
            SurfaceCommand::SetSurfaceBits(bits) | SurfaceCommand::StreamSurfaceBits(bits)
                if bits.destination.right <= bits.destination.left
                    || bits.destination.bottom <= bits.destination.top =>
            {
                warn!("surface bits for an empty rectangle; passed over");
            }
            other => theirs.push(other),
        }
    }
    if !theirs.is_empty() {
        runs.push(Command::Theirs(reencoded(theirs)));
    }
    Ok(runs)
}

/// Surface commands in fast-path PDUs (fragments, if they are large), each in a
/// surface-commands update of its own: IronRDP's session reports an update's damage as the
/// union of its commands' rectangles, which may cover pixels ecsrdp painted and IronRDP's image
/// does not have.
pub(super) fn reencoded(commands: Vec<SurfaceCommand<'_>>) -> Vec<Vec<u8>> {
    commands
        .into_iter()
        .flat_map(
            |command| match encode_vec(&FastPathUpdate::SurfaceCommands(vec![command])) {
                Ok(data) => pdus(UpdateCode::SurfaceCommands, &data),
                Err(_) => {
                    warn!("a surface command could not be passed on; dropped");
                    Vec::new()
                }
            },
        )
        .collect()
}
