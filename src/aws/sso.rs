//! Credentials from IAM Identity Center (SSO) fail in one way a user can fix in one command:
//! the cached login has expired (or never happened), and `aws sso login --profile P` renews it.
//! The SDK's own error for that is a private type, so the profile's provider is wrapped and its
//! failures carry [`SsoLoginNeeded`], which the error classification finds by type.

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};

/// The SSO login of `profile` cannot give credentials; `detail` is the SDK's reason.
#[derive(Debug, thiserror::Error)]
#[error(
    "the IAM Identity Center (SSO) login of profile `{profile}` cannot give credentials ({detail})"
)]
pub struct SsoLoginNeeded {
    pub profile: String,
    pub detail: String,
}

/// The credential chain of an SSO profile, its failures named after the profile.
#[derive(Debug)]
pub(super) struct Named {
    pub inner: SharedCredentialsProvider,
    pub profile: String,
}

impl ProvideCredentials for Named {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.inner.provide_credentials().await.map_err(|e| match e {
                // Other providers in the chain (environment keys) had nothing either: the
                // SSO provider's own failure is the one inside.
                CredentialsError::CredentialsNotLoaded(_) | CredentialsError::ProviderError(_) => {
                    CredentialsError::provider_error(SsoLoginNeeded {
                        profile: self.profile.clone(),
                        detail: innermost(&e),
                    })
                }
                other => other,
            })
        })
    }
}

/// The SDK's innermost reason ("the SSO token has expired and cannot be refreshed"), without
/// the layers of "an error occurred while loading credentials" around it.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
