//! Systems Manager, for Session Manager as a way in: whether the instance is managed and its
//! agent online (`DescribeInstanceInformation`), and port-forwarding sessions to it
//! (`StartSession` with `AWS-StartPortForwardingSession`, `TerminateSession`). The data channel
//! itself is `tunnel::ssm`'s.

use aws_sdk_ssm::types::InstanceInformationStringFilter;
use zeroize::Zeroizing;

use super::{Aws, AwsError};

/// The document that forwards a port of the instance (AWS's own; it needs no setup).
pub const PORT_FORWARDING_DOCUMENT: &str = "AWS-StartPortForwardingSession";

/// A session `StartSession` started: what opens its data channel (`tunnel::ssm::open`).
pub struct SsmSession {
    pub session_id: String,
    pub stream_url: String,
    /// Opens the channel to whoever holds it, for a while: never logged.
    pub token: Zeroizing<String>,
}

impl std::fmt::Debug for SsmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsmSession")
            .field("session_id", &self.session_id)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What Systems Manager knows of an instance's agent.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ManagedInstance {
    /// `Online`, `ConnectionLost` or `Inactive`.
    pub ping_status: String,
    pub agent_version: String,
}

impl ManagedInstance {
    pub fn online(&self) -> bool {
        self.ping_status == "Online"
    }
}

/// The instance's registration with Systems Manager, or `None` when its agent never
/// registered (no instance profile allowing it, or no agent).
pub async fn managed_instance(
    aws: &Aws,
    instance_id: &str,
) -> Result<Option<ManagedInstance>, AwsError> {
    let answer = aws
        .ssm
        .describe_instance_information()
        .filters(
            InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .values(instance_id)
                .build()
                .map_err(|e| AwsError::Unreachable {
                    action: "ssm:DescribeInstanceInformation",
                    detail: e.to_string(),
                })?,
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:DescribeInstanceInformation", e))?;
    Ok(answer
        .instance_information_list()
        .iter()
        .find(|info| info.instance_id() == Some(instance_id))
        .map(|info| ManagedInstance {
            ping_status: info
                .ping_status()
                .map_or_else(|| "Unknown".to_owned(), |s| s.as_str().to_owned()),
            agent_version: info.agent_version().unwrap_or_default().to_owned(),
        }))
}

/// Starts a session forwarding `port` of `instance_id`; what opens its data channel.
pub async fn start_session(
    aws: &Aws,
    instance_id: &str,
    port: u16,
) -> Result<SsmSession, AwsError> {
    let answer = aws
        .ssm
        .start_session()
        .target(instance_id)
        .document_name(PORT_FORWARDING_DOCUMENT)
        .parameters("portNumber", vec![port.to_string()])
        .reason("ecsrdp")
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ssm:StartSession", e))?;
    stream(
        answer.session_id(),
        answer.stream_url(),
        answer.token_value(),
        "ssm:StartSession",
    )
}

/// Ends a session, so that it does not linger as connected in Session Manager's history;
/// failures are only logged (the session is over for ecsrdp either way).
pub async fn terminate_session(aws: &Aws, session_id: &str) {
    if let Err(error) = aws
        .ssm
        .terminate_session()
        .session_id(session_id)
        .send()
        .await
    {
        let error = AwsError::from_sdk("ssm:TerminateSession", error);
        tracing::debug!(%error, session_id, "the session could not be terminated");
    }
}

fn stream(
    session_id: Option<&str>,
    url: Option<&str>,
    token: Option<&str>,
    action: &'static str,
) -> Result<SsmSession, AwsError> {
    match (session_id, url, token) {
        (Some(session_id), Some(url), Some(token)) => Ok(SsmSession {
            session_id: session_id.to_owned(),
            stream_url: url.to_owned(),
            token: Zeroizing::new(token.to_owned()),
        }),
        _ => Err(AwsError::Service {
            action,
            code: "IncompleteAnswer".into(),
            message: "the answer has no session ID, stream URL or token".into(),
        }),
    }
}
