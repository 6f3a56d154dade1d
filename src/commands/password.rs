//! `ecsrdp password`, and the decryption every connection needs: the prerequisites, the key
//! file (its passphrase asked on the terminal), the wait for Windows to publish the password,
//! and the decryption.

use std::process::ExitCode;

use tracing::info;

use super::error::Error;
use super::locate::{locate, Located};
use crate::aws::{self, Aws, PasswordData};
use crate::cli::AwsArgs;
use crate::keys::file::{readable_by_others, KeyFileError, KeySearch};
use crate::keys::{KeyError, Password};
use crate::target::Target;
use crate::term::prompt::passphrase;
use crate::term::status;
use crate::term::table::write_stdout;

/// `ecsrdp password`: the password alone on stdout, for pipes; warnings on stderr.
pub(super) async fn password(target: &Target, args: &AwsArgs) -> Result<ExitCode, Error> {
    let (aws, located) = locate(target, args, true).await?;
    let password = decrypt(&aws, located, args).await?;
    let line = zeroize::Zeroizing::new(format!("{}\n", password.expose()));
    write_stdout(&line)?;
    Ok(ExitCode::SUCCESS)
}

/// Checks the prerequisites, finds the key, waits for the password if asked, decrypts it.
pub(super) async fn decrypt(
    aws: &Aws,
    located: Located,
    args: &AwsArgs,
) -> Result<Password, Error> {
    let resolved = &located.resolved;
    if let Some(problem) = resolved.blocking_problem() {
        // An address is only needed to connect directly; `--via` and `password` do without.
        if !resolved.only_address_missing() {
            return Err(Error::Prerequisite(problem.to_owned()));
        }
    }
    let id = &resolved.ec2_instance_id;
    let key_name = resolved.key_name.clone().unwrap_or_default();
    // Load the key before any wait, so a missing or wrong file fails at once.
    let (path, key) =
        KeySearch::standard(args.key.clone(), args.key_dir.clone()).load(&key_name, &passphrase)?;
    info!(key = %path.display(), "loaded the private key");
    if let Some(mode) = readable_by_others(&path) {
        status::warn(format_args!(
            "the private key {} can be read by other users (mode {mode:04o}); anyone who can \
             read it can decrypt this instance's password. Restrict it with `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }

    let mut data = located.password_data?;
    let mut waited = None;
    if data == PasswordData::NotReady {
        if let Some(limit) = args.wait {
            let started = std::time::Instant::now();
            status::phase(format!(
                "waiting for Windows on {id} to publish its password (AWS says up to 15 minutes)"
            ));
            data = aws::wait_for_password_data(aws, id, limit, args.poll_interval).await?;
            waited = Some(started.elapsed());
        }
    }
    let PasswordData::Ready(data) = data else {
        return Err(Error::PasswordNotReady {
            instance: id.clone(),
            waited,
        });
    };
    key.decrypt_password(&data).map_err(|source| match source {
        KeyError::WrongKey => Error::WrongKey {
            path,
            key_name,
            instance: id.clone(),
        },
        other => Error::KeyFile(KeyFileError::Key {
            path,
            source: other,
        }),
    })
}
