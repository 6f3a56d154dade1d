//! `ecsrdp trust list|forget`: the certificates remembered on first contact.

use std::process::ExitCode;

use super::error::Error;
use crate::cli::TrustCommand;
use crate::rdp::TrustStore;
use crate::term::table::write_stdout;

/// `ecsrdp trust list|forget`.
pub(super) fn trust(command: TrustCommand) -> Result<ExitCode, Error> {
    let store = TrustStore::open_default()?;
    match command {
        TrustCommand::List => {
            let mut text = String::new();
            for (key, fingerprint) in store.entries()? {
                text.push_str(&format!("{key}  {fingerprint}\n"));
            }
            write_stdout(&text)?;
        }
        TrustCommand::Forget { key } => {
            if store.forget(&key)? {
                write_stdout(&format!("forgot the certificate remembered for {key}\n"))?;
            } else {
                return Err(Error::Usage(format!(
                    "no certificate is remembered for `{key}`; `ecsrdp trust list` shows what is"
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
