//! `GetPasswordData`: the Administrator password, encrypted to the instance's key pair.
//!
//! AWS answers with an empty string until Windows has set the password (up to 15 minutes after
//! launch), so waiting is a poll; the caller tells the person what it is waiting for.

use std::time::{Duration, Instant};

use super::{Aws, AwsError};

/// The encrypted password, or AWS's "not yet".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordData {
    /// Base64 of the RSA ciphertext; public data, useless without the private key.
    Ready(String),
    NotReady,
}

pub async fn fetch_password_data(
    aws: &Aws,
    ec2_instance_id: &str,
) -> Result<PasswordData, AwsError> {
    let output = aws
        .ec2
        .get_password_data()
        .instance_id(ec2_instance_id)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ec2:GetPasswordData", e))?;
    Ok(match output.password_data().map(str::trim) {
        Some(data) if !data.is_empty() => PasswordData::Ready(data.to_owned()),
        _ => PasswordData::NotReady,
    })
}

/// Polls until the password is ready or `limit` has passed.
pub async fn wait_for_password_data(
    aws: &Aws,
    ec2_instance_id: &str,
    limit: Duration,
    every: Duration,
) -> Result<PasswordData, AwsError> {
    let started = Instant::now();
    loop {
        match fetch_password_data(aws, ec2_instance_id).await {
            Ok(PasswordData::NotReady) if started.elapsed() + every <= limit => {
                tokio::time::sleep(every).await;
            }
            other => break other,
        }
    }
}
