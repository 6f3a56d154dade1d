//! Which way a session reaches the instance: its own address, or an EC2 Instance Connect
//! Endpoint of its VPC to its private address. Decided from the resolved facts and what the user
//! asked for; the chosen way's own prerequisites replace the address checks.

use super::checks::{eice_reaches_instance, CheckKind};
use super::eice::{find_endpoint, InstanceConnectEndpoint};
use super::resolve::Resolved;
use super::{Aws, AwsError};

/// The way the user asked for (`--tunnel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// The public address when TCP 3389 is open to it, else an EC2 Instance Connect Endpoint.
    Auto,
    Direct,
    Eice,
}

/// What the user asked for that bears on the way in.
#[derive(Clone, Copy, Debug)]
pub struct Asked {
    pub way: Way,
    /// `--via`: the user's own tunnel, which is what ecsrdp connects to.
    pub via: bool,
    /// `--private`: the private address, reached directly.
    pub private: bool,
}

/// How the session reaches the instance.
#[derive(Clone, Debug)]
pub enum Route {
    /// Its own address (or `--via`'s).
    Direct,
    /// Through an EC2 Instance Connect Endpoint, to its private address.
    Eice(InstanceConnectEndpoint),
}

/// Why no way in could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A prerequisite of the way in does not hold; the text says which and what to do.
    #[error("{0}")]
    Prerequisite(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Picks the way in: `--via` and `--tunnel direct` as told; otherwise the public address when
/// TCP 3389 is open to it, else an EC2 Instance Connect Endpoint of the instance's VPC. Besides
/// the route, the lookup failure that sent an `auto` choice back to the direct address, which
/// the caller shows as a warning.
pub async fn choose_route(
    aws: &Aws,
    resolved: &mut Resolved,
    asked: Asked,
) -> Result<(Route, Option<AwsError>), RouteError> {
    let forced = match asked.way {
        _ if asked.via => return Ok((Route::Direct, None)),
        Way::Direct => return Ok((Route::Direct, None)),
        Way::Auto if asked.private => return Ok((Route::Direct, None)),
        Way::Eice => true,
        Way::Auto => false,
    };
    let open_to_us = |r: &Resolved| {
        r.address.is_some()
            && r.checks
                .iter()
                .all(|c| c.name != CheckKind::RdpPort || c.ok)
    };
    if !forced && open_to_us(resolved) {
        return Ok((Route::Direct, None));
    }
    // A stopped, Linux or keyless instance is reported as such, whatever the way.
    let blocked = resolved
        .checks
        .iter()
        .any(|c| c.required && !c.ok && c.name != CheckKind::Address);
    if blocked {
        return Ok((Route::Direct, None));
    }
    let id = resolved.ec2_instance_id.clone();
    let Some(vpc_id) = resolved.vpc_id.clone() else {
        return if forced {
            Err(RouteError::Prerequisite(format!(
                "instance {id} is in no VPC, so no EC2 Instance Connect Endpoint can reach it"
            )))
        } else {
            Ok((Route::Direct, None))
        };
    };
    let found = match find_endpoint(aws, &vpc_id, resolved.subnet_id.as_deref()).await {
        Ok(found) => found,
        // Looking was a courtesy: with an address of its own, go direct and say why.
        Err(e) if !forced && resolved.address.is_some() => return Ok((Route::Direct, Some(e))),
        Err(e) => return Err(e.into()),
    };
    let Some(endpoint) = found else {
        if !forced && resolved.address.is_some() {
            return Ok((Route::Direct, None));
        }
        let subnet = resolved.subnet_id.as_deref().unwrap_or("<subnet-id>");
        let why = match (forced, resolved.address.is_some()) {
            (true, _) => {
                format!("--tunnel eice was asked for, but the VPC {vpc_id} of instance {id}")
            }
            (false, true) => format!(
                "instance {id} has no public address open to TCP 3389, and its VPC {vpc_id}"
            ),
            (false, false) => format!("instance {id} has no public address, and its VPC {vpc_id}"),
        };
        return Err(RouteError::Prerequisite(format!(
            "{why} has no EC2 Instance Connect Endpoint. Create one (free) with `aws ec2 \
             create-instance-connect-endpoint --subnet-id {subnet} --security-group-ids <sg-id>` \
             and let that security group reach the instance on TCP 3389, or come through your \
             own tunnel with --via"
        )));
    };
    let Some(private_ip) = resolved.private_ip.clone() else {
        return Err(RouteError::Prerequisite(format!(
            "instance {id} has no private IP address for the EC2 Instance Connect Endpoint to reach"
        )));
    };
    resolved.address = Some(private_ip);
    resolved.tunnel = Some(endpoint.clone());
    resolved
        .checks
        .retain(|c| c.name != CheckKind::Address && c.name != CheckKind::RdpPort);
    resolved.checks.push(eice_reaches_instance(
        &id,
        &endpoint,
        &resolved.security_groups,
        resolved.security_groups_unreadable,
    ));
    Ok((Route::Eice(endpoint), None))
}

impl Resolved {
    /// Through the user's own tunnel (`--via`), the tunnel is what ecsrdp connects to, and the
    /// instance needs no address of its own.
    pub fn through(&mut self, host: String, port: u16) {
        self.address = Some(host);
        self.port = port;
        for check in self
            .checks
            .iter_mut()
            .filter(|c| c.name == CheckKind::Address)
        {
            check.ok = true;
            check.problem = None;
        }
    }

    /// Whether the only required prerequisites that fail are about the address, which the
    /// password alone (and `--via`) does without.
    pub fn only_address_missing(&self) -> bool {
        self.checks
            .iter()
            .filter(|c| c.required && !c.ok)
            .all(|c| c.name == CheckKind::Address)
    }
}
