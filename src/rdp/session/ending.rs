//! How a server ends a session (MS-RDPBCGR 1.3.1.4): the reason it gives in a Set Error Info
//! PDU (2.2.5.1.1) decides the words, and whether the user ended it (exit 0) or something else
//! did (an administrator, a time limit, another connection: an error of its own).
//!
//! The code is read here by hand because IronRDP's session turns it into English text (and
//! fails on a code it does not list), while the exit code needs the number.

use super::ignorable::share_data;

/// PDUTYPE2_SET_ERROR_INFO_PDU, the Share Data Header's pduType2.
const SET_ERROR_INFO: u8 = 0x2F;

/// The errorInfo of a Set Error Info PDU in `frame` (one X.224 frame on the I/O channel), when
/// it is one and says something (0 is ERRINFO_NONE): bytes 18..22 of the Share Control PDU
/// (MS-RDPBCGR 2.2.5.1.1).
pub fn error_info(frame: &[u8], io_channel: u16) -> Option<u32> {
    let (pdu_type2, data) = share_data(frame, io_channel)?;
    if pdu_type2 != SET_ERROR_INFO {
        return None;
    }
    let code = u32::from_le_bytes(data.get(18..22)?.try_into().ok()?);
    (code != 0).then_some(code)
}

/// Who ended the session, in words for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The user, from inside the session (signing out, Start > Disconnect): not a failure.
    ByUser(String),
    /// The server, an administrator, a limit or another connection: said, with a non-zero exit.
    Server(String),
}

/// What the server's `code` means for the user.
pub fn ending(code: u32) -> Ending {
    let server = |words: &str| Ending::Server(format!("{words} (error info 0x{code:08X})"));
    match code {
        0x0C => Ending::ByUser("you signed out; the session has ended".to_owned()),
        0x0B => Ending::ByUser(
            "you disconnected from inside the session; it is still running on the server: \
             connect again to resume it"
                .to_owned(),
        ),
        0x01 => server(
            "an administrator disconnected the session; it is still running: connect again to \
             resume it",
        ),
        0x02 => server("an administrator signed the session out"),
        0x03 => server(
            "the session was idle longer than the server's idle-session limit; it may still be \
             running: connect again to resume it",
        ),
        0x04 => server("the session reached the server's limit on session time"),
        0x05 => server(
            "another connection took the session over (someone, or another ecsrdp, logged on as \
             the same user); ecsrdp does not take it back, which would only take turns",
        ),
        0x06 => server("the server ran out of memory"),
        0x07 => server("the server denied the connection"),
        0x09 => server(
            "the account may not log on to this server remotely: add it to the Remote Desktop \
             Users group",
        ),
        0x0A => server("the server requires credentials typed for this connection"),
        0x0F..=0x18 => server(
            "a part of Windows behind the remote session failed (the display driver, DWM, \
             Winlogon or CSRSS); connect again",
        ),
        0x19 => server("the server is shutting down"),
        0x1A => server("the server is restarting: connect again once it is back"),
        0x100..=0x10A => server(
            "the server has no Remote Desktop licence for this connection (its licensing grace \
             period may have ended; without RDS licences Windows Server allows two \
             administrative sessions)",
        ),
        0x400..=0x4FF => server("the connection broker could not place the session"),
        0x10C9.. => server(
            "the server rejected data ecsrdp sent; this may be a bug in ecsrdp: report it with \
             the output of -vv",
        ),
        _ => server("the server ended the session for a reason ecsrdp does not know"),
    }
}

/// The ending when the server gave no code, only IronRDP's reason: a disconnect the user asked
/// for from inside, or anything else.
pub fn ending_without_code(reason: &ironrdp_session::GracefulDisconnectReason) -> Ending {
    use ironrdp_session::GracefulDisconnectReason as Reason;
    match reason {
        Reason::UserInitiated => Ending::ByUser("the session was ended from inside it".to_owned()),
        Reason::ServerInitiated => {
            Ending::Server("the server ended the session without giving a reason".to_owned())
        }
        Reason::Other(reason) => Ending::Server(format!("the server ended the session: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_own_end_is_not_a_failure_and_the_rest_are() {
        assert!(matches!(ending(0x0C), Ending::ByUser(_)));
        assert!(matches!(ending(0x0B), Ending::ByUser(_)));
        for code in [
            0x01, 0x02, 0x03, 0x05, 0x09, 0x19, 0x104, 0x401, 0x10C9, 0x77,
        ] {
            let Ending::Server(words) = ending(code) else {
                panic!("{code:#x} taken for the user's own end");
            };
            assert!(
                words.ends_with(&format!("(error info 0x{code:08X})")),
                "{words}"
            );
        }
        let Ending::Server(words) = ending(0x05) else {
            unreachable!()
        };
        assert!(words.contains("another connection took the session over"));
    }

    #[test]
    fn a_frame_other_than_set_error_info_has_no_code() {
        assert_eq!(error_info(&[], 1003), None);
        assert_eq!(error_info(&[3, 0, 0, 4], 1003), None);
    }
}
