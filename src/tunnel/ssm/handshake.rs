//! The agent's handshake (the plugin's `handshakemessage.go`): the agent asks for actions
//! (the session type, KMS encryption), the client says which it performed, the agent says the
//! handshake is complete. Pure: JSON in, JSON out.

use serde::{Deserialize, Serialize};

/// The plugin version this client speaks as. The agent multiplexes port sessions with smux for
/// clients from 1.1.70 on; this client does.
pub const CLIENT_VERSION: &str = "1.2.0.0";

/// Agents after this version multiplex port sessions with smux (this one and older ones
/// forward one connection's bytes as they are): the plugin's comparison is strict.
const SMUX_AGENT: [u32; 4] = [3, 0, 196, 0];

/// Agents after this version no longer expect smux keepalives: this one and older multiplexing
/// agents close a session that sent no frame for 30 s, so the client sends one every 10 s, as
/// smux's defaults do.
const NO_KEEPALIVE_AGENT: [u32; 4] = [3, 1, 1511, 0];

/// The agent's handshake request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub agent_version: String,
    #[serde(default)]
    pub requested_client_actions: Vec<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Action {
    pub action_type: String,
    #[serde(default)]
    pub action_parameters: serde_json::Value,
}

/// What the agent asked that this client cannot do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the agent's handshake request is not one this client reads: {0}")]
    Unreadable(String),
    #[error(
        "your account's Session Manager preferences require KMS encryption (key {0}), which \
         ecsrdp does not do yet; turn it off in Systems Manager > Session Manager > Preferences \
         for the account, or use another way in (--tunnel eice, or your own tunnel with --via)"
    )]
    Kms(String),
    #[error("the agent offers a {0} session, not port forwarding")]
    SessionType(String),
}

/// The agent's request, read.
pub fn parse_request(payload: &[u8]) -> Result<Request, HandshakeError> {
    let request: Request =
        serde_json::from_slice(payload).map_err(|e| HandshakeError::Unreadable(e.to_string()))?;
    for action in &request.requested_client_actions {
        match action.action_type.as_str() {
            "KMSEncryption" => {
                let key = action.action_parameters["KMSKeyId"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned();
                return Err(HandshakeError::Kms(key));
            }
            "SessionType" => {
                let kind = action.action_parameters["SessionType"]
                    .as_str()
                    .unwrap_or("");
                if kind != "Port" {
                    return Err(HandshakeError::SessionType(kind.to_owned()));
                }
            }
            _ => {}
        }
    }
    Ok(request)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    client_version: &'a str,
    processed_client_actions: Vec<Processed<'a>>,
    errors: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Processed<'a> {
    action_type: &'a str,
    /// 1 success, 3 unsupported.
    action_status: u8,
}

/// The client's answer: every requested action done (the session type needs nothing of the
/// client), unknown ones unsupported.
pub fn response(request: &Request) -> Vec<u8> {
    let processed = request
        .requested_client_actions
        .iter()
        .map(|action| Processed {
            action_type: &action.action_type,
            action_status: if action.action_type == "SessionType" {
                1
            } else {
                3
            },
        })
        .collect();
    let response = Response {
        client_version: CLIENT_VERSION,
        processed_client_actions: processed,
        errors: Vec::new(),
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

/// Whether the agent multiplexes the port session with smux.
pub fn uses_smux(agent_version: &str) -> bool {
    version(agent_version) > SMUX_AGENT
}

/// Whether the agent multiplexes and expects smux keepalives.
pub fn wants_keepalive(agent_version: &str) -> bool {
    uses_smux(agent_version) && version(agent_version) <= NO_KEEPALIVE_AGENT
}

/// `3.0.196.0` as numbers; what does not parse counts as 0.
fn version(text: &str) -> [u32; 4] {
    let mut version = [0; 4];
    for (slot, part) in version.iter_mut().zip(text.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    version
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_session_is_accepted_and_kms_refused_with_advice() {
        let port = br#"{"AgentVersion":"3.3.40.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"3389"}}}]}"#;
        let request = parse_request(port).unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&response(&request)).unwrap();
        assert_eq!(answer["ClientVersion"], CLIENT_VERSION);
        assert_eq!(answer["ProcessedClientActions"][0]["ActionStatus"], 1);
        let kms = br#"{"AgentVersion":"3.3.40.0","RequestedClientActions":[{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:aws:kms:k"}}]}"#;
        assert_eq!(
            parse_request(kms).unwrap_err(),
            HandshakeError::Kms("arn:aws:kms:k".into())
        );
    }

    #[test]
    fn smux_after_agent_3_0_196_and_keepalives_up_to_3_1_1511() {
        assert!(!uses_smux("3.0.196.0"));
        assert!(uses_smux("3.0.196.1"));
        assert!(uses_smux("3.3.40.0"));
        assert!(!uses_smux("2.3.1"));
        assert!(!uses_smux("garbage"));
        assert!(wants_keepalive("3.0.197.0"));
        assert!(wants_keepalive("3.1.1511.0"));
        assert!(!wants_keepalive("3.1.1512.0"));
        assert!(!wants_keepalive("2.3.1"));
    }
}
