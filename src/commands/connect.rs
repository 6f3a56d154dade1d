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
) -> Result<(Endpoint, Option<tunnel::Tunnel>, SystemLog), Error> {
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
    let tunnel = match route {
        Route::Direct => None,
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
    Ok((endpoint, tunnel, log))
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
