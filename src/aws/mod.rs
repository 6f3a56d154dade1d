//! The AWS side: from a [`Target`](crate::target::Target) to an instance, its address, its
//! prerequisites and its encrypted password.
//!
//! Knows ECS and EC2, never RDP. Credentials, region and endpoint come from the standard chain
//! (`--profile`, `--region`, `AWS_*`, SSO), so `AWS_ENDPOINT_URL` points every call elsewhere.

mod checks;
mod eice;
mod error;
mod list;
mod password;
mod resolve;

use aws_config::BehaviorVersion;

pub use self::checks::{eice_reaches_instance, Check, SecurityGroup, RDP_PORT};
pub use self::eice::find_endpoint;
pub use self::error::AwsError;
pub use self::list::{clusters, list, ClusterRow, Listed};
pub use self::password::{fetch_password_data, wait_for_password_data, PasswordData};
pub use self::resolve::{ec2_instance_id, resolve, AddressChoice, Resolved};

/// The two service clients every command needs, built once from one shared config.
#[derive(Clone, Debug)]
pub struct Aws {
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
    config: aws_config::SdkConfig,
}

impl Aws {
    /// Loads the standard configuration chain, with `--profile`/`--region` on top.
    pub async fn load(profile: Option<&str>, region: Option<&str>) -> Result<Self, AwsError> {
        if let Some(profile) = profile {
            ensure_profile_exists(profile).await?;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(AwsError::NoRegion);
        }
        Ok(Aws {
            ecs: aws_sdk_ecs::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            config,
        })
    }

    /// The region every call goes to.
    pub fn region(&self) -> String {
        self.config
            .region()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Credentials from the same chain the service clients use, for signing a tunnel.
    pub async fn credentials(&self) -> Result<aws_credential_types::Credentials, AwsError> {
        use aws_credential_types::provider::ProvideCredentials as _;
        let provider = self
            .config
            .credentials_provider()
            .ok_or(AwsError::NoCredentials)?;
        provider.provide_credentials().await.map_err(|e| match e {
            aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_) => {
                AwsError::NoCredentials
            }
            other => AwsError::BadCredentials(
                aws_smithy_types::error::display::DisplayErrorContext(&other).to_string(),
            ),
        })
    }
}

/// A `--profile` that names nothing would otherwise surface as "no credentials": say what is
/// wrong. The files are read as the SDK reads them (AWS_CONFIG_FILE and
/// AWS_SHARED_CREDENTIALS_FILE included); files that cannot be read are left to the SDK.
async fn ensure_profile_exists(profile: &str) -> Result<(), AwsError> {
    use aws_types::os_shim_internal::{Env, Fs};
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let Ok(set) = aws_config::profile::parser::load(&Fs::real(), &Env::real(), &files, None).await
    else {
        return Ok(());
    };
    if set.get_profile(profile).is_some() {
        return Ok(());
    }
    let mut known: Vec<&str> = set.profiles().collect();
    known.sort_unstable();
    Err(AwsError::MissingProfile {
        profile: profile.to_owned(),
        known: if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        },
    })
}
