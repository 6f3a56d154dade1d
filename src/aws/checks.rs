//! The prerequisites the AWS guide lists, judged from what EC2 said about the instance.
//!
//! Pure decisions: the data comes in already fetched, so every message can be unit-tested.

use serde::Serialize;

use super::eice::InstanceConnectEndpoint;

/// RDP's well-known port, which the instance's security groups must admit.
pub const RDP_PORT: u16 = 3389;

/// Which prerequisite a check is about; its name in `resolve`'s output (text and JSON).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The instance runs Windows.
    Windows,
    /// It is running.
    Running,
    /// It was launched with a key pair, so its password can be recovered.
    KeyPair,
    /// It has the address ecsrdp would connect to.
    Address,
    /// Its security groups admit TCP 3389 from here.
    RdpPort,
    /// Its security groups admit TCP 3389 from the EC2 Instance Connect Endpoint.
    EicePort,
    /// Its Systems Manager agent is registered and online.
    SsmAgent,
}

impl CheckKind {
    /// The name shown to the user.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Windows => "windows",
            CheckKind::Running => "running",
            CheckKind::KeyPair => "key_pair",
            CheckKind::Address => "address",
            CheckKind::RdpPort => "rdp_port",
            CheckKind::EicePort => "eice_port",
            CheckKind::SsmAgent => "ssm_agent",
        }
    }
}

/// One prerequisite: whether it holds and, when not, what to do.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    pub name: CheckKind,
    pub ok: bool,
    /// Blocks the connection (a warning does not: the user may come through `--via`).
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A security group and the sources from which it admits TCP 3389.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub rdp_sources: Vec<String>,
}

/// What the checks need to know about the instance.
pub(super) struct Facts<'a> {
    pub ec2_instance_id: &'a str,
    pub platform: &'a str,
    pub state: &'a str,
    pub key_name: Option<&'a str>,
    pub address: Option<&'a str>,
    pub private: bool,
    pub security_groups: &'a [SecurityGroup],
    /// Access to the groups was denied: the port check is a warning saying so.
    pub groups_unreadable: bool,
}

impl Check {
    fn pass(name: CheckKind, required: bool) -> Self {
        Check {
            name,
            ok: true,
            required,
            problem: None,
        }
    }

    fn fail(name: CheckKind, required: bool, problem: String) -> Self {
        Check {
            name,
            ok: false,
            required,
            problem: Some(problem),
        }
    }
}

pub(super) fn run(facts: &Facts<'_>) -> Vec<Check> {
    let id = facts.ec2_instance_id;
    let mut checks = Vec::new();

    // EC2 sends "windows" while the SDK's enum only knows "Windows": compare loosely.
    checks.push(if facts.platform.eq_ignore_ascii_case("windows") {
        Check::pass(CheckKind::Windows, true)
    } else {
        Check::fail(
            CheckKind::Windows,
            true,
            format!(
                "instance {id} runs {}, not Windows: it has no Remote Desktop; use \
                 `aws ssm start-session --target {id}` or SSH instead",
                facts.platform
            ),
        )
    });

    let state = facts.state;
    checks.push(match state {
        "running" => Check::pass(CheckKind::Running, true),
        "pending" => Check::fail(
            CheckKind::Running,
            true,
            format!("instance {id} is still starting (pending); try again in a minute"),
        ),
        "stopped" | "stopping" => Check::fail(
            CheckKind::Running,
            true,
            format!(
                "instance {id} is {state}, not running; start it with \
                 `aws ec2 start-instances --instance-ids {id}` and try again"
            ),
        ),
        _ => Check::fail(
            CheckKind::Running,
            true,
            format!(
                "instance {id} is {state} and cannot be started again; pick another instance \
                 from `ecsrdp <cluster>`"
            ),
        ),
    });

    checks.push(match facts.key_name {
        Some(_) => Check::pass(CheckKind::KeyPair, true),
        None => Check::fail(
            CheckKind::KeyPair,
            true,
            format!(
                "instance {id} was launched without a key pair, so AWS holds no encrypted \
                 Administrator password for it, and a key pair cannot be added to an instance \
                 later. Reset the password through Systems Manager instead: `aws ssm \
                 start-automation-execution --document-name AWSSupport-ResetAccess --parameters \
                 InstanceId={id}` (it stops and restarts the instance, and keeps the new password \
                 in Parameter Store as /EC2Rescue/Passwords/{id}), then `aws ssm get-parameter \
                 --name /EC2Rescue/Passwords/{id} --with-decryption --query Parameter.Value \
                 --output text | ecsrdp direct <address> --password-stdin`. Launch future \
                 container instances with a key pair"
            ),
        ),
    });

    checks.push(match facts.address {
        Some(_) => Check::pass(CheckKind::Address, true),
        None if facts.private => Check::fail(
            CheckKind::Address,
            true,
            format!("instance {id} has no private IP address"),
        ),
        None => Check::fail(
            CheckKind::Address,
            true,
            format!(
                "instance {id} has no public IP address or DNS name; connect from inside its \
                 VPC with --private, or through a tunnel with --via HOST:PORT (e.g. an SSM port \
                 forward to port {RDP_PORT})"
            ),
        ),
    });

    if facts.groups_unreadable {
        checks.push(unreadable_groups(CheckKind::RdpPort, id));
        return checks;
    }

    let open: Vec<&SecurityGroup> = facts
        .security_groups
        .iter()
        .filter(|group| !group.rdp_sources.is_empty())
        .collect();
    // Over the public address, rules that admit only private ranges or other groups let
    // nobody outside the VPC in: the connection would just time out.
    let inside_only = !facts.private
        && !open.is_empty()
        && open
            .iter()
            .flat_map(|g| &g.rdp_sources)
            .all(|source| is_inside_vpc(source));
    checks.push(if inside_only {
        let rules = open
            .iter()
            .map(|g| format!("{} ({}) from {}", g.id, g.name, g.rdp_sources.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        Check::fail(
            CheckKind::RdpPort,
            false,
            format!(
                "instance {id} admits TCP {RDP_PORT} only from inside its network ({rules}), but \
                 ecsrdp connects to its public address; use --private from inside the VPC, \
                 --via with a tunnel, or add a rule for your address with \
                 `aws ec2 authorize-security-group-ingress --group-id {} --protocol tcp --port \
                 {RDP_PORT} --cidr <your-ip>/32`",
                open[0].id
            ),
        )
    } else if open.is_empty() {
        let groups = facts
            .security_groups
            .iter()
            .map(|g| format!("{} ({})", g.id, g.name))
            .collect::<Vec<_>>()
            .join(", ");
        let first = facts
            .security_groups
            .first()
            .map_or("<group-id>", |g| g.id.as_str());
        Check::fail(
            CheckKind::RdpPort,
            false,
            format!(
                "no security group of instance {id} ({groups}) admits inbound TCP {RDP_PORT}; \
                 add a rule for your address: `aws ec2 authorize-security-group-ingress \
                 --group-id {first} --protocol tcp --port {RDP_PORT} --cidr <your-ip>/32`, \
                 or come through a tunnel with --via"
            ),
        )
    } else {
        Check::pass(CheckKind::RdpPort, false)
    });

    checks
}

/// Whether a rule source only ever matches traffic from inside the VPC: another security group,
/// or a private (RFC 1918, RFC 4193) range.
fn is_inside_vpc(source: &str) -> bool {
    if source.starts_with("sg-") {
        return true;
    }
    let address = source.split('/').next().unwrap_or(source);
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_private(),
        Ok(std::net::IpAddr::V6(v6)) => (v6.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

/// The port check when the caller may not read security groups: a warning, and on we go.
fn unreadable_groups(name: CheckKind, id: &str) -> Check {
    Check::fail(
        name,
        false,
        format!(
            "cannot check whether instance {id} admits TCP {RDP_PORT}: your credentials may not \
             call ec2:DescribeSecurityGroups (AccessDenied); connecting anyway"
        ),
    )
}

/// Through an EC2 Instance Connect Endpoint, the instance sees the endpoint's own address in its
/// subnet: a rule must admit TCP 3389 from the endpoint's security group, or from an address
/// range inside the VPC. A warning, not a refusal: rules may be wider than this can tell.
pub fn eice_reaches_instance(
    id: &str,
    endpoint: &InstanceConnectEndpoint,
    groups: &[SecurityGroup],
    groups_unreadable: bool,
) -> Check {
    if groups_unreadable {
        return unreadable_groups(CheckKind::EicePort, id);
    }
    let admitted = groups.iter().flat_map(|g| &g.rdp_sources).any(|source| {
        endpoint.security_group_ids.contains(source)
            || is_inside_vpc(source)
            || source == "0.0.0.0/0"
    });
    if admitted {
        return Check::pass(CheckKind::EicePort, false);
    }
    let instance_group = groups.first().map_or("<instance-sg>", |g| g.id.as_str());
    let endpoint_group = endpoint
        .security_group_ids
        .first()
        .map_or("<endpoint-sg>", String::as_str);
    Check::fail(
        CheckKind::EicePort,
        false,
        format!(
            "no security group of instance {id} admits TCP {RDP_PORT} from EC2 Instance Connect \
             Endpoint {} (security group {endpoint_group}); add a rule with `aws ec2 \
             authorize-security-group-ingress --group-id {instance_group} --protocol tcp --port \
             {RDP_PORT} --source-group {endpoint_group}`",
            endpoint.id
        ),
    )
}

/// Session Manager reaches the instance through its agent, which is online (the route checks
/// that before choosing it): no port, address or security group rule needed.
pub fn ssm_agent_online(_managed: &super::ManagedInstance) -> Check {
    Check::pass(CheckKind::SsmAgent, true)
}

/// The sources an inbound rule admits, if it covers TCP 3389.
pub(super) fn rdp_sources(rule: &aws_sdk_ec2::types::IpPermission) -> Vec<String> {
    let protocol = rule.ip_protocol().unwrap_or_default();
    let all_traffic = protocol == "-1";
    let tcp = protocol.eq_ignore_ascii_case("tcp") || protocol == "6";
    let port = i32::from(RDP_PORT);
    let covers = all_traffic
        || (tcp
            && rule.from_port().is_some_and(|from| from <= port)
            && rule.to_port().is_some_and(|to| to >= port));
    if !covers {
        return Vec::new();
    }
    let ranges = rule.ip_ranges().iter().filter_map(|r| r.cidr_ip());
    let ranges6 = rule.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6());
    let lists = rule
        .prefix_list_ids()
        .iter()
        .filter_map(|p| p.prefix_list_id());
    let groups = rule
        .user_id_group_pairs()
        .iter()
        .filter_map(|g| g.group_id());
    ranges
        .chain(ranges6)
        .chain(lists)
        .chain(groups)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(groups: &'a [SecurityGroup]) -> Facts<'a> {
        Facts {
            ec2_instance_id: "i-1",
            platform: "windows",
            state: "running",
            key_name: Some("kp"),
            address: Some("1.2.3.4"),
            private: false,
            security_groups: groups,
            groups_unreadable: false,
        }
    }

    fn group(sources: &[&str]) -> SecurityGroup {
        SecurityGroup {
            id: "sg-1".into(),
            name: "web".into(),
            rdp_sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn each_state_gets_its_own_advice() {
        let problem = |state: &'static str| {
            let facts = Facts {
                state,
                ..facts(&[])
            };
            run(&facts)
                .into_iter()
                .find(|c| c.name == CheckKind::Running)
                .and_then(|c| c.problem)
                .unwrap_or_default()
        };
        assert!(problem("pending").contains("still starting"));
        assert!(problem("stopped").contains("aws ec2 start-instances"));
        assert!(problem("terminated").contains("cannot be started again"));
        assert!(problem("running").is_empty());
    }

    #[test]
    fn an_instance_closed_to_its_endpoint_is_told_the_rule_to_add() {
        let endpoint = InstanceConnectEndpoint {
            id: "eice-1".into(),
            dns_name: "eice-1.example".into(),
            subnet_id: None,
            security_group_ids: vec!["sg-eice".into()],
        };
        let closed = eice_reaches_instance("i-1", &endpoint, &[group(&["203.0.113.7/32"])], false);
        assert!(!closed.ok && !closed.required);
        let problem = closed.problem.unwrap();
        assert!(problem.contains("--source-group sg-eice"), "{problem}");
        assert!(eice_reaches_instance("i-1", &endpoint, &[group(&["sg-eice"])], false).ok);
    }

    #[test]
    fn all_good() {
        let groups = [group(&["0.0.0.0/0"])];
        assert!(run(&facts(&groups)).iter().all(|c| c.ok));
    }

    #[test]
    fn closed_port_is_a_warning_that_names_the_group() {
        let groups = [group(&[])];
        let checks = run(&facts(&groups));
        let port = checks
            .iter()
            .find(|c| c.name == CheckKind::RdpPort)
            .unwrap();
        assert!(!port.ok && !port.required);
        assert!(port.problem.as_deref().unwrap().contains("sg-1 (web)"));
    }

    #[test]
    fn private_only_rules_warn_over_the_public_address() {
        let groups = [group(&["10.0.0.0/8", "sg-0abc"])];
        let checks = run(&facts(&groups));
        let port = checks
            .iter()
            .find(|c| c.name == CheckKind::RdpPort)
            .unwrap();
        assert!(!port.ok && !port.required);
        assert!(port
            .problem
            .as_deref()
            .unwrap()
            .contains("only from inside its network"));
        // From inside the VPC the same rule is fine.
        let mut inside = facts(&groups);
        inside.private = true;
        assert!(run(&inside).iter().all(|c| c.ok));
        // Any public source makes it reachable from somewhere outside.
        let mixed = [group(&["10.0.0.0/8", "203.0.113.7/32"])];
        assert!(run(&facts(&mixed)).iter().all(|c| c.ok));
    }

    #[test]
    fn platform_is_compared_loosely() {
        let groups = [group(&["0.0.0.0/0"])];
        let mut f = facts(&groups);
        f.platform = "Windows";
        assert!(run(&f)[0].ok);
        f.platform = "Linux/UNIX";
        assert!(!run(&f)[0].ok);
    }

    #[test]
    fn tcp_rule_ranges() {
        use aws_sdk_ec2::types::{IpPermission, IpRange};
        let rule = |proto: &str, from, to| {
            IpPermission::builder()
                .ip_protocol(proto)
                .from_port(from)
                .to_port(to)
                .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                .build()
        };
        assert_eq!(rdp_sources(&rule("tcp", 3389, 3389)), ["10.0.0.0/8"]);
        assert_eq!(rdp_sources(&rule("tcp", 3000, 4000)), ["10.0.0.0/8"]);
        assert_eq!(rdp_sources(&rule("-1", -1, -1)), ["10.0.0.0/8"]);
        assert!(rdp_sources(&rule("udp", 3389, 3389)).is_empty());
        assert!(rdp_sources(&rule("tcp", 22, 22)).is_empty());
    }
}
