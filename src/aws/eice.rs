//! Finding the EC2 Instance Connect Endpoint that reaches a private instance, as aws-cli's
//! `ec2-instance-connect open-tunnel` does: one in the instance's subnet first, else any in its
//! VPC, in a state that admits tunnels.

use aws_sdk_ec2::types::Filter;

use super::{Aws, AwsError};

/// An EC2 Instance Connect Endpoint, as `DescribeInstanceConnectEndpoints` describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InstanceConnectEndpoint {
    pub id: String,
    pub dns_name: String,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
}

/// The states in which an endpoint opens tunnels.
const USABLE: [&str; 4] = [
    "create-complete",
    "update-in-progress",
    "update-complete",
    "update-failed",
];

/// The endpoint to use for an instance in `vpc_id`/`subnet_id`, if the VPC has one.
pub async fn find_endpoint(
    aws: &Aws,
    vpc_id: &str,
    subnet_id: Option<&str>,
) -> Result<Option<InstanceConnectEndpoint>, AwsError> {
    let pages = aws
        .ec2
        .describe_instance_connect_endpoints()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(
            Filter::builder()
                .name("state")
                .set_values(Some(USABLE.map(str::to_owned).to_vec()))
                .build(),
        )
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:DescribeInstanceConnectEndpoints", e))?;
    let endpoints: Vec<InstanceConnectEndpoint> = pages
        .iter()
        .flat_map(|page| page.instance_connect_endpoints())
        // The filters are the service's job, but an endpoint that cannot open a tunnel is no
        // use whatever the answer says.
        .filter(|e| e.state().is_some_and(|s| USABLE.contains(&s.as_str())))
        .filter(|e| e.vpc_id() == Some(vpc_id))
        .filter_map(|e| {
            Some(InstanceConnectEndpoint {
                id: e.instance_connect_endpoint_id()?.to_owned(),
                dns_name: e.dns_name()?.to_owned(),
                subnet_id: e.subnet_id().map(str::to_owned),
                security_group_ids: e.security_group_ids().to_vec(),
            })
        })
        .collect();
    let same_subnet = endpoints
        .iter()
        .position(|e| subnet_id.is_some() && e.subnet_id.as_deref() == subnet_id);
    Ok(match same_subnet {
        Some(i) => endpoints.into_iter().nth(i),
        None => endpoints.into_iter().next(),
    })
}
