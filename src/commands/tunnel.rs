//! `ecsrdp tunnel`: the instance's EC2 Instance Connect Endpoint tunnel (or Session Manager's,
//! with `--tunnel ssm`) on a local port, for other RDP apps.

use std::process::ExitCode;

use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::info;

use super::connect::SsmSessions;
use super::error::Error;
use super::locate::{choose_route, locate};
use crate::aws::Route;
use crate::cli::AwsArgs;
use crate::net;
use crate::target::Target;
use crate::term::status;
use crate::term::table::write_stdout;
use crate::tunnel;

/// `ecsrdp tunnel`: the instance's EICE tunnel on a local port. Every connection to the port
/// gets a tunnel of its own, signed afresh (a presigned URL lives 60 s), and is said. A port on
/// 127.0.0.1 is open to every user of the machine while each tunnel is signed with this user's
/// AWS credentials, so only this user's programs are admitted (where the kernel says who
/// connected), and at most `connections` at once.
pub(super) async fn serve_tunnel(
    target: &Target,
    args: &AwsArgs,
    local_port: u16,
    connections: u16,
) -> Result<ExitCode, Error> {
    let (aws, mut located) = locate(target, args, false).await?;
    let route = choose_route(&aws, &mut located.resolved, args).await?;
    // A stopped, Linux or keyless instance is reported as such, before any word on tunnels.
    if let Some(problem) = located.resolved.blocking_problem() {
        if !located.resolved.only_address_missing() {
            return Err(Error::Prerequisite(problem.to_owned()));
        }
    }
    let resolved = located.resolved;
    let (way, opener) = match route {
        Route::Eice(endpoint) => (
            format!("EC2 Instance Connect Endpoint {}", endpoint.id),
            Opener::Eice {
                request: tunnel::TunnelRequest {
                    endpoint_id: endpoint.id.clone(),
                    private_ip: resolved.address.clone().unwrap_or_default(),
                    remote_port: resolved.port,
                    max_duration: args.tunnel_duration,
                },
                endpoint,
            },
        ),
        Route::Ssm(_) => (
            "Session Manager".to_owned(),
            Opener::Ssm(
                Box::new(SsmSessions::new(aws.clone())),
                resolved.ec2_instance_id.clone(),
                resolved.port,
            ),
        ),
        Route::Direct => {
            return Err(Error::Usage(
                "`ecsrdp tunnel` opens an EC2 Instance Connect Endpoint or Session Manager \
                 tunnel; --via names a tunnel of your own, so there is nothing to open"
                    .into(),
            ))
        }
    };
    for warning in resolved.warnings() {
        status::warn(warning);
    }
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
        "Tunnel to {} ({}:{}) through {way} is open.\n\
         Connect your RDP client to {local} as {}; the password: `ecsrdp password {target}`.\n\
         Press Ctrl-C to close it.\n",
        resolved.ec2_instance_id,
        resolved.address.as_deref().unwrap_or_default(),
        resolved.port,
        args.user,
    ))?;
    let opener = Arc::new(opener);
    let slots = Arc::new(Semaphore::new(usize::from(connections)));
    let me = net::own_uid();
    if me.is_none() {
        status::print(format_args!(
            "ecsrdp: note: on this system ecsrdp cannot tell which local user opens a connection \
             (it can on Linux): any of them can use this tunnel, as you. Each connection is \
             printed; keep --connections at 1 on a shared machine"
        ));
    }
    // One Ctrl-C for the whole listener: a new one each turn could miss a press between.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let (mut client, peer) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|source| Error::Io {
                what: "cannot accept a connection".into(),
                source,
            })?,
            _ = &mut interrupted => {
                if let Opener::Ssm(sessions, ..) = &*opener {
                    let sessions = SsmSessions::clone(sessions);
                    // Its own runtime, off this one's threads.
                    let _ = tokio::task::spawn_blocking(move || sessions.terminate_all()).await;
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        if let Some(me) = me {
            match net::local_peer_uid(peer, local) {
                Some(them) if them == me => {}
                Some(them) => {
                    status::print(format_args!(
                        "ecsrdp: refused a connection from {peer}: it belongs to another user of \
                         this machine (uid {them}), and the tunnel uses your AWS credentials"
                    ));
                    continue;
                }
                // Gone already, or a table that does not say: not admitted unseen.
                None => {
                    status::print(format_args!(
                        "ecsrdp: refused a connection from {peer}: the system's socket table \
                         does not say which user opened it"
                    ));
                    continue;
                }
            }
        }
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            status::print(format_args!(
                "ecsrdp: refused a connection from {peer}: {connections} already open \
                 (--connections N admits more at once)"
            ));
            continue;
        };
        status::note(format_args!("{peer} connected; opening a tunnel for it"));
        info!(%peer, "opening a tunnel for a local client");
        let opener = Arc::clone(&opener);
        let aws = aws.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match opener.open(&aws).await {
                Ok((mut tunnel, session)) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut tunnel.pipe).await;
                    match tunnel.ended.failure() {
                        Some(error) => status::print(format_args!("ecsrdp: {error}")),
                        None => status::note(format_args!("{peer} disconnected")),
                    }
                    // A Session Manager session ends with its connection, not at Ctrl-C only.
                    if let (Opener::Ssm(sessions, ..), Some(id)) = (&*opener, session) {
                        sessions.end(&id).await;
                    }
                }
                Err(error) => status::print(format_args!("ecsrdp: {error}")),
            }
        });
    }
}

/// How each admitted connection gets its tunnel.
enum Opener {
    Eice {
        endpoint: crate::aws::InstanceConnectEndpoint,
        request: tunnel::TunnelRequest,
    },
    /// A Session Manager session of its own for each connection, to the instance and port.
    Ssm(Box<SsmSessions>, String, u16),
}

impl Opener {
    /// A new tunnel, freshly signed; credentials that fail now (an expired SSO session) fail
    /// this connection, said, and the listener stays for the next one.
    /// The tunnel, and the Session Manager session it belongs to, if it does.
    async fn open(&self, aws: &crate::aws::Aws) -> Result<(tunnel::Tunnel, Option<String>), Error> {
        let timeout = std::time::Duration::from_secs(15);
        match self {
            Opener::Eice { endpoint, request } => {
                let credentials = aws.credentials().await?;
                let region = aws.region();
                let tunnel =
                    tunnel::open(&endpoint.dns_name, request, &credentials, &region, timeout)
                        .await?;
                Ok((tunnel, None))
            }
            Opener::Ssm(sessions, instance_id, port) => {
                let (tunnel, id) = sessions.open_session(instance_id, *port, timeout).await?;
                Ok((tunnel, Some(id)))
            }
        }
    }
}
