//! What the user typed as `<CLUSTER>[/<INSTANCE>]`, parsed once into a typed [`Target`].
//!
//! Pure: no IO. A cluster is a name or an ARN; an instance is a container instance ID, its
//! full ARN, the EC2 instance ID (`i-…`), `task/<id>` or `service/<name>`. A container instance
//! ARN alone also names its cluster (the long ARN format embeds it), so it is accepted as a whole
//! target too; so is an EC2 instance ID or ARN alone, the way the EC2 console and `aws ec2
//! describe-instances` name an instance, whatever cluster it is in (or none).

use std::fmt;
use std::str::FromStr;

/// A cluster plus, when connecting, one of its instances; or an EC2 instance alone
/// (`cluster` is `None` only then), found in whichever cluster it is registered in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub cluster: Option<String>,
    pub instance: Option<InstanceRef>,
}

/// The ways to name the instance a target means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceRef {
    /// The last segment of the container instance ARN, e.g. `0123abcd…`.
    ContainerInstanceId(String),
    /// `arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>`.
    ContainerInstanceArn(String),
    /// The EC2 instance behind it, `i-…`; it must be registered in the cluster.
    Ec2InstanceId(String),
    /// `arn:aws:ec2:<region>:<account>:instance/i-…`, typed alone: the EC2 instance `id`.
    Ec2InstanceArn { arn: String, id: String },
    /// `task/<id>`: the instance a task runs on.
    Task(String),
    /// `service/<name>`: the instance the service's task runs on.
    Service(String),
    /// Nothing after the `/`: the user picks one from the cluster's listing, on a terminal.
    Pick,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("the target is empty: give `<cluster>/<instance>`, e.g. `prod/i-0123456789abcdef0`")]
    Empty,
    #[error(
        "`{0}` is not a valid cluster name: use the name or ARN shown by `aws ecs list-clusters` \
         (letters, digits, `-` and `_`, up to 255 characters)"
    )]
    BadCluster(String),
    #[error(
        "`{0}` is not a container instance: give its ID (the last part of its ARN), its full \
         ARN, the EC2 instance ID (`i-` followed by hex digits), `task/<task-id>` or \
         `service/<name>`"
    )]
    BadInstance(String),
    #[error(
        "`{0}` names no instance: give `<cluster>/<instance>`, or `<cluster>/` to pick one on \
         the terminal; `ecsrdp <cluster>` lists the cluster's instances"
    )]
    MissingInstance(String),
}

impl Target {
    /// The region an ARN in the target names: a cluster lives in one region, whatever the
    /// default.
    pub fn region(&self) -> Option<&str> {
        let instance = match &self.instance {
            Some(InstanceRef::ContainerInstanceArn(arn)) => Some(arn.as_str()),
            Some(InstanceRef::Ec2InstanceArn { arn, .. }) => Some(arn.as_str()),
            _ => None,
        };
        [self.cluster.as_deref(), instance]
            .into_iter()
            .flatten()
            .filter(|text| text.starts_with("arn:"))
            // arn:partition:service:region:account:resource
            .find_map(|arn| arn.split(':').nth(3).filter(|r| !r.is_empty()))
    }

    /// The instance, or an error explaining that this command needs one.
    pub fn require_instance(&self) -> Result<&InstanceRef, TargetError> {
        self.instance
            .as_ref()
            .ok_or_else(|| TargetError::MissingInstance(self.to_string()))
    }

    /// The cluster, for the commands that list one (`ecsrdp <cluster>` always names it).
    pub fn cluster_name(&self) -> &str {
        self.cluster.as_deref().unwrap_or_default()
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TargetError::Empty);
        }
        // A container instance ARN on its own: its resource part is `<cluster>/<id>`.
        if let Some(rest) = arn_resource(text, "container-instance/") {
            let (cluster, _) = rest
                .split_once('/')
                .ok_or_else(|| TargetError::BadInstance(text.to_owned()))?;
            return Ok(Target {
                cluster: Some(parse_cluster(cluster)?),
                instance: Some(parse_instance(text)?),
            });
        }
        // An EC2 instance on its own, by ID or ARN: in whatever cluster it is registered in.
        if let Some(id) = arn_resource(text, "instance/") {
            return if is_ec2_instance_id(id) && text.split(':').nth(2) == Some("ec2") {
                Ok(Target {
                    cluster: None,
                    instance: Some(InstanceRef::Ec2InstanceArn {
                        arn: text.to_owned(),
                        id: id.to_owned(),
                    }),
                })
            } else {
                Err(TargetError::BadInstance(text.to_owned()))
            };
        }
        if is_ec2_instance_id(text) {
            return Ok(Target {
                cluster: None,
                instance: Some(InstanceRef::Ec2InstanceId(text.to_owned())),
            });
        }
        let (cluster, instance) = split_cluster(text);
        let cluster = Some(parse_cluster(cluster)?);
        let instance = match instance {
            None => None,
            Some("") => Some(InstanceRef::Pick),
            Some(instance) => Some(parse_instance(instance)?),
        };
        Ok(Target { cluster, instance })
    }
}

/// Splits at the `/` that ends the cluster; a cluster ARN has one `/` of its own.
fn split_cluster(text: &str) -> (&str, Option<&str>) {
    let skip = match text.find(":cluster/") {
        Some(at) if text.starts_with("arn:") => at + ":cluster/".len(),
        _ => 0,
    };
    match text[skip..].find('/') {
        Some(at) => (&text[..skip + at], Some(&text[skip + at + 1..])),
        None => (text, None),
    }
}

/// The part of an ARN after `<kind>`, when `text` is an ARN of that kind.
fn arn_resource<'a>(text: &'a str, kind: &str) -> Option<&'a str> {
    if !text.starts_with("arn:") {
        return None;
    }
    // arn:partition:service:region:account:resource
    let resource = text.splitn(6, ':').nth(5)?;
    resource.strip_prefix(kind)
}

fn parse_cluster(text: &str) -> Result<String, TargetError> {
    let name = match arn_resource(text, "cluster/") {
        Some(name) => name,
        None if text.starts_with("arn:") => return Err(TargetError::BadCluster(text.to_owned())),
        None => text,
    };
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(TargetError::BadCluster(text.to_owned()))
    }
}

fn parse_instance(text: &str) -> Result<InstanceRef, TargetError> {
    let bad = || TargetError::BadInstance(text.to_owned());
    let name_like = |t: &str| {
        !t.is_empty()
            && t.len() <= 255
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if let Some(id) = text.strip_prefix("task/") {
        return if name_like(id) {
            Ok(InstanceRef::Task(id.to_owned()))
        } else {
            Err(bad())
        };
    }
    if let Some(name) = text.strip_prefix("service/") {
        return if name_like(name) {
            Ok(InstanceRef::Service(name.to_owned()))
        } else {
            Err(bad())
        };
    }
    if text.starts_with("arn:") {
        let id = arn_resource(text, "container-instance/")
            .and_then(|rest| rest.rsplit('/').next())
            .ok_or_else(bad)?;
        return if is_container_instance_id(id) {
            Ok(InstanceRef::ContainerInstanceArn(text.to_owned()))
        } else {
            Err(bad())
        };
    }
    if let Some(hex) = text.strip_prefix("i-") {
        return if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(InstanceRef::Ec2InstanceId(text.to_owned()))
        } else {
            Err(bad())
        };
    }
    if is_container_instance_id(text) {
        Ok(InstanceRef::ContainerInstanceId(text.to_owned()))
    } else {
        Err(bad())
    }
}

/// An EC2 instance ID as EC2 writes it: `i-` and 8 or 17 lowercase hex digits. Only this exact
/// form is read as an instance when it stands alone; anything else alone is a cluster name.
fn is_ec2_instance_id(text: &str) -> bool {
    text.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// Container instance IDs are hex (32 digits today) or, in old clusters, UUIDs.
fn is_container_instance_id(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

impl fmt::Display for InstanceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstanceRef::ContainerInstanceId(id)
            | InstanceRef::ContainerInstanceArn(id)
            | InstanceRef::Ec2InstanceId(id) => id,
            InstanceRef::Ec2InstanceArn { arn, .. } => arn,
            InstanceRef::Task(id) => return write!(f, "task/{id}"),
            InstanceRef::Service(name) => return write!(f, "service/{name}"),
            InstanceRef::Pick => "",
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cluster, &self.instance) {
            (_, Some(InstanceRef::ContainerInstanceArn(arn))) => write!(f, "{arn}"),
            (Some(cluster), Some(instance)) => write!(f, "{cluster}/{instance}"),
            (None, Some(instance)) => write!(f, "{instance}"),
            (Some(cluster), None) => f.write_str(cluster),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> Result<Target, TargetError> {
        text.parse()
    }

    #[test]
    fn cluster_and_container_instance_id() {
        let t = target("prod/0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(t.cluster.as_deref(), Some("prod"));
        assert_eq!(
            t.instance,
            Some(InstanceRef::ContainerInstanceId(
                "0123456789abcdef0123456789abcdef".into()
            ))
        );
    }

    #[test]
    fn cluster_and_ec2_instance_id() {
        let t = target("prod/i-0abc123").unwrap();
        assert_eq!(
            t.instance,
            Some(InstanceRef::Ec2InstanceId("i-0abc123".into()))
        );
    }

    #[test]
    fn cluster_alone_lists() {
        assert_eq!(target("prod").unwrap().instance, None);
    }

    #[test]
    fn cluster_arn_with_instance() {
        let t = target("arn:aws:ecs:us-east-1:123456789012:cluster/prod/i-0abc").unwrap();
        assert_eq!(
            t.cluster.as_deref(),
            Some("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
        );
        assert_eq!(
            t.instance,
            Some(InstanceRef::Ec2InstanceId("i-0abc".into()))
        );
    }

    #[test]
    fn container_instance_arn_alone_names_its_cluster() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/0123abcd";
        let t = target(arn).unwrap();
        assert_eq!(t.cluster.as_deref(), Some("prod"));
        assert_eq!(
            t.instance,
            Some(InstanceRef::ContainerInstanceArn(arn.into()))
        );
    }

    #[test]
    fn cluster_then_container_instance_arn() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:container-instance/prod/0123abcd";
        let t = target(&format!("prod/{arn}")).unwrap();
        assert_eq!(
            t.instance,
            Some(InstanceRef::ContainerInstanceArn(arn.into()))
        );
    }

    #[test]
    fn an_arn_names_the_region() {
        let arn = "arn:aws:ecs:eu-west-3:123456789012:container-instance/prod/0123abcd";
        assert_eq!(target(arn).unwrap().region(), Some("eu-west-3"));
        let cluster = "arn:aws:ecs:ap-south-1:123456789012:cluster/prod/i-0abc";
        assert_eq!(target(cluster).unwrap().region(), Some("ap-south-1"));
        assert_eq!(target("prod/i-0abc").unwrap().region(), None);
    }

    #[test]
    fn tasks_and_services_name_their_instance() {
        let t = target("prod/task/0123abcd0123abcd").unwrap();
        assert_eq!(
            t.instance,
            Some(InstanceRef::Task("0123abcd0123abcd".into()))
        );
        assert_eq!(t.to_string(), "prod/task/0123abcd0123abcd");
        let s = target("prod/service/web-site").unwrap();
        assert_eq!(s.instance, Some(InstanceRef::Service("web-site".into())));
        assert!(target("prod/service/").is_err());
        assert!(target("prod/task/a b").is_err());
    }

    #[test]
    fn an_ec2_instance_alone_is_found_in_any_cluster() {
        for id in ["i-0123456789abcdef0", "i-0123abcd"] {
            let t = target(id).unwrap();
            assert_eq!(t.cluster, None);
            assert_eq!(t.instance, Some(InstanceRef::Ec2InstanceId(id.into())));
            assert_eq!(t.to_string(), id);
        }
        let arn = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0";
        let t = target(arn).unwrap();
        assert_eq!(t.cluster, None);
        assert_eq!(t.region(), Some("eu-west-1"));
        assert_eq!(
            t.instance,
            Some(InstanceRef::Ec2InstanceArn {
                arn: arn.into(),
                id: "i-0123456789abcdef0".into()
            })
        );
        // Not an EC2 ID in EC2's own form: a cluster, as before.
        assert_eq!(target("i-abc").unwrap().cluster.as_deref(), Some("i-abc"));
        assert!(target("arn:aws:ec2:eu-west-1:123456789012:instance/x").is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(target(""), Err(TargetError::Empty));
        assert_eq!(target("prod/").unwrap().instance, Some(InstanceRef::Pick));
        assert_eq!(target("prod/").unwrap().to_string(), "prod/");
        assert!(matches!(
            target("pr od/i-1"),
            Err(TargetError::BadCluster(_))
        ));
        assert!(matches!(
            target("prod/i-xyz"),
            Err(TargetError::BadInstance(_))
        ));
        assert!(matches!(
            target("prod/hello"),
            Err(TargetError::BadInstance(_))
        ));
        assert!(matches!(
            target("arn:aws:s3:::bucket/x"),
            Err(TargetError::BadCluster(_))
        ));
    }
}
