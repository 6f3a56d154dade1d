//! From a target to the instance: the AWS clients for the right region, the instance (picked
//! on the terminal when the target says `cluster/`), what it is, its password data, and the way
//! in. Shared by every command that names an instance.

use tracing::info;

use super::error::Error;
use crate::aws::{self, AddressChoice, Asked, Aws, Listed, PasswordData, Resolved, Route, Way};
use crate::cli::{host_port, AwsArgs, TunnelChoice};
use crate::target::{InstanceRef, Target};
use crate::term::{self, status, table::columns};

/// The region to ask: the one an ARN in the target names (a cluster lives in one region,
/// whatever the default), else `--region`, else the standard chain's.
pub(super) fn region<'a>(target: &'a Target, args: &'a AwsArgs) -> Result<Option<&'a str>, Error> {
    match (target.region(), args.region.as_deref()) {
        (Some(arn), Some(flag)) if arn != flag => Err(Error::Usage(format!(
            "the ARN in `{target}` is in region {arn} but --region says {flag}; drop --region, \
             the ARN decides"
        ))),
        (Some(arn), _) => Ok(Some(arn)),
        (None, flag) => Ok(flag),
    }
}

/// Everything about the instance, and its password data fetched at the same time.
pub(super) struct Located {
    pub(super) resolved: Resolved,
    pub(super) password_data: Result<PasswordData, aws::AwsError>,
}

pub(super) async fn locate(
    target: &Target,
    args: &AwsArgs,
    with_password: bool,
) -> Result<(Aws, Located), Error> {
    let instance = target.require_instance()?;
    let aws = Aws::load(args.profile.as_deref(), region(target, args)?).await?;
    let choice = if args.private {
        AddressChoice::Private
    } else {
        AddressChoice::Public
    };
    let (cluster, arn, ec2_id) = match (&target.cluster, instance) {
        (Some(cluster), instance) => {
            let (arn, ec2_id) = in_cluster(&aws, cluster, instance, choice).await?;
            (Some(cluster.clone()), Some(arn), ec2_id)
        }
        // An EC2 instance alone: in whichever cluster it is registered in, or in none.
        (None, InstanceRef::Ec2InstanceId(id) | InstanceRef::Ec2InstanceArn { id, .. }) => {
            match aws::cluster_of(&aws, id).await? {
                Some((cluster, arn)) => {
                    status::note(format_args!("{id} is in ECS cluster {cluster}"));
                    (Some(cluster), Some(arn), id.clone())
                }
                None => {
                    status::note(format_args!(
                        "{id} is in no ECS cluster of {}; connecting to it as an EC2 instance",
                        aws.region()
                    ));
                    (None, None, id.clone())
                }
            }
        }
        (None, _) => return Err(Error::Usage(format!("`{target}` names no cluster"))),
    };
    info!(container_instance = ?arn, ec2_instance = %ec2_id, "found the instance");
    // Once the instance ID is known, its description and password data are independent.
    let (mut resolved, password_data) = if with_password {
        let (resolved, data) = tokio::join!(
            aws::resolve(&aws, cluster.as_deref(), arn, ec2_id.clone(), choice),
            aws::fetch_password_data(&aws, &ec2_id)
        );
        (resolved?, data)
    } else {
        let resolved = aws::resolve(&aws, cluster.as_deref(), arn, ec2_id, choice).await?;
        (resolved, Ok(PasswordData::NotReady))
    };
    if let Some(via) = &args.via {
        // Through a tunnel, the tunnel is what ecsrdp connects to and the instance needs no
        // address of its own.
        let (host, port) = host_port(via, aws::RDP_PORT).map_err(Error::Usage)?;
        resolved.through(host, port);
    }
    Ok((
        aws,
        Located {
            resolved,
            password_data,
        },
    ))
}

/// The container instance `instance` names in `cluster` (picked on the terminal for `cluster/`
/// and for a service on several instances): its ARN and EC2 instance ID. An EC2 instance that is
/// not registered there is told apart from one that does not exist.
async fn in_cluster(
    aws: &Aws,
    cluster: &str,
    instance: &InstanceRef,
    choice: AddressChoice,
) -> Result<(String, String), Error> {
    let picked;
    let instance = match instance {
        InstanceRef::Pick => {
            status::phase(format!("listing the instances of {cluster}"));
            let rows = aws::list(aws, cluster).await?;
            status::clear();
            picked = tokio::task::block_in_place(|| pick(cluster, &rows))?;
            &picked
        }
        instance => instance,
    };
    match aws::ec2_instance_id(aws, cluster, instance).await {
        // A service whose tasks run on several instances: on a terminal, pick one of them.
        Err(aws::AwsError::ServiceOnSeveralInstances { instances, .. }) if term::can_ask() => {
            let rows: Vec<aws::Listed> = aws::list(aws, cluster)
                .await?
                .into_iter()
                .filter(|row| instances.contains(&row.ec2_instance_id))
                .collect();
            let picked = tokio::task::block_in_place(|| pick(cluster, &rows))?;
            Ok(aws::ec2_instance_id(aws, cluster, &picked).await?)
        }
        Err(aws::AwsError::InstanceNotFound { .. })
            if matches!(instance, InstanceRef::Ec2InstanceId(_)) =>
        {
            Err(not_registered(aws, cluster, &instance.to_string(), choice).await?)
        }
        found => Ok(found?),
    }
}

/// Why EC2 instance `id` is not in `cluster`: registered in another cluster, in none (its ECS
/// agent has not registered it, or not yet), or no such instance at all.
async fn not_registered(
    aws: &Aws,
    cluster: &str,
    id: &str,
    choice: AddressChoice,
) -> Result<Error, Error> {
    if let Some((other, _)) = aws::cluster_of(aws, id).await? {
        return Ok(Error::Prerequisite(format!(
            "EC2 instance {id} is registered in cluster `{other}`, not `{cluster}`; connect with \
             `ecsrdp {other}/{id}` (or `ecsrdp {id}`, which finds its cluster)"
        )));
    }
    let resolved = match aws::resolve(aws, None, None, id.to_owned(), choice).await {
        Err(aws::AwsError::Ec2InstanceNotFound(_)) => {
            return Ok(Error::Aws(aws::AwsError::Ec2InstanceNotFound(
                id.to_owned(),
            )))
        }
        resolved => resolved?,
    };
    Ok(Error::Prerequisite(format!(
        "EC2 instance {id} ({}, {}) exists but is not registered in cluster `{cluster}`: its ECS \
         agent has not registered it, or not yet (Windows instances take several minutes after \
         launch; if it never does, check the cluster its user data names, \
         `Initialize-ECSAgent -Cluster {cluster}`). To connect to it meanwhile: `ecsrdp {id}`",
        resolved.platform, resolved.state
    )))
}

/// Picks the way in (see [`aws::choose_route`]) as the flags ask; a failed lookup that sent
/// `auto` to the direct address is said as a warning.
pub(super) async fn choose_route(
    aws: &Aws,
    resolved: &mut Resolved,
    args: &AwsArgs,
) -> Result<Route, Error> {
    let asked = Asked {
        way: match args.tunnel {
            TunnelChoice::Auto => Way::Auto,
            TunnelChoice::Direct => Way::Direct,
            TunnelChoice::Eice => Way::Eice,
            TunnelChoice::Ssm => Way::Ssm,
        },
        via: args.via.is_some(),
        private: args.private,
    };
    let (route, lookup_failed) = aws::choose_route(aws, resolved, asked).await?;
    if let Some(e) = lookup_failed {
        status::warn(format_args!(
            "could not look for another way in than the instance's address: {e}"
        ));
    }
    Ok(route)
}

/// Lets the user pick one of `rows` (the cluster's listing, Windows first) on the terminal;
/// the instance is named by its EC2 ID from then on. Without a terminal there is nobody to
/// ask: the error says what to type instead.
fn pick(cluster: &str, rows: &[Listed]) -> Result<InstanceRef, Error> {
    if !term::can_ask() {
        return Err(Error::Usage(format!(
            "`{cluster}/` picks an instance on a terminal, and there is none here; name the \
             instance (`{cluster}/i-…`), as `ecsrdp {cluster}` lists them"
        )));
    }
    if rows.is_empty() {
        return Err(Error::Usage(format!(
            "cluster {cluster} has no container instances to pick from"
        )));
    }
    let lines = picker_lines(rows);
    // Start on the first instance that can work: Windows, running, launched with a key pair.
    let ready = rows
        .iter()
        .position(|r| r.is_windows() && r.state == "running" && r.key_name.is_some())
        .unwrap_or(0);
    let prompt =
        format!("{cluster}: pick an instance (type to filter, arrows, Enter; Esc cancels)");
    let chosen = term::picker::pick(&prompt, &lines, ready)
        .map_err(|e| Error::Usage(format!("the instance picker failed: {e}")))?;
    match chosen {
        Some(index) => Ok(InstanceRef::Ec2InstanceId(
            rows[index].ec2_instance_id.clone(),
        )),
        None => Err(Error::Usage("no instance was picked".into())),
    }
}

/// The picker's lines, one a row whatever the rows hold: an EC2 `Name` tag may hold a line
/// break, which would split a row in two and shift every choice after it.
fn picker_lines(rows: &[Listed]) -> Vec<String> {
    let cells: Vec<[String; 6]> = rows.iter().map(line).collect();
    // `columns` ends every row with exactly one newline, and no cell holds one any more.
    columns(&cells).lines().map(str::to_owned).collect()
}

/// One instance as a row of the picker: what tells instances apart at a glance.
fn line(row: &Listed) -> [String; 6] {
    let shown = |text: &str| text.replace(char::is_control, " ");
    [
        shown(&row.ec2_instance_id),
        shown(&row.platform),
        shown(&row.state),
        shown(row.address.as_deref().unwrap_or("-")),
        shown(row.key_name.as_deref().unwrap_or("-")),
        shown(row.name.as_deref().unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_line_break_stays_on_its_row() {
        let row = |id: &str, name: &str| Listed {
            container_instance_id: "c".into(),
            ec2_instance_id: id.into(),
            name: Some(name.into()),
            platform: "windows".into(),
            state: "running".into(),
            address: None,
            key_name: None,
            status: "ACTIVE".into(),
            agent_connected: true,
            running_tasks: 0,
        };
        let rows = [row("i-1", "web\nserver\r\n"), row("i-2", "db")];
        let lines = picker_lines(&rows);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("i-1") && lines[0].contains("web server"));
        assert!(lines[1].starts_with("i-2"), "{lines:?}");
    }
}
