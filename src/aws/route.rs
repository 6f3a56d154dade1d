//! Which way a session reaches the instance: its own address, an EC2 Instance Connect Endpoint
//! of its VPC to its private address, or Session Manager to its agent. Decided from the resolved
//! facts and what the user asked for; the chosen way's own prerequisites replace the address
//! checks.

use super::checks::{eice_reaches_instance, CheckKind};
use super::eice::{find_endpoint, InstanceConnectEndpoint};
use super::resolve::Resolved;
use super::ssm::{managed_instance, ManagedInstance};
use super::{Aws, AwsError};

/// The way the user asked for (`--tunnel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// The public address when TCP 3389 is open to it, else an EC2 Instance Connect Endpoint,
    /// else Session Manager.
    Auto,
    Direct,
    Eice,
    Ssm,
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
    /// Through Session Manager, to the instance's agent.
    Ssm(ManagedInstance),
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
/// TCP 3389 is open to it, else an EC2 Instance Connect Endpoint of the instance's VPC, else
/// Session Manager when the instance's agent is online. Besides the route, the lookup failure
/// that sent an `auto` choice back to the direct address, which the caller shows as a warning.
pub async fn choose_route(
    aws: &Aws,
    resolved: &mut Resolved,
    asked: Asked,
) -> Result<(Route, Option<AwsError>), RouteError> {
    let forced = match asked.way {
        _ if asked.via => return Ok((Route::Direct, None)),
        Way::Direct => return Ok((Route::Direct, None)),
        Way::Auto if asked.private => return Ok((Route::Direct, None)),
        Way::Eice | Way::Ssm => Some(asked.way),
        Way::Auto => None,
    };
    let open_to_us = |r: &Resolved| {
        r.address.is_some()
            && r.checks
                .iter()
                .all(|c| c.name != CheckKind::RdpPort || c.ok)
    };
    if forced.is_none() && open_to_us(resolved) {
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
    if forced == Some(Way::Ssm) {
        return match session_manager(aws, resolved).await? {
            Ok(route) => Ok((route, None)),
            Err(why) => Err(RouteError::Prerequisite(format!(
                "--tunnel ssm was asked for, but {why}"
            ))),
        };
    }
    let eice = eice(aws, resolved).await;
    let eice_missing = match eice {
        Ok(Ok(route)) => return Ok((route, None)),
        Err(e) if forced.is_some() => return Err(e),
        Ok(Err(why)) if forced.is_some() => {
            return Err(RouteError::Prerequisite(format!(
                "--tunnel eice was asked for, but {why}. Create one (free) with `aws ec2 \
                 create-instance-connect-endpoint --subnet-id {} --security-group-ids <sg-id>` \
                 and let that security group reach the instance on TCP 3389, or come through \
                 your own tunnel with --via",
                resolved.subnet_id.as_deref().unwrap_or("<subnet-id>")
            )))
        }
        Ok(Err(why)) => Ok(why),
        Err(e) => Err(e),
    };
    // Looking further was a courtesy: with an address of its own, go direct and say why.
    let with_address = resolved.address.is_some();
    let ssm = match session_manager(aws, resolved).await {
        Ok(Ok(route)) => return Ok((route, None)),
        Ok(Err(why)) => why,
        Err(RouteError::Aws(e)) if with_address => return Ok((Route::Direct, Some(e))),
        Err(e) => return Err(e),
    };
    let eice_missing = match eice_missing {
        Ok(why) => why,
        Err(RouteError::Aws(e)) if with_address => return Ok((Route::Direct, Some(e))),
        Err(e) => return Err(e),
    };
    if with_address {
        return Ok((Route::Direct, None));
    }
    let id = &resolved.ec2_instance_id;
    let subnet = resolved.subnet_id.as_deref().unwrap_or("<subnet-id>");
    Err(RouteError::Prerequisite(format!(
        "instance {id} has no public address, and no other way in is open: {eice_missing}, and \
         {ssm}. Either create an EC2 Instance Connect Endpoint (free) with `aws ec2 \
         create-instance-connect-endpoint --subnet-id {subnet} --security-group-ids <sg-id>` and \
         let that security group reach the instance on TCP 3389; or let Session Manager reach it \
         (an instance profile with AmazonSSMManagedInstanceCore); or come through your own \
         tunnel with --via"
    )))
}

/// The EC2 Instance Connect Endpoint route, or why there is none.
async fn eice(aws: &Aws, resolved: &mut Resolved) -> Result<Result<Route, String>, RouteError> {
    let id = resolved.ec2_instance_id.clone();
    let Some(vpc_id) = resolved.vpc_id.clone() else {
        return Ok(Err(format!(
            "instance {id} is in no VPC, so no EC2 Instance Connect Endpoint can reach it"
        )));
    };
    let Some(endpoint) = find_endpoint(aws, &vpc_id, resolved.subnet_id.as_deref()).await? else {
        return Ok(Err(format!(
            "its VPC {vpc_id} has no EC2 Instance Connect Endpoint"
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
    Ok(Ok(Route::Eice(endpoint)))
}

/// The Session Manager route, or why there is none: the instance's agent must have registered
/// and be online (`ssm:DescribeInstanceInformation`).
async fn session_manager(
    aws: &Aws,
    resolved: &mut Resolved,
) -> Result<Result<Route, String>, RouteError> {
    let id = resolved.ec2_instance_id.clone();
    let managed = match managed_instance(aws, &id).await? {
        Some(managed) if managed.online() => managed,
        Some(managed) => {
            return Ok(Err(format!(
                "the Systems Manager agent of instance {id} is {} (agent {}): it has not \
                 reported for a while; check that the instance runs and can reach the ssm, \
                 ssmmessages and ec2messages endpoints of its region",
                managed.ping_status, managed.agent_version
            )))
        }
        None => {
            return Ok(Err(format!(
                "instance {id} is not managed by Systems Manager (its agent never registered): \
                 give it an instance profile whose role has the AmazonSSMManagedInstanceCore \
                 policy, and the agent (which ECS-optimized Windows AMIs run) registers within \
                 minutes"
            )))
        }
    };
    // Where the agent forwards to is the instance's own loopback; the address names the
    // instance in messages and as the RDP server's name.
    resolved.address = Some(resolved.private_ip.clone().unwrap_or_else(|| id.clone()));
    resolved.session_manager = Some(managed.clone());
    resolved
        .checks
        .retain(|c| c.name != CheckKind::Address && c.name != CheckKind::RdpPort);
    resolved
        .checks
        .push(super::checks::ssm_agent_online(&managed));
    Ok(Ok(Route::Ssm(managed)))
}

/// One way in, and whether it is open to this instance, with why: what `resolve` lists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WayIn {
    pub way: &'static str,
    pub open: bool,
    pub why: String,
}

/// Every way in, looked up whatever the route chosen (from the facts before a route replaced
/// the address checks); a lookup that fails says so instead.
pub async fn ways_in(aws: &Aws, resolved: &Resolved) -> Vec<WayIn> {
    let rdp_open = resolved
        .checks
        .iter()
        .all(|c| c.name != CheckKind::RdpPort || c.ok);
    let direct = match (&resolved.public_ip, rdp_open) {
        (None, _) => (false, "no public address".to_owned()),
        (Some(ip), true) => (true, format!("{ip} admits TCP 3389 from here")),
        (Some(ip), false) if resolved.security_groups_unreadable => (
            false,
            format!("{ip}, whose security groups cannot be read (ec2:DescribeSecurityGroups)"),
        ),
        (Some(ip), false) => (
            false,
            format!("{ip}, but no security group admits TCP 3389 from outside its VPC"),
        ),
    };
    let eice = match &resolved.vpc_id {
        None => (false, "in no VPC".to_owned()),
        Some(vpc) => match find_endpoint(aws, vpc, resolved.subnet_id.as_deref()).await {
            Ok(Some(endpoint)) => (true, format!("endpoint {}", endpoint.id)),
            Ok(None) => (false, format!("no endpoint in {vpc}")),
            Err(e) => (false, format!("cannot tell: {e}")),
        },
    };
    let ssm = match managed_instance(aws, &resolved.ec2_instance_id).await {
        Ok(Some(agent)) => (
            agent.online(),
            format!("agent {}, {}", agent.agent_version, agent.ping_status),
        ),
        Ok(None) => (false, "not managed by Systems Manager".to_owned()),
        Err(e) => (false, format!("cannot tell: {e}")),
    };
    [("direct", direct), ("eice", eice), ("ssm", ssm)]
        .into_iter()
        .map(|(way, (open, why))| WayIn { way, open, why })
        .collect()
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
