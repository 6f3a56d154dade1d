//! What can go wrong on the AWS side, each case with the advice a user needs.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::sso::SsoLoginNeeded;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS region is configured; pass --region (e.g. --region us-east-1), set AWS_REGION, or \
         set `region` in your AWS profile"
    )]
    NoRegion,
    #[error(
        "no AWS credentials were found; run `aws configure` or `aws sso login`, pass --profile, or \
         set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    NoCredentials,
    #[error(
        "the AWS profile `{profile}` is not defined in your AWS config or credentials file \
         (profiles found: {known}); check the name, or create it with `aws configure --profile \
         {profile}`"
    )]
    MissingProfile { profile: String, known: String },
    #[error(
        "the AWS SSO login of profile `{profile}` has expired or was never made; run `aws sso \
         login --profile {profile}` and connect again ({detail})"
    )]
    SsoLoginNeeded { profile: String, detail: String },
    #[error("AWS rejected the credentials ({0}); refresh them (e.g. `aws sso login`) or pick another --profile")]
    BadCredentials(String),
    #[error(
        "access denied for {action}: the credentials in use may not call it; ask for the \
         `{action}` permission (ecsrdp's resources/iam-policy.json lists every action it needs) \
         or use another --profile{}",
        if message.is_empty() { String::new() } else { format!(" (AWS: {message})") }
    )]
    AccessDenied {
        action: &'static str,
        message: String,
    },
    #[error(
        "cannot reach AWS for {action} ({detail}); check your network, proxy and AWS_ENDPOINT_URL"
    )]
    Unreachable {
        action: &'static str,
        detail: String,
    },
    #[error(
        "cluster `{0}` was not found in this account and region; list clusters with \
         `aws ecs list-clusters`, and check --region and --profile"
    )]
    ClusterNotFound(String),
    #[error(
        "container instance `{instance}` is not registered in cluster `{cluster}`; list the \
         cluster's instances with `ecsrdp {cluster}`"
    )]
    InstanceNotFound { cluster: String, instance: String },
    #[error(
        "EC2 instance `{0}` does not exist (it may have been terminated); list the cluster's \
         instances with `ecsrdp <cluster>`"
    )]
    Ec2InstanceNotFound(String),
    #[error(
        "AWS kept throttling {action} ({code}) through ecsrdp's retries; wait a minute and try \
         again (AWS_MAX_ATTEMPTS raises the number of attempts)"
    )]
    Throttled { action: &'static str, code: String },
    #[error(
        "AWS refused {action} as expired ({code}): this machine's clock is probably wrong; set \
         it (e.g. `sudo timedatectl set-ntp true`) and try again"
    )]
    ClockSkew { action: &'static str, code: String },
    #[error(
        "task `{task}` was not found in cluster `{cluster}`; list running tasks with \
         `aws ecs list-tasks --cluster {cluster}`"
    )]
    TaskNotFound { cluster: String, task: String },
    #[error(
        "{what} runs on Fargate, which has no instance to connect to; use \
         `aws ecs execute-command` to reach its container"
    )]
    NoInstance { what: String },
    #[error(
        "service `{service}` has no running task in cluster `{cluster}`, so no instance to \
         connect to; check it with `aws ecs describe-services --cluster {cluster} --services \
         {service}`"
    )]
    ServiceWithoutTasks { cluster: String, service: String },
    #[error(
        "service `{service}` runs on {} instances ({}); pick one, e.g. `ecsrdp {cluster}/{}`",
        instances.len(),
        instances.join(", "),
        instances.first().map(String::as_str).unwrap_or_default()
    )]
    ServiceOnSeveralInstances {
        cluster: String,
        service: String,
        instances: Vec<String>,
    },
    #[error("AWS answered {action} with {code}: {message}")]
    Service {
        action: &'static str,
        code: String,
        message: String,
    },
}

impl AwsError {
    /// Turns an SDK error into the case the user can act on.
    pub(super) fn from_sdk<E, R>(action: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match &error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                let code = err.code().unwrap_or("Unknown").to_owned();
                let message = err.message().unwrap_or_default().to_owned();
                match code.as_str() {
                    "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
                        AwsError::AccessDenied { action, message }
                    }
                    "UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "ExpiredToken"
                    | "ExpiredTokenException"
                    | "AuthFailure"
                    | "InvalidSignatureException"
                    | "SignatureDoesNotMatch" => AwsError::BadCredentials(code),
                    // The SDK has already retried these (standard retry mode).
                    "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "TooManyRequestsException"
                    | "RequestThrottled"
                    | "RequestThrottledException" => AwsError::Throttled { action, code },
                    "RequestExpired" | "RequestTimeTooSkewed" | "RequestInTheFuture" => {
                        AwsError::ClockSkew { action, code }
                    }
                    _ => AwsError::Service {
                        action,
                        code,
                        message,
                    },
                }
            }
            _ => match find::<CredentialsError>(&error) {
                Some(credentials) => AwsError::from_credentials(credentials),
                None => AwsError::Unreachable {
                    action,
                    detail: last_cause(&error),
                },
            },
        }
    }

    /// A credential provider's failure: none found, an SSO login to renew, or rejected.
    pub(super) fn from_credentials(error: &CredentialsError) -> Self {
        if let CredentialsError::CredentialsNotLoaded(_) = error {
            return AwsError::NoCredentials;
        }
        match find::<SsoLoginNeeded>(error) {
            Some(sso) => AwsError::SsoLoginNeeded {
                profile: sso.profile.clone(),
                detail: sso.detail.clone(),
            },
            None => AwsError::BadCredentials(DisplayErrorContext(error).to_string()),
        }
    }
}

/// The first error of type `T` in the chain of causes: errors are told apart by type, never by
/// the words of a message.
fn find<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        cause = current.source();
    }
    None
}

/// The innermost cause, which is the readable one ("Connection refused"), not the SDK's wrapper.
fn last_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
