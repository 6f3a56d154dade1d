//! `ecsrdp <cluster>`: the cluster's container instances, Windows first.

use super::resolve::{cluster_arns, describe, list_container_instance_arns};
use super::{Aws, AwsError};

/// One row of the listing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Listed {
    pub container_instance_id: String,
    pub ec2_instance_id: String,
    pub name: Option<String>,
    pub platform: String,
    pub state: String,
    pub address: Option<String>,
    pub key_name: Option<String>,
    /// ECS's own status of the container instance: ACTIVE, DRAINING...
    pub status: String,
    /// Whether the ECS agent on it is connected (a disconnected agent often means a stuck or
    /// rebooting instance).
    pub agent_connected: bool,
    pub running_tasks: i32,
}

impl Listed {
    pub fn is_windows(&self) -> bool {
        self.platform.eq_ignore_ascii_case("windows")
    }
}

/// One cluster of the account and region, for `ecsrdp` alone.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClusterRow {
    pub name: String,
    pub status: String,
    pub container_instances: i32,
    pub running_tasks: i32,
}

/// Every ECS cluster, described in batches of 100 (DescribeClusters' limit).
pub async fn clusters(aws: &Aws) -> Result<Vec<ClusterRow>, AwsError> {
    let arns = cluster_arns(aws).await?;
    let mut rows = Vec::new();
    for chunk in arns.chunks(100) {
        let described = aws
            .ecs
            .describe_clusters()
            .set_clusters(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DescribeClusters", e))?;
        rows.extend(described.clusters().iter().map(|c| ClusterRow {
            name: c.cluster_name().unwrap_or_default().to_owned(),
            status: c.status().unwrap_or_default().to_owned(),
            container_instances: c.registered_container_instances_count(),
            running_tasks: c.running_tasks_count(),
        }));
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// The most values EC2 takes in one filter.
const EC2_FILTER_VALUES: usize = 200;

pub async fn list(aws: &Aws, cluster: &str) -> Result<Vec<Listed>, AwsError> {
    let arns = list_container_instance_arns(aws, cluster, None).await?;
    let mut described = Vec::new();
    for chunk in arns.chunks(100) {
        described.extend(describe(aws, cluster, chunk.to_vec()).await?);
    }
    let ids: Vec<String> = described
        .iter()
        .filter_map(|ci| ci.ec2_instance_id().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut instances = Vec::new();
    // A filter, not instance IDs: one terminated instance must not fail the whole listing. EC2
    // takes at most 200 values in one filter.
    for chunk in ids.chunks(EC2_FILTER_VALUES) {
        let pages = aws
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeInstances", e))?;
        instances.extend(
            pages
                .into_iter()
                .flat_map(|page| page.reservations.unwrap_or_default())
                .flat_map(|r| r.instances.unwrap_or_default()),
        );
    }

    let mut rows: Vec<Listed> = described
        .iter()
        .filter_map(|ci| {
            let arn = ci.container_instance_arn()?.to_owned();
            let ec2_instance_id = ci.ec2_instance_id()?.to_owned();
            let instance = instances
                .iter()
                .find(|i| i.instance_id() == Some(ec2_instance_id.as_str()));
            let text = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
            Some(Listed {
                container_instance_id: arn.rsplit('/').next().unwrap_or(&arn).to_owned(),
                name: instance.and_then(|i| {
                    i.tags()
                        .iter()
                        .find(|t| t.key() == Some("Name"))
                        .and_then(|t| text(t.value()))
                }),
                platform: instance
                    .and_then(|i| i.platform().map(|p| p.as_str().to_owned()))
                    .unwrap_or_else(|| "linux".to_owned()),
                state: instance
                    .and_then(|i| i.state()?.name().map(|n| n.as_str().to_owned()))
                    .unwrap_or_else(|| "missing".to_owned()),
                address: instance.and_then(|i| {
                    text(i.public_ip_address()).or_else(|| text(i.private_ip_address()))
                }),
                key_name: instance.and_then(|i| text(i.key_name())),
                status: ci.status().unwrap_or("-").to_owned(),
                agent_connected: ci.agent_connected(),
                running_tasks: ci.running_tasks_count(),
                ec2_instance_id,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (!a.is_windows(), a.name.as_deref(), &a.ec2_instance_id).cmp(&(
            !b.is_windows(),
            b.name.as_deref(),
            &b.ec2_instance_id,
        ))
    });
    Ok(rows)
}
