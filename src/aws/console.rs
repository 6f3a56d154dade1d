//! `GetConsoleOutput`: the instance's system log, where EC2Launch writes the thumbprint of the
//! RDP certificate at each boot (`RDPCERTIFICATE-THUMBPRINT: <40 hex digits>`, beside
//! `RDPCERTIFICATE-SUBJECTNAME`). AWS's guide has users compare it by hand with what their RDP
//! client shows; ecsrdp compares it during the TLS handshake, so that a first contact is
//! verified, not merely trusted.

use base64::Engine as _;

use super::{Aws, AwsError};

/// The key EC2Launch writes before the thumbprint (EC2Config wrote it in mixed case).
const THUMBPRINT_KEY: &str = "RDPCERTIFICATE-THUMBPRINT:";

/// The thumbprint of the RDP certificate as the instance's latest system log states it
/// (upper-case hex), or `None` when the log names none (not yet written, not a Windows
/// instance, an EC2Launch that wrote zeros).
pub async fn published_thumbprint(
    aws: &Aws,
    ec2_instance_id: &str,
) -> Result<Option<String>, AwsError> {
    let output = aws
        .ec2
        .get_console_output()
        .instance_id(ec2_instance_id)
        .latest(true)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:GetConsoleOutput", e))?;
    let Some(encoded) = output.output() else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.split_whitespace().collect::<String>())
        .unwrap_or_default();
    Ok(thumbprint_in(&String::from_utf8_lossy(&bytes)))
}

/// The last thumbprint the log states: each boot writes one, and only the last boot's
/// certificate is the one the instance presents now.
pub fn thumbprint_in(log: &str) -> Option<String> {
    log.lines().rev().find_map(|line| {
        let at = line.to_ascii_uppercase().find(THUMBPRINT_KEY)?;
        let value = line[at + THUMBPRINT_KEY.len()..].trim();
        let hex = value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit());
        let zeros = value.bytes().all(|b| b == b'0');
        (hex && !zeros).then(|| value.to_ascii_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026/11/30 08:01:12Z: Windows is Ready to use\r\n\
        2026/11/30 08:01:12Z: HOSTNAME: EC2AMAZ-4RT2C1D\r\n\
        2026/11/30 08:01:12Z: RDPCERTIFICATE-SUBJECTNAME: EC2AMAZ-4RT2C1D\r\n\
        2026/11/30 08:01:12Z: RDPCERTIFICATE-THUMBPRINT: 0f3a5c7e9b1d2f4a6c8e0b1d3f5a7c9e1b3d5f7a\r\n";

    #[test]
    fn the_thumbprint_is_read_from_ec2launch_lines() {
        assert_eq!(
            thumbprint_in(LOG).as_deref(),
            Some("0F3A5C7E9B1D2F4A6C8E0B1D3F5A7C9E1B3D5F7A")
        );
    }

    #[test]
    fn the_last_boot_wins_and_junk_is_no_thumbprint() {
        let rebooted = format!(
            "{LOG}2026/12/01 09:00:00Z: RdpCertificate-Thumbprint: \
             AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
        );
        assert_eq!(
            thumbprint_in(&rebooted).as_deref(),
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        );
        assert_eq!(thumbprint_in("Linux version 2.6.16-xenU\n"), None);
        assert_eq!(
            thumbprint_in("RDPCERTIFICATE-THUMBPRINT: A1B2C3D4E5\n"),
            None
        );
        let zeros = format!("RDPCERTIFICATE-THUMBPRINT: {}\n", "0".repeat(40));
        assert_eq!(thumbprint_in(&zeros), None);
    }
}
