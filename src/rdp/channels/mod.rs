//! The channels a session opens beside the desktop: the clipboard (MS-RDPECLIP), a shared drive
//! (MS-RDPEFS), and the dynamic channels (MS-RDPEDYC) that carry Display Control and the
//! graphics pipeline.

pub mod clipboard;
pub mod drive;
mod drive_thread;

use ironrdp_displaycontrol::client::DisplayControlClient;
use ironrdp_dvc::DrdynvcClient;

pub use self::clipboard::{Clipboard, LocalClipboard};
pub use self::drive_thread::DriveAnswers;
use super::config::Codecs;
use super::graphics::{self, DecoderChoice};

/// The dynamic channels ecsrdp opens: Display Control (MS-RDPEDISP) lets the window ask the
/// server to resize the desktop; the graphics pipeline (MS-RDPEGFX) carries H.264 and the
/// other EGFX codecs, H.264 decoded by `decoder`.
pub fn dynamic_channels(codecs: Codecs, decoder: DecoderChoice) -> DrdynvcClient {
    let drdynvc =
        DrdynvcClient::new().with_dynamic_channel(DisplayControlClient::new(|_| Ok(Vec::new())));
    if codecs == Codecs::H264 {
        drdynvc.with_dynamic_channel(graphics::pipeline(decoder))
    } else {
        drdynvc
    }
}
