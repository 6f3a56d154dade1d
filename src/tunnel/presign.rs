//! The presigned WebSocket URL that opens an EC2 Instance Connect Endpoint tunnel: a GET of
//! `/openTunnel` whose query names the endpoint, the instance's private address and port, signed
//! with SigV4 in the query (service `ec2-instance-connect`, valid 60 s, only `host` signed, the
//! payload hash that of an empty body), as aws-cli's `ec2-instance-connect open-tunnel` does.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;

/// The signing name of EC2 Instance Connect.
const SERVICE: &str = "ec2-instance-connect";

/// How long the presigned URL may wait before it is used.
const VALID_FOR: Duration = Duration::from_secs(60);

/// The request could not be signed (a malformed host or region).
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot sign the tunnel request: {0}")]
pub struct PresignError(String);

/// What a tunnel opens to, through which endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelRequest {
    pub endpoint_id: String,
    pub private_ip: String,
    pub remote_port: u16,
    /// 1..=3600 s; the service's own default (3600) when absent.
    pub max_duration: Option<Duration>,
}

/// The `wss://` (or, for a local endpoint, `ws://`) URL for `request` at `host`, signed at
/// `now`. `host` is what the connection's Host header will carry (a port included).
pub fn presigned_url(
    scheme: &str,
    host: &str,
    request: &TunnelRequest,
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
) -> Result<String, PresignError> {
    let mut query = vec![
        (
            "instanceConnectEndpointId",
            Cow::from(request.endpoint_id.as_str()),
        ),
        ("remotePort", Cow::from(request.remote_port.to_string())),
        ("privateIpAddress", Cow::from(request.private_ip.as_str())),
    ];
    if let Some(limit) = request.max_duration {
        query.push(("maxTunnelDuration", Cow::from(limit.as_secs().to_string())));
    }
    let unsigned = format!("{scheme}://{host}/openTunnel?{}", encode_query(&query));

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(VALID_FOR);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| PresignError(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "GET",
        unsigned.as_str(),
        std::iter::once(("host", host)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| PresignError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| PresignError(e.to_string()))?
        .into_parts();
    let signed: Vec<(&str, Cow<'_, str>)> = instructions
        .params()
        .iter()
        .map(|(name, value)| (*name, Cow::from(value.as_ref())))
        .collect();
    Ok(format!("{unsigned}&{}", encode_query(&signed)))
}

/// `name=value&…`, each value percent-encoded as SigV4 wants (unreserved characters only).
fn encode_query(pairs: &[(&str, Cow<'_, str>)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 percent-encoding of everything but `A-Za-z0-9-_.~`. Hand-written: ten lines, and
/// the SigV4 crate leaves the query's own encoding to the caller.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-cli's own known-answer vector (tests/functional/ec2instanceconnect/test_opentunnel.py).
    #[test]
    fn matches_aws_cli_known_answer() {
        let credentials = Credentials::new("access_key", "secret_key", None, None, "test");
        let request = TunnelRequest {
            endpoint_id: "eice-123".into(),
            private_ip: "10.0.0.0".into(),
            remote_port: 22,
            max_duration: Some(Duration::from_secs(1)),
        };
        // 2020-01-01T01:01:01Z
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_840_461);
        let host = "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com";
        let url = presigned_url("wss", host, &request, &credentials, "us-west-2", now).unwrap();
        assert!(url.starts_with(&format!(
            "wss://{host}/openTunnel?instanceConnectEndpointId=eice-123&remotePort=22&\
             privateIpAddress=10.0.0.0&maxTunnelDuration=1&"
        )));
        assert!(url.contains("X-Amz-Credential=access_key%2F20200101%2Fus-west-2%2Fec2-instance-connect%2Faws4_request"), "{url}");
        assert!(url.contains("X-Amz-Expires=60"), "{url}");
        assert!(url.contains("X-Amz-SignedHeaders=host"), "{url}");
        assert!(
            url.ends_with(
                "X-Amz-Signature=3a56740422a5b9aebd22d860b7a30c729e459a6f71a83bc0de3a2b44b7353f28"
            ),
            "{url}"
        );
    }

    #[test]
    fn a_session_token_is_signed_too() {
        let credentials = Credentials::new(
            "access_key",
            "secret_key",
            Some("tok/en+=".into()),
            None,
            "t",
        );
        let request = TunnelRequest {
            endpoint_id: "eice-123".into(),
            private_ip: "10.0.0.0".into(),
            remote_port: 22,
            max_duration: Some(Duration::from_secs(1)),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_840_461);
        let host = "eice-123.ec2-instance-connect-endpoint.us-west-2.amazonaws.com";
        let url = presigned_url("wss", host, &request, &credentials, "us-west-2", now).unwrap();
        // The signature botocore computes for the same request (an independent implementation).
        assert!(url.contains("X-Amz-Security-Token=tok%2Fen%2B%3D"), "{url}");
        assert!(
            url.contains(
                "X-Amz-Signature=18397d5ad66bc7b8b71e8d8bf150c78b55cce97632d6ca60a00eab9d9d0acaa6"
            ),
            "{url}"
        );
    }
}
