//! The top-level error: every way a command can fail, each with its exit code. Each module below
//! has its own error type; they are converted here, where the exit code is decided.
//!
//! Exit codes (listed in the README and docs/errors.md): 0 ok, 2 usage, 3 AWS lookup, 4 password or key,
//! 5 network or RDP, 6 this machine (no display, a snapshot that cannot be written), 7 the server
//! ended the session (an administrator, a time limit, another connection).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::aws::{AwsError, RouteError};
use crate::cli::config::ConfigError;
use crate::headless::HeadlessError;
use crate::keys::file::KeyFileError;
use crate::rdp::RdpError;
use crate::snapshot::SnapshotError;
use crate::target::TargetError;
use crate::term::table::StdoutError;
use crate::tunnel::TunnelError;
use crate::window::{NoWindow, WindowError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A required prerequisite does not hold; the text says which and what to do.
    #[error("{0}")]
    Prerequisite(String),
    #[error("the password of {instance} is not ready yet: {}", not_ready_advice(instance, *waited))]
    PasswordNotReady {
        instance: String,
        waited: Option<Duration>,
    },
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(
        "the key {} does not match key pair `{key_name}` of instance {instance}: the password \
         cannot be decrypted with it; pass the private key of `{key_name}` with --key",
        .path.display()
    )]
    WrongKey {
        path: PathBuf,
        key_name: String,
        instance: String,
    },
    #[error(transparent)]
    Rdp(#[from] RdpError),
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    #[error(transparent)]
    NoWindow(#[from] NoWindow),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What to do about a password that is not ready: wait, or, after a wait that ran out, find out
/// why Windows has not published it.
fn not_ready_advice(instance: &str, waited: Option<Duration>) -> String {
    match waited {
        None => "Windows publishes it up to 15 minutes after launch; try again later, or add \
                 --wait to wait for it"
            .to_owned(),
        Some(waited) => format!(
            "ecsrdp waited {} and Windows has not published it; see how far the instance got \
             with `aws ec2 get-console-output --instance-id {instance} --latest --output text` \
             (an AMI that never sets a password never publishes one), or wait longer with \
             --wait=30m",
            humantime::format_duration(Duration::from_secs(waited.as_secs_f64().round() as u64))
        ),
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Error::Usage(error.to_string())
    }
}

impl From<StdoutError> for Error {
    fn from(StdoutError(source): StdoutError) -> Self {
        Error::Io {
            what: "cannot write to stdout".into(),
            source,
        }
    }
}

impl From<RouteError> for Error {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::Prerequisite(problem) => Error::Prerequisite(problem),
            RouteError::Aws(error) => Error::Aws(error),
        }
    }
}

impl From<WindowError> for Error {
    fn from(error: WindowError) -> Self {
        match error {
            WindowError::NoWindow(error) => Error::NoWindow(error),
            WindowError::Session(error) => Error::Rdp(error),
            WindowError::Snapshot(error) => Error::Snapshot(error),
        }
    }
}

impl From<HeadlessError> for Error {
    fn from(error: HeadlessError) -> Self {
        match error {
            HeadlessError::Session(error) => Error::Rdp(error),
            HeadlessError::Snapshot(error) => Error::Snapshot(error),
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Error::Usage(_) | Error::Target(_) => 2,
            Error::Aws(_) | Error::Prerequisite(_) => 3,
            Error::PasswordNotReady { .. } | Error::KeyFile(_) | Error::WrongKey { .. } => 4,
            // No password for `direct` is a password problem, like the AWS side's.
            Error::Rdp(RdpError::NoPassword) => 4,
            // The trust store is a file on this machine.
            Error::Rdp(RdpError::TrustStore { .. }) => 6,
            // Not the network: a script that retries on 5 must not take turns with another
            // connection or an administrator.
            Error::Rdp(RdpError::ServerEnded { .. }) => 7,
            Error::Rdp(_) | Error::Tunnel(_) => 5,
            Error::NoWindow(_) | Error::Snapshot(_) | Error::Io { .. } => 6,
        })
    }
}
