//! The AWS side: from a [`Target`](crate::target::Target) to an instance, its address, its
//! prerequisites, its encrypted password and the thumbprint of its RDP certificate.
//!
//! Knows ECS, EC2 and Systems Manager, never RDP. Credentials, region and endpoint come from the standard chain
//! (`--profile`, `--region`, `AWS_*`, SSO), so `AWS_ENDPOINT_URL` points every call elsewhere.

mod checks;
mod console;
mod eice;
mod error;
mod list;
mod password;
mod resolve;
mod route;
mod ssm;
mod sso;

use aws_config::profile::ProfileSet;
use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;

pub use self::checks::{eice_reaches_instance, Check, CheckKind, SecurityGroup, RDP_PORT};
pub use self::console::published_thumbprint;
pub use self::eice::{find_endpoint, InstanceConnectEndpoint};
pub use self::error::AwsError;
pub use self::list::{clusters, list, ClusterRow, Listed};
pub use self::password::{fetch_password_data, wait_for_password_data, PasswordData};
pub use self::resolve::{cluster_of, ec2_instance_id, resolve, AddressChoice, Resolved};
pub use self::route::{choose_route, ways_in, Asked, Route, RouteError, Way, WayIn};
pub use self::ssm::{
    managed_instance, start_session, terminate_session, ManagedInstance, SsmSession,
};
pub use self::sso::SsoLoginNeeded;

/// The service clients the commands need, built once from one shared config.
#[derive(Clone, Debug)]
pub struct Aws {
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    config: aws_config::SdkConfig,
    /// The credentials [`Aws::credentials`] last gave out. The service clients cache theirs
    /// inside the SDK; a tunnel signs outside it, and asking the chain at each tunnel open would
    /// run a `credential_process` (or refresh an SSO token) every time.
    signing: std::sync::Arc<tokio::sync::Mutex<Option<aws_credential_types::Credentials>>>,
}

/// Credentials closer than this to their expiry are fetched anew: a tunnel signed with them
/// must still be valid when the service checks it.
const CREDENTIALS_MARGIN: std::time::Duration = std::time::Duration::from_secs(300);

/// How long AWS may take. The SDK's default bounds only the TCP connect: an endpoint or proxy
/// that accepts a connection and never answers would hang ecsrdp for good.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        // One try; the SDK's retries (three by default) each get their own.
        .operation_attempt_timeout(std::time::Duration::from_secs(15))
        .operation_timeout(std::time::Duration::from_secs(60))
        .build()
}

impl Aws {
    /// Loads the standard configuration chain, with `--profile`/`--region` on top.
    pub async fn load(profile: Option<&str>, region: Option<&str>) -> Result<Self, AwsError> {
        let profiles = profiles().await;
        if let (Some(profile), Some(set)) = (profile, &profiles) {
            ensure_profile_exists(set, profile)?;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts());
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        let mut config = loader.load().await;
        if config.region().is_none() {
            return Err(AwsError::NoRegion);
        }
        let active = profile
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_PROFILE").ok())
            .unwrap_or_else(|| "default".to_owned());
        if let (Some(set), Some(inner)) = (&profiles, config.credentials_provider()) {
            if uses_sso(set, &active) {
                config = config
                    .into_builder()
                    .credentials_provider(SharedCredentialsProvider::new(sso::Named {
                        inner,
                        profile: active,
                    }))
                    .build();
            }
        }
        Ok(Aws {
            ecs: aws_sdk_ecs::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            config,
            signing: std::sync::Arc::default(),
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
    /// Kept while they are good for more than [`CREDENTIALS_MARGIN`] (for good, when they
    /// never expire); a failure is not kept, so the next tunnel asks again.
    pub async fn credentials(&self) -> Result<aws_credential_types::Credentials, AwsError> {
        use aws_credential_types::provider::ProvideCredentials as _;
        let mut kept = self.signing.lock().await;
        let fresh = |c: &aws_credential_types::Credentials| {
            c.expiry().is_none_or(|at| {
                at.duration_since(std::time::SystemTime::now())
                    .is_ok_and(|left| left > CREDENTIALS_MARGIN)
            })
        };
        if let Some(credentials) = kept.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let provider = self
            .config
            .credentials_provider()
            .ok_or(AwsError::NoCredentials)?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| AwsError::from_credentials(&e))?;
        *kept = Some(credentials.clone());
        Ok(credentials)
    }
}

/// The AWS config and credentials files, read as the SDK reads them (AWS_CONFIG_FILE and
/// AWS_SHARED_CREDENTIALS_FILE included); `None` when they cannot be read, which is left to the
/// SDK to report.
async fn profiles() -> Option<ProfileSet> {
    use aws_types::os_shim_internal::{Env, Fs};
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    aws_config::profile::parser::load(&Fs::real(), &Env::real(), &files, None)
        .await
        .ok()
}

/// A `--profile` that names nothing would otherwise surface as "no credentials": say what is
/// wrong.
fn ensure_profile_exists(set: &ProfileSet, profile: &str) -> Result<(), AwsError> {
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

/// Whether `profile` gets its credentials through IAM Identity Center (SSO), either form.
fn uses_sso(set: &ProfileSet, profile: &str) -> bool {
    set.get_profile(profile)
        .is_some_and(|p| p.get("sso_session").is_some() || p.get("sso_start_url").is_some())
}
