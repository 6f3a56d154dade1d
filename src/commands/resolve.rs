//! `ecsrdp resolve`: what ecsrdp found about an instance and the way in, and which
//! prerequisites hold, as text or JSON; exit 3 when a required one fails.

use std::io::Write as _;
use std::process::ExitCode;

use super::error::Error;
use super::locate::{choose_route, locate};
use crate::aws::{self, Resolved, WayIn};
use crate::cli::AwsArgs;
use crate::target::Target;
use crate::term::table::write_stdout;

/// `ecsrdp resolve`: print what was found; exit 3 if a required prerequisite fails.
pub(super) async fn resolve(
    target: &Target,
    args: &AwsArgs,
    json: bool,
) -> Result<ExitCode, Error> {
    let (aws, located) = locate(target, args, false).await?;
    let mut resolved = located.resolved;
    let ways = aws::ways_in(&aws, &resolved).await;
    // With no way open, the listing is what tells why: print it before the error.
    let chosen = choose_route(&aws, &mut resolved, args).await;
    let mut text = Vec::new();
    let written = if json {
        let mut value = serde_json::to_value(&resolved).map_err(std::io::Error::from);
        if let Ok(serde_json::Value::Object(fields)) = &mut value {
            fields.insert("ways_in".into(), serde_json::json!(ways));
        }
        value
            .and_then(|v| serde_json::to_writer_pretty(&mut text, &v).map_err(Into::into))
            .and_then(|()| writeln!(text))
    } else {
        write_resolved(&mut text, &resolved, &ways)
    };
    written.map_err(|source| Error::Io {
        what: "cannot format the answer".into(),
        source,
    })?;
    write_stdout(&String::from_utf8_lossy(&text))?;
    chosen?;
    match resolved.blocking_problem() {
        Some(problem) => Err(Error::Prerequisite(problem.to_owned())),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn write_resolved(
    out: &mut impl std::io::Write,
    r: &Resolved,
    ways: &[WayIn],
) -> std::io::Result<()> {
    let none = "-";
    writeln!(
        out,
        "cluster             {}",
        r.cluster.as_deref().unwrap_or("- (in no ECS cluster)")
    )?;
    writeln!(
        out,
        "container instance  {}",
        r.container_instance_arn.as_deref().unwrap_or(none)
    )?;
    writeln!(
        out,
        "EC2 instance        {} ({})",
        r.ec2_instance_id,
        r.name.as_deref().unwrap_or(none)
    )?;
    writeln!(out, "platform, state     {}, {}", r.platform, r.state)?;
    writeln!(
        out,
        "public IP / DNS     {} / {}",
        r.public_ip.as_deref().unwrap_or(none),
        r.public_dns.as_deref().unwrap_or(none)
    )?;
    writeln!(
        out,
        "private IP          {}",
        r.private_ip.as_deref().unwrap_or(none)
    )?;
    writeln!(
        out,
        "connects to         {}:{}",
        r.address.as_deref().unwrap_or(none),
        r.port
    )?;
    if let Some(endpoint) = &r.tunnel {
        writeln!(
            out,
            "through             EC2 Instance Connect Endpoint {} ({})",
            endpoint.id, endpoint.dns_name
        )?;
    }
    if let Some(agent) = &r.session_manager {
        writeln!(
            out,
            "through             Session Manager (agent {}, {})",
            agent.agent_version, agent.ping_status
        )?;
    }
    writeln!(
        out,
        "key pair            {}",
        r.key_name.as_deref().unwrap_or(none)
    )?;
    for group in &r.security_groups {
        let sources = if group.rdp_sources.is_empty() {
            "no TCP 3389 rule".to_owned()
        } else {
            format!("TCP 3389 from {}", group.rdp_sources.join(", "))
        };
        writeln!(
            out,
            "security group      {} ({}): {sources}",
            group.id, group.name
        )?;
    }
    writeln!(out, "ways in")?;
    for way in ways {
        let mark = if way.open { "open" } else { "-" };
        writeln!(out, "  {mark:<4} {:<6} {}", way.way, way.why)?;
    }
    writeln!(out, "checks")?;
    for check in &r.checks {
        let mark = match (check.ok, check.required) {
            (true, _) => "ok",
            (false, true) => "FAIL",
            (false, false) => "warn",
        };
        writeln!(out, "  {mark:<4} {}", check.name.name())?;
        if let Some(problem) = &check.problem {
            writeln!(out, "       {problem}")?;
        }
    }
    Ok(())
}
