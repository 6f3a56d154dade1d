//! Server PDUs the session passes over because IronRDP's session would end on them as
//! "unhandled": the bell (Play Sound, MS-RDPBCGR 2.2.9.1.1.5), the IME status (2.2.8.2.2) and
//! status information during a long logon (2.2.5.2). A session must not end because the server
//! rang its bell: xrdp does when an X client beeps, and so does Windows.
//!
//! Checked before the session sees a slow-path PDU; fast-path output never carries these.

use ironrdp_pdu::mcs::decode_send_data_indication;
use ironrdp_pdu::rdp::headers::{decode_io_channel, IoChannelPdu, ShareDataPdu};

/// The name of the PDU in `frame` (one X.224 frame) if it is one to pass over.
pub fn ignorable(frame: &[u8], io_channel: u16) -> Option<&'static str> {
    let indication = decode_send_data_indication(frame).ok()?;
    if indication.channel_id != io_channel {
        return None;
    }
    // Several Share Control PDUs may share one frame; only a frame holding just this one is
    // passed over, so that nothing beside it is lost.
    let length = indication.user_data.get(..2)?;
    if usize::from(u16::from_le_bytes([length[0], length[1]])) != indication.user_data.len() {
        return None;
    }
    match decode_io_channel(indication).ok()? {
        IoChannelPdu::Data(data) => match data.pdu {
            ShareDataPdu::PlaySound(_) => Some("Play Sound"),
            ShareDataPdu::SetKeyboardImeStatus(_) => Some("Set Keyboard IME Status"),
            ShareDataPdu::StatusInfoPdu(_) => Some("Status Info"),
            _ => None,
        },
        _ => None,
    }
}

/// PDUTYPE_DATAPDU, in the low bits of the Share Control Header's pduType.
const DATA_PDU: u16 = 0x7;
/// PACKET_COMPRESSED in the Share Data Header's compressedType.
const COMPRESSED: u8 = 0x20;
/// PDUTYPE2_SAVE_SESSION_INFO (MS-RDPBCGR 2.2.10.1), which carries the auto-reconnect cookie.
const SAVE_SESSION_INFO: u8 = 0x26;

/// The pduType2 and the whole Share Control PDU of an uncompressed Share Data PDU on the I/O
/// channel in `frame`, read by hand (pduType at byte 2, pduType2 at 14, compressedType at 15:
/// MS-RDPBCGR 2.2.8.1.1.1.1-2), for what must be known about a PDU without decoding all of it.
pub(super) fn share_data(frame: &[u8], io_channel: u16) -> Option<(u8, Vec<u8>)> {
    let indication = decode_send_data_indication(frame).ok()?;
    if indication.channel_id != io_channel {
        return None;
    }
    let data = &indication.user_data;
    let pdu_type = u16::from_le_bytes([*data.get(2)?, *data.get(3)?]);
    if pdu_type & 0xF != DATA_PDU || data.get(15)? & COMPRESSED != 0 {
        return None;
    }
    Some((*data.get(14)?, data.to_vec()))
}

/// Whether `frame` is a Save Session Info PDU, whose auto-reconnect cookie is a credential for
/// the session: a recording of the session leaves it out.
pub(super) fn holds_reconnect_cookie(frame: &[u8], io_channel: u16) -> bool {
    share_data(frame, io_channel).is_some_and(|(pdu_type2, _)| pdu_type2 == SAVE_SESSION_INFO)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use ironrdp_core::encode_vec;
    use ironrdp_pdu::codecs::rfx::FrameAcknowledgePdu;
    use ironrdp_pdu::mcs::{McsMessage, SendDataIndication};
    use ironrdp_pdu::rdp::client_info::CompressionType;
    use ironrdp_pdu::rdp::headers::{
        CompressionFlags, ShareControlHeader, ShareControlPdu, ShareDataHeader, StreamPriority,
    };
    use ironrdp_pdu::x224::X224;

    use super::*;

    const IO: u16 = 1003;

    /// One Share Data PDU as the server frames it on `channel`.
    fn frame(pdu: ShareDataPdu, channel: u16) -> Vec<u8> {
        frame_as(pdu, None, channel)
    }

    /// A Play Sound PDU, which IronRDP decodes but cannot encode: a 4-byte Frame Acknowledge
    /// relabelled (pduType2 at byte 14 of the Share Data header, MS-RDPBCGR 2.2.8.1.1.1.2).
    fn beep(channel: u16) -> Vec<u8> {
        let ack = ShareDataPdu::FrameAcknowledge(FrameAcknowledgePdu { frame_id: 0x1f4 });
        frame_as(ack, Some(0x22), channel)
    }

    fn frame_as(pdu: ShareDataPdu, pdu_type2: Option<u8>, channel: u16) -> Vec<u8> {
        let header = ShareControlHeader {
            share_control_pdu: ShareControlPdu::Data(ShareDataHeader {
                share_data_pdu: pdu,
                stream_priority: StreamPriority::Low,
                compression_flags: CompressionFlags::empty(),
                compression_type: CompressionType::K8,
            }),
            pdu_source: 1002,
            share_id: 0x10000,
        };
        let mut user_data = encode_vec(&header).unwrap();
        if let Some(pdu_type2) = pdu_type2 {
            user_data[14] = pdu_type2;
        }
        encode_vec(&X224(McsMessage::SendDataIndication(SendDataIndication {
            initiator_id: 1002,
            channel_id: channel,
            user_data: Cow::Owned(user_data),
        })))
        .unwrap()
    }

    #[test]
    fn save_session_info_is_known_by_its_type() {
        let ack = ShareDataPdu::FrameAcknowledge(FrameAcknowledgePdu { frame_id: 0x1f4 });
        assert!(holds_reconnect_cookie(
            &frame_as(ack.clone(), Some(0x26), IO),
            IO
        ));
        assert!(!holds_reconnect_cookie(
            &frame_as(ack.clone(), None, IO),
            IO
        ));
        assert!(!holds_reconnect_cookie(
            &frame_as(ack, Some(0x26), IO + 1),
            IO
        ));
    }

    #[test]
    fn set_error_info_gives_its_code() {
        // The Frame Acknowledge's 4-byte body lies where errorInfo does (bytes 18..22).
        let ack = ShareDataPdu::FrameAcknowledge(FrameAcknowledgePdu { frame_id: 0x1f4 });
        let frame = frame_as(ack, Some(0x2F), IO);
        assert_eq!(super::super::ending::error_info(&frame, IO), Some(0x1f4));
        assert_eq!(super::super::ending::error_info(&frame, IO + 1), None);
    }

    #[test]
    fn the_bell_is_passed_over() {
        assert_eq!(ignorable(&beep(IO), IO), Some("Play Sound"));
    }

    #[test]
    fn everything_else_goes_to_the_session() {
        assert_eq!(ignorable(&beep(IO + 1), IO), None, "another channel");
        assert_eq!(
            ignorable(&frame(ShareDataPdu::ShutdownDenied, IO), IO),
            None
        );
        assert_eq!(ignorable(b"\x03\x00\x00\x04", IO), None, "garbage");
        let mut cut = beep(IO);
        cut.truncate(cut.len() - 1);
        assert_eq!(ignorable(&cut, IO), None, "truncated");
    }
}
