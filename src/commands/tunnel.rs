//! `ecsrdp tunnel`: the instance's EC2 Instance Connect Endpoint tunnel on a local port, for
//! other RDP apps.

use std::process::ExitCode;

use tracing::info;

use super::error::Error;
use super::locate::{choose_route, locate};
use crate::aws::Route;
use crate::cli::AwsArgs;
use crate::target::Target;
use crate::term::status;
use crate::term::table::write_stdout;
use crate::tunnel;

/// `ecsrdp tunnel`: the instance's EICE tunnel on a local port. Every connection to the port
/// gets a tunnel of its own, signed afresh (a presigned URL lives 60 s).
pub(super) async fn serve_tunnel(
    target: &Target,
    args: &AwsArgs,
    local_port: u16,
) -> Result<ExitCode, Error> {
    let (aws, mut located) = locate(target, args, false).await?;
    let route = choose_route(&aws, &mut located.resolved, args).await?;
    // A stopped, Linux or keyless instance is reported as such, before any word on tunnels.
    if let Some(problem) = located.resolved.blocking_problem() {
        if !located.resolved.only_address_missing() {
            return Err(Error::Prerequisite(problem.to_owned()));
        }
    }
    let Route::Eice(endpoint) = route else {
        return Err(Error::Usage(
            "`ecsrdp tunnel` opens an EC2 Instance Connect Endpoint tunnel; --via names a \
             tunnel of your own, so there is nothing to open"
                .into(),
        ));
    };
    let resolved = located.resolved;
    for warning in resolved.warnings() {
        status::warn(warning);
    }
    let request = tunnel::TunnelRequest {
        endpoint_id: endpoint.id.clone(),
        private_ip: resolved.address.clone().unwrap_or_default(),
        remote_port: resolved.port,
        max_duration: args.tunnel_duration,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", local_port))
        .await
        .map_err(|source| Error::Io {
            what: format!("cannot listen on 127.0.0.1:{local_port}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        what: "cannot read the local address".into(),
        source,
    })?;
    write_stdout(&format!(
        "Tunnel to {} ({}:{}) through EC2 Instance Connect Endpoint {} is open.
         Connect your RDP client to {local} as {}; the password: `ecsrdp password {target}`.
         Press Ctrl-C to close it.
",
        resolved.ec2_instance_id, request.private_ip, request.remote_port, endpoint.id, args.user,
    ))?;
    let region = aws.region();
    loop {
        let (mut client, peer) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|source| Error::Io {
                what: "cannot accept a connection".into(),
                source,
            })?,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        info!(%peer, "opening a tunnel for a local client");
        let credentials = aws.credentials().await?;
        let (endpoint, request, region) = (endpoint.clone(), request.clone(), region.clone());
        tokio::spawn(async move {
            let timeout = std::time::Duration::from_secs(15);
            match tunnel::open(&endpoint.dns_name, &request, &credentials, &region, timeout).await {
                Ok(mut tunnel) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut tunnel.pipe).await;
                    if let Some(error) = tunnel.ended.failure() {
                        eprintln!("ecsrdp: {error}");
                    }
                }
                Err(error) => eprintln!("ecsrdp: {error}"),
            }
        });
    }
}
