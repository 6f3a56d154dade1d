//! The Deactivation-Reactivation Sequence (MS-RDPBCGR 1.3.1.3), which a server runs to change
//! the desktop size under a live session.

use ironrdp_connector::connection_activation::{
    ConnectionActivationFactory, ConnectionActivationState,
};
use ironrdp_session::ActiveStage;
use ironrdp_tokio::FramedWrite as _;
use tracing::info;

use crate::rdp::connect::{Reader, Writer};
use crate::rdp::desktop::check_desktop;
use crate::rdp::error::{classify, RdpError};
use crate::render::Canvas;

/// Deactivation-Reactivation Sequence (MS-RDPBCGR 1.3.1.3): the server tears the share down
/// (usually to change the desktop size) and builds it again. The image is replaced at the new
/// size; the session keeps its bulk decompression history.
pub(super) async fn reactivate(
    reader: &mut Reader,
    writer: &mut Writer,
    activation: &ConnectionActivationFactory,
    stage: &mut ActiveStage,
    canvas: &mut Canvas,
    addr: &str,
) -> Result<(), RdpError> {
    let mut sequence = activation.create();
    let mut buf = ironrdp_core::WriteBuf::new();
    loop {
        let written = ironrdp_tokio::single_sequence_step_read(reader, &mut sequence, &mut buf)
            .await
            .map_err(|e| classify(e, addr, "", "reactivation"))?;
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
                canvas.replace(desktop_size.width, desktop_size.height);
                canvas.show(&[]);
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
                return Err(RdpError::Redirected {
                    addr: addr.to_owned(),
                })
            }
            _ => {}
        }
    }
}
