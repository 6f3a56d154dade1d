//! `ecsrdp` alone (the region's clusters) and `ecsrdp <cluster>` (its container instances), as
//! tables or JSON.

use std::process::ExitCode;

use super::error::Error;
use super::locate::region;
use crate::aws::{self, Aws};
use crate::cli::AwsArgs;
use crate::target::Target;
use crate::term::table::{columns, write_stdout};

/// `ecsrdp` alone: the account's clusters in the region, with what is in them.
pub(super) async fn list_clusters(args: &AwsArgs, json: bool) -> Result<ExitCode, Error> {
    let aws = Aws::load(args.profile.as_deref(), args.region.as_deref()).await?;
    let rows = aws::clusters(&aws).await?;
    if json {
        return print_json(&rows);
    }
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str(&format!(
            "no ECS clusters in {}; check --region and --profile\n",
            aws.region()
        ));
    } else {
        let mut table =
            vec![["CLUSTER", "STATUS", "CONTAINER INSTANCES", "RUNNING TASKS"].map(str::to_owned)];
        for row in &rows {
            table.push([
                row.name.clone(),
                row.status.clone(),
                row.container_instances.to_string(),
                row.running_tasks.to_string(),
            ]);
        }
        text.push_str(&columns(&table));
        text.push_str("\nlist a cluster's instances with: ecsrdp <cluster>\n");
    }
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `ecsrdp <cluster>`: a table of the cluster's container instances.
pub(super) async fn list(target: &Target, args: &AwsArgs, json: bool) -> Result<ExitCode, Error> {
    let cluster = target.cluster_name();
    let aws = Aws::load(args.profile.as_deref(), region(target, args)?).await?;
    let rows = aws::list(&aws, cluster).await?;
    if json {
        return print_json(&rows);
    }
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str(&format!("cluster {cluster} has no container instances\n"));
    } else {
        let mut table = vec![[
            "CONTAINER INSTANCE",
            "EC2 INSTANCE",
            "PLATFORM",
            "STATE",
            "ECS",
            "AGENT",
            "TASKS",
            "ADDRESS",
            "KEY PAIR",
            "NAME",
        ]
        .map(str::to_owned)];
        for row in &rows {
            table.push([
                row.container_instance_id.clone(),
                row.ec2_instance_id.clone(),
                row.platform.clone(),
                row.state.clone(),
                row.status.to_lowercase(),
                if row.agent_connected {
                    "connected"
                } else {
                    "disconnected"
                }
                .to_owned(),
                row.running_tasks.to_string(),
                row.address.clone().unwrap_or_else(|| "-".into()),
                row.key_name.clone().unwrap_or_else(|| "-".into()),
                row.name.clone().unwrap_or_default(),
            ]);
        }
        text.push_str(&columns(&table));
        // Suggest one that can work: Windows, running, launched with a key pair.
        let ready = rows
            .iter()
            .find(|r| r.is_windows() && r.state == "running" && r.key_name.is_some());
        if let Some(first) = ready {
            text.push_str(&format!(
                "\nconnect with: ecsrdp {cluster}/{}\n",
                first.ec2_instance_id
            ));
        }
    }
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// A listing as pretty JSON on stdout, for scripts.
fn print_json(rows: &impl serde::Serialize) -> Result<ExitCode, Error> {
    let text = serde_json::to_string_pretty(rows).map_err(|e| Error::Io {
        what: "cannot format the answer".into(),
        source: e.into(),
    })?;
    write_stdout(&format!("{text}\n"))?;
    Ok(ExitCode::SUCCESS)
}
