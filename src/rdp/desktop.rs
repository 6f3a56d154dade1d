//! The desktop sizes ecsrdp accepts from a server, wherever one is granted (at connection, on
//! reactivation, on a graphics reset).

use super::error::RdpError;

/// The largest desktop side a server may grant (MS-RDPBCGR allows up to 32766, MS-RDPEDISP up
/// to 8192): anything larger is refused rather than allocated.
pub const MAX_DESKTOP_SIDE: u16 = 8192;

/// Refuses a desktop size no real screen has: a hostile server must not make us allocate
/// gigabytes.
pub fn check_desktop(addr: &str, width: u16, height: u16) -> Result<(), RdpError> {
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
