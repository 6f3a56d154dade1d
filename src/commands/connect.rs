//! The connecting commands up to the session: `ecsrdp <cluster>/<instance>` (find the instance,
//! choose the way in, decrypt the password, open the tunnel) and `ecsrdp direct` (any RDP
//! server, the password from the user). Both end in an [`Endpoint`] for [`session`](super::session).

use tracing::info;

use super::error::Error;
use super::locate::{choose_route, locate};
use super::password::decrypt;
use super::session::SystemLog;
use crate::aws::{self, Route};
use crate::cli::{host_port, AwsArgs};
use crate::rdp::{Endpoint, RdpError, TrustKey};
use crate::target::{InstanceRef, Target};
use crate::term::{prompt, status};
use crate::tunnel;

/// `ecsrdp <cluster>/<instance>`: resolve, pick the way in, decrypt, read what the system log
/// says of the RDP certificate, and open the tunnel when the way needs one.
pub(super) async fn instance_endpoint(
    target: &Target,
    args: &AwsArgs,
    timeout: std::time::Duration,
) -> Result<
    (
        Endpoint,
        Option<tunnel::Tunnel>,
        SystemLog,
        Option<SsmSessions>,
    ),
    Error,
> {
    status::phase(match target.instance {
        Some(InstanceRef::Pick) => format!("looking up {}", target.cluster_name()),
        _ => format!("looking up {target}"),
    });
    let (aws, mut located) = locate(target, args, true).await?;
    let route = choose_route(&aws, &mut located.resolved, args).await?;
    let resolved = located.resolved.clone();
    // A security group does not stand between a tunnel and the instance's own loopback.
    if args.via.is_none() {
        for warning in resolved.warnings() {
            status::warn(warning);
        }
    }
    let Some(host) = resolved.address.clone() else {
        let problem = resolved
            .blocking_problem()
            .unwrap_or("the instance has no address");
        return Err(Error::Prerequisite(problem.to_owned()));
    };
    let port = resolved.port;
    let password = decrypt(&aws, located, args).await?;
    let log = match aws::published_thumbprint(&aws, &resolved.ec2_instance_id).await {
        Ok(Some(thumbprint)) => SystemLog::Thumbprint(thumbprint),
        Ok(None) => SystemLog::Silent,
        Err(error) => SystemLog::Unreadable(error.to_string()),
    };
    let mut ssm_sessions = None;
    let tunnel = match route {
        Route::Direct => None,
        Route::Ssm(managed) => {
            info!(instance = %resolved.ec2_instance_id, agent = %managed.agent_version, "opening a Session Manager session");
            status::phase(format!(
                "opening a Session Manager session to {}",
                resolved.ec2_instance_id
            ));
            let sessions = SsmSessions::new(aws.clone());
            let mut opened = sessions
                .open(&resolved.ec2_instance_id, port, timeout)
                .await?;
            let (again, id) = (sessions.clone(), resolved.ec2_instance_id.clone());
            opened.reopen = Some(std::sync::Arc::new(move || {
                let (sessions, id) = (again.clone(), id.clone());
                Box::pin(async move {
                    sessions
                        .open(&id, port, timeout)
                        .await
                        .map_err(|e| e.to_string())
                })
            }));
            ssm_sessions = Some(sessions);
            Some(opened)
        }
        Route::Eice(endpoint) => {
            info!(endpoint = %endpoint.id, %host, "opening a tunnel through the EC2 Instance Connect Endpoint");
            status::phase(format!(
                "opening a tunnel through EC2 Instance Connect Endpoint {}",
                endpoint.id
            ));
            let request = tunnel::TunnelRequest {
                endpoint_id: endpoint.id.clone(),
                private_ip: host.clone(),
                remote_port: port,
                max_duration: args.tunnel_duration,
            };
            let credentials = aws.credentials().await?;
            let mut opened = tunnel::open(
                &endpoint.dns_name,
                &request,
                &credentials,
                &aws.region(),
                timeout,
            )
            .await?;
            // Credentials are asked for again each time: a session may outlive them.
            let aws = aws.clone();
            opened.reopen = Some(std::sync::Arc::new(move || {
                let (aws, endpoint, request) = (aws.clone(), endpoint.clone(), request.clone());
                Box::pin(async move {
                    let credentials = aws.credentials().await.map_err(|e| e.to_string())?;
                    tunnel::open(
                        &endpoint.dns_name,
                        &request,
                        &credentials,
                        &aws.region(),
                        timeout,
                    )
                    .await
                    .map_err(|e| e.to_string())
                })
            }));
            Some(opened)
        }
    };
    let title = match &target.instance {
        // The one picked, not the `cluster/` typed.
        Some(InstanceRef::Pick) => {
            format!("{}/{}", target.cluster_name(), resolved.ec2_instance_id)
        }
        _ => target.to_string(),
    };
    let endpoint = Endpoint {
        title,
        // Keyed by instance, not address: a tunnel's localhost:port must not collide.
        trust_key: TrustKey::new(resolved.ec2_instance_id.clone()),
        host,
        port,
        user: args.user.clone(),
        domain: None,
        password,
    };
    Ok((endpoint, tunnel, log, ssm_sessions))
}

/// The Session Manager sessions a connection started: a new one for each tunnel (the first,
/// and each after the service closed a stream), all terminated when ecsrdp is done.
#[derive(Clone)]
pub(super) struct SsmSessions {
    aws: aws::Aws,
    started: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SsmSessions {
    pub(super) fn new(aws: aws::Aws) -> Self {
        Self {
            aws,
            started: std::sync::Arc::default(),
        }
    }

    /// Starts a session forwarding `port` of `instance_id` and opens its data channel; a
    /// session whose channel does not open is terminated at once.
    pub(super) async fn open(
        &self,
        instance_id: &str,
        port: u16,
        timeout: std::time::Duration,
    ) -> Result<tunnel::Tunnel, Error> {
        Ok(self.open_session(instance_id, port, timeout).await?.0)
    }

    /// [`SsmSessions::open`], and the session's ID, to [`end`](SsmSessions::end) it by.
    pub(super) async fn open_session(
        &self,
        instance_id: &str,
        port: u16,
        timeout: std::time::Duration,
    ) -> Result<(tunnel::Tunnel, String), Error> {
        let session = aws::start_session(&self.aws, instance_id, port).await?;
        info!(session = %session.session_id, "Session Manager session started");
        match tunnel::ssm::open(&session.stream_url, &session.token, port, timeout).await {
            Ok(tunnel) => {
                self.started
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(session.session_id.clone());
                Ok((tunnel, session.session_id))
            }
            Err(error) => {
                aws::terminate_session(&self.aws, &session.session_id).await;
                Err(error.into())
            }
        }
    }

    /// Terminates one session now, its connection being over.
    pub(super) async fn end(&self, session_id: &str) {
        self.started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|id| id != session_id);
        aws::terminate_session(&self.aws, session_id).await;
    }

    /// Terminates every session started (`ssm:TerminateSession`), within a few seconds: the
    /// service would otherwise list them as connected until its idle timeout.
    pub(super) fn terminate_all(&self) {
        let ids = std::mem::take(
            &mut *self
                .started
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if ids.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let all = async {
                for id in &ids {
                    aws::terminate_session(&self.aws, id).await;
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), all).await;
        });
    }
}

/// `ecsrdp direct`: any RDP server, as whoever the user says, the password from stdin, the
/// environment or a prompt.
pub(super) fn direct_endpoint(
    server: &str,
    user: String,
    domain: Option<String>,
    password_stdin: bool,
) -> Result<Endpoint, Error> {
    let (host, port) = host_port(server, aws::RDP_PORT).map_err(Error::Usage)?;
    let password = prompt::password(password_stdin).ok_or(RdpError::NoPassword)?;
    Ok(Endpoint {
        title: format!("{host}:{port}"),
        trust_key: TrustKey::new(format!("{host}:{port}")),
        host,
        port,
        user,
        domain,
        password,
    })
}
