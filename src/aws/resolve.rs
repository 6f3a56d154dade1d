//! `<cluster>/<instance>` → EC2 instance → address, key pair and prerequisite checks.

use serde::Serialize;

use super::checks::{self, Check, Facts, SecurityGroup, RDP_PORT};
use super::eice::InstanceConnectEndpoint;
use super::{Aws, AwsError};
use crate::target::InstanceRef;

/// Which of the instance's addresses to connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressChoice {
    Public,
    Private,
}

/// Everything learnt about one instance; holds no secret.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    /// The ECS cluster it is registered in, and as which container instance; `None` for a
    /// Windows instance that is in no cluster (named by its EC2 ID alone).
    pub cluster: Option<String>,
    pub container_instance_arn: Option<String>,
    pub ec2_instance_id: String,
    pub platform: String,
    pub state: String,
    pub public_ip: Option<String>,
    pub public_dns: Option<String>,
    pub private_ip: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    /// The address ecsrdp connects to (before any `--via`).
    pub address: Option<String>,
    pub port: u16,
    pub key_name: Option<String>,
    pub name: Option<String>,
    pub security_groups: Vec<SecurityGroup>,
    /// The caller may not read the security groups (no `ec2:DescribeSecurityGroups`).
    pub security_groups_unreadable: bool,
    /// The EC2 Instance Connect Endpoint the session goes through, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<InstanceConnectEndpoint>,
    /// The instance's Systems Manager agent, when the session goes through Session Manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_manager: Option<super::ManagedInstance>,
    pub checks: Vec<Check>,
}

impl Resolved {
    /// The first required prerequisite that fails, if any.
    pub fn blocking_problem(&self) -> Option<&str> {
        self.checks
            .iter()
            .find(|c| c.required && !c.ok)
            .and_then(|c| c.problem.as_deref())
    }

    /// Failed prerequisites that do not block, for a warning.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.checks
            .iter()
            .filter(|c| !c.required && !c.ok)
            .filter_map(|c| c.problem.as_deref())
    }
}

/// Finds the container instance in the cluster and returns its ARN and EC2 instance ID.
pub async fn ec2_instance_id(
    aws: &Aws,
    cluster: &str,
    instance: &InstanceRef,
) -> Result<(String, String), AwsError> {
    let not_found = || AwsError::InstanceNotFound {
        cluster: cluster.to_owned(),
        instance: instance.to_string(),
    };
    let found = match instance {
        InstanceRef::ContainerInstanceId(id) | InstanceRef::ContainerInstanceArn(id) => {
            describe_container_instances(aws, cluster, vec![id.clone()])
                .await?
                .into_iter()
                .next()
        }
        InstanceRef::Task(task) => {
            let arn = task_instance(aws, cluster, task).await?;
            describe_container_instances(aws, cluster, vec![arn])
                .await?
                .into_iter()
                .next()
        }
        InstanceRef::Service(service) => {
            let arn = service_instance(aws, cluster, service).await?;
            describe_container_instances(aws, cluster, vec![arn])
                .await?
                .into_iter()
                .next()
        }
        // ECS's cluster query language finds it without listing the whole cluster.
        InstanceRef::Ec2InstanceId(ec2_id) | InstanceRef::Ec2InstanceArn { id: ec2_id, .. } => {
            let arns = list_container_instance_arns(
                aws,
                cluster,
                Some(format!("ec2InstanceId == {ec2_id}")),
            )
            .await?;
            let described = describe_container_instances(aws, cluster, arns).await?;
            described.into_iter().find(|(_, id)| id == ec2_id)
        }
        // Picked on the terminal before anything asks AWS for it (`app::locate`).
        InstanceRef::Pick => None,
    };
    found.ok_or_else(not_found)
}

/// The cluster an EC2 instance is registered in, and as which container instance, if any: ECS
/// has no reverse lookup, so each cluster of the region is asked (all at once) with the cluster
/// query language.
pub async fn cluster_of(aws: &Aws, ec2_id: &str) -> Result<Option<(String, String)>, AwsError> {
    let clusters = cluster_arns(aws).await?;
    let filter = format!("ec2InstanceId == {ec2_id}");
    let found = futures_util::future::join_all(clusters.iter().map(|cluster| {
        let filter = filter.clone();
        async move {
            let arns = aws
                .ecs
                .list_container_instances()
                .cluster(cluster)
                .filter(filter)
                .send()
                .await
                .map_err(|e| cluster_error(cluster, "ecs:ListContainerInstances", e))?;
            let described =
                describe_container_instances(aws, cluster, arns.container_instance_arns().to_vec())
                    .await?;
            Ok::<_, AwsError>(
                described
                    .into_iter()
                    .find(|(_, id)| id == ec2_id)
                    .map(|(arn, _)| (cluster.clone(), arn)),
            )
        }
    }))
    .await;
    for result in found {
        if let Some((cluster, arn)) = result? {
            // The cluster's name, as people type it, from its ARN.
            let name = cluster.rsplit('/').next().unwrap_or(&cluster).to_owned();
            return Ok(Some((name, arn)));
        }
    }
    Ok(None)
}

/// The ARN of every ECS cluster of the region, page by page.
pub(super) async fn cluster_arns(aws: &Aws) -> Result<Vec<String>, AwsError> {
    let pages = aws
        .ecs
        .list_clusters()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::from_sdk("ecs:ListClusters", e))?;
    Ok(pages
        .iter()
        .flat_map(|page| page.cluster_arns())
        .cloned()
        .collect())
}

/// The container instance a task runs on; a Fargate task has none.
async fn task_instance(aws: &Aws, cluster: &str, task: &str) -> Result<String, AwsError> {
    let output = aws
        .ecs
        .describe_tasks()
        .cluster(cluster)
        .tasks(task)
        .send()
        .await
        .map_err(|e| cluster_error(cluster, "ecs:DescribeTasks", e))?;
    let found = output
        .tasks()
        .first()
        .ok_or_else(|| AwsError::TaskNotFound {
            cluster: cluster.to_owned(),
            task: task.to_owned(),
        })?;
    found
        .container_instance_arn()
        .map(str::to_owned)
        .ok_or_else(|| AwsError::NoInstance {
            what: format!("task {task}"),
        })
}

/// The one container instance a service's running tasks are on.
async fn service_instance(aws: &Aws, cluster: &str, service: &str) -> Result<String, AwsError> {
    let pages = aws
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| cluster_error(cluster, "ecs:ListTasks", e))?;
    let arns: Vec<String> = pages
        .iter()
        .flat_map(|page| page.task_arns())
        .cloned()
        .collect();
    let mut instances = Vec::new();
    let mut fargate = false;
    for chunk in arns.chunks(100) {
        let output = aws
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| cluster_error(cluster, "ecs:DescribeTasks", e))?;
        for task in output.tasks() {
            match task.container_instance_arn() {
                Some(arn) if !instances.iter().any(|i| i == arn) => instances.push(arn.to_owned()),
                Some(_) => {}
                None => fargate = true,
            }
        }
    }
    match instances.len() {
        0 if fargate => Err(AwsError::NoInstance {
            what: format!("service {service}"),
        }),
        0 => Err(AwsError::ServiceWithoutTasks {
            cluster: cluster.to_owned(),
            service: service.to_owned(),
        }),
        1 => Ok(instances.remove(0)),
        _ => {
            let ids = describe_container_instances(aws, cluster, instances).await?;
            Err(AwsError::ServiceOnSeveralInstances {
                cluster: cluster.to_owned(),
                service: service.to_owned(),
                instances: ids.into_iter().map(|(_, id)| id).collect(),
            })
        }
    }
}

/// Every container instance of the cluster (page by page: AWS gives at most 100 at a time), or
/// those a cluster query (`filter`) selects.
pub(super) async fn list_container_instance_arns(
    aws: &Aws,
    cluster: &str,
    filter: Option<String>,
) -> Result<Vec<String>, AwsError> {
    let pages = aws
        .ecs
        .list_container_instances()
        .cluster(cluster)
        .set_filter(filter)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| cluster_error(cluster, "ecs:ListContainerInstances", e))?;
    let arns: Vec<String> = pages
        .iter()
        .flat_map(|page| page.container_instance_arns())
        .cloned()
        .collect();
    if arns.is_empty() {
        ensure_cluster_exists(aws, cluster).await?;
    }
    Ok(arns)
}

/// An empty listing may mean an unknown cluster (some endpoints answer so): `DescribeClusters`
/// reports a missing one in `failures`.
async fn ensure_cluster_exists(aws: &Aws, cluster: &str) -> Result<(), AwsError> {
    let output = aws
        .ecs
        .describe_clusters()
        .clusters(cluster)
        .send()
        .await
        .map_err(|e| cluster_error(cluster, "ecs:DescribeClusters", e))?;
    let active = output
        .clusters()
        .iter()
        .any(|c| c.status().is_none_or(|s| s == "ACTIVE"));
    if active {
        Ok(())
    } else {
        Err(AwsError::ClusterNotFound(cluster.to_owned()))
    }
}

/// `DescribeContainerInstances` → `(container instance ARN, EC2 instance ID)` pairs. Instances
/// it does not know come back in `failures` (reason `MISSING`), not as an error: they are
/// simply absent from the answer.
pub(super) async fn describe_container_instances(
    aws: &Aws,
    cluster: &str,
    ids: Vec<String>,
) -> Result<Vec<(String, String)>, AwsError> {
    Ok(describe(aws, cluster, ids)
        .await?
        .iter()
        .filter_map(|ci| {
            Some((
                ci.container_instance_arn()?.to_owned(),
                ci.ec2_instance_id()?.to_owned(),
            ))
        })
        .collect())
}

/// ECS's whole description of up to 100 container instances (DescribeContainerInstances' limit).
pub(super) async fn describe(
    aws: &Aws,
    cluster: &str,
    ids: Vec<String>,
) -> Result<Vec<aws_sdk_ecs::types::ContainerInstance>, AwsError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let output = aws
        .ecs
        .describe_container_instances()
        .cluster(cluster)
        .set_container_instances(Some(ids))
        .send()
        .await
        .map_err(|e| cluster_error(cluster, "ecs:DescribeContainerInstances", e))?;
    Ok(output.container_instances.unwrap_or_default())
}

fn cluster_error<E, R>(
    cluster: &str,
    action: &'static str,
    error: aws_sdk_ecs::error::SdkError<E, R>,
) -> AwsError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match AwsError::from_sdk(action, error) {
        AwsError::Service { code, .. } if code == "ClusterNotFoundException" => {
            AwsError::ClusterNotFound(cluster.to_owned())
        }
        other => other,
    }
}

/// Describes the EC2 instance and its security groups, and runs the prerequisite checks.
pub async fn resolve(
    aws: &Aws,
    cluster: Option<&str>,
    container_instance_arn: Option<String>,
    ec2_instance_id: String,
    choice: AddressChoice,
) -> Result<Resolved, AwsError> {
    let output = aws
        .ec2
        .describe_instances()
        .instance_ids(&ec2_instance_id)
        .send()
        .await
        .map_err(|e| match AwsError::from_sdk("ec2:DescribeInstances", e) {
            AwsError::Service { code, .. } if code.starts_with("InvalidInstanceID") => {
                AwsError::Ec2InstanceNotFound(ec2_instance_id.clone())
            }
            other => other,
        })?;
    let instance = output
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(ec2_instance_id.as_str()))
        .ok_or_else(|| AwsError::Ec2InstanceNotFound(ec2_instance_id.clone()))?;

    let group_ids: Vec<String> = instance
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    // Without ec2:DescribeSecurityGroups the port check cannot be made; the rest can.
    let (security_groups, groups_unreadable) = match describe_security_groups(aws, group_ids).await
    {
        Ok(groups) => (groups, false),
        Err(AwsError::AccessDenied { .. }) => (Vec::new(), true),
        Err(e) => return Err(e),
    };

    let owned = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    let public_ip = owned(instance.public_ip_address());
    let public_dns = owned(instance.public_dns_name());
    let private_ip = owned(instance.private_ip_address());
    let vpc_id = owned(instance.vpc_id());
    let subnet_id = owned(instance.subnet_id());
    let address = match choice {
        AddressChoice::Public => public_ip.clone().or_else(|| public_dns.clone()),
        AddressChoice::Private => private_ip.clone(),
    };
    let platform = instance
        .platform()
        .map(|p| p.as_str().to_owned())
        .or_else(|| owned(instance.platform_details()))
        .unwrap_or_else(|| "Linux/UNIX".to_owned());
    let state = instance
        .state()
        .and_then(|s| s.name())
        .map_or_else(|| "unknown".to_owned(), |n| n.as_str().to_owned());
    let key_name = owned(instance.key_name());
    let name = instance
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| owned(t.value()));

    let checks = checks::run(&Facts {
        ec2_instance_id: &ec2_instance_id,
        platform: &platform,
        state: &state,
        key_name: key_name.as_deref(),
        address: address.as_deref(),
        private: choice == AddressChoice::Private,
        security_groups: &security_groups,
        groups_unreadable,
    });

    Ok(Resolved {
        cluster: cluster.map(str::to_owned),
        container_instance_arn,
        ec2_instance_id,
        platform,
        state,
        public_ip,
        public_dns,
        private_ip,
        vpc_id,
        subnet_id,
        address,
        port: RDP_PORT,
        key_name,
        name,
        security_groups,
        security_groups_unreadable: groups_unreadable,
        tunnel: None,
        session_manager: None,
        checks,
    })
}

async fn describe_security_groups(
    aws: &Aws,
    ids: Vec<String>,
) -> Result<Vec<SecurityGroup>, AwsError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let output = aws
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(ids))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", e))?;
    Ok(output
        .security_groups()
        .iter()
        .map(|group| SecurityGroup {
            id: group.group_id().unwrap_or_default().to_owned(),
            name: group.group_name().unwrap_or_default().to_owned(),
            rdp_sources: group
                .ip_permissions()
                .iter()
                .flat_map(checks::rdp_sources)
                .collect(),
        })
        .collect())
}
