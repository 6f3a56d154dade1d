//! `ecsrdp <cluster>/` on a terminal: choose the instance from the cluster's listing (type to
//! filter, arrows, Enter), instead of copying an ID out of `ecsrdp <cluster>`.

use std::io::IsTerminal as _;

use crate::aws::Listed;
use crate::error::Error;
use crate::target::InstanceRef;

/// Lets the user pick one of `rows` (the cluster's listing, Windows first) on the terminal;
/// the instance is named by its EC2 ID from then on. Without a terminal there is nobody to
/// ask: the error says what to type instead.
pub fn pick(cluster: &str, rows: &[Listed]) -> Result<InstanceRef, Error> {
    if !can_ask() {
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
    let lines = crate::app::columns(&rows.iter().map(line).collect::<Vec<_>>());
    // Start on the first instance that can work: Windows, running, launched with a key pair.
    let ready = rows
        .iter()
        .position(|r| r.is_windows() && r.state == "running" && r.key_name.is_some())
        .unwrap_or(0);
    let chosen = crate::status::suspend(|| {
        dialoguer::FuzzySelect::new()
            .with_prompt(format!(
                "{cluster}: pick an instance (type to filter, arrows, Enter; Esc cancels)"
            ))
            .items(lines.lines())
            .default(ready)
            .max_length(15)
            .interact_on_opt(&dialoguer::console::Term::stderr())
    })
    .map_err(|e| Error::Usage(format!("the instance picker failed: {e}")))?;
    match chosen {
        Some(index) => Ok(InstanceRef::Ec2InstanceId(
            rows[index].ec2_instance_id.clone(),
        )),
        None => Err(Error::Usage("no instance was picked".into())),
    }
}

/// Whether there is someone to ask: a terminal on both stdin and stderr.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// One instance as a row of the picker: what tells instances apart at a glance.
fn line(row: &Listed) -> [String; 6] {
    [
        row.ec2_instance_id.clone(),
        row.platform.clone(),
        row.state.clone(),
        row.address.clone().unwrap_or_else(|| "-".into()),
        row.key_name.clone().unwrap_or_else(|| "-".into()),
        row.name.clone().unwrap_or_default(),
    ]
}
