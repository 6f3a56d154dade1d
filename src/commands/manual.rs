//! `ecsrdp completions <shell>` and `ecsrdp man`: generated from the one clap definition, so
//! they never disagree with `--help`.

use std::process::ExitCode;

use super::error::Error;
use crate::cli::Args;
use crate::term::table::write_stdout;

/// A completion script for `shell` on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Error> {
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Args as clap::CommandFactory>::command(),
        "ecsrdp",
        &mut out,
    );
    write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(ExitCode::SUCCESS)
}

/// The manual page (roff) on stdout.
pub(super) fn man() -> Result<ExitCode, Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(<Args as clap::CommandFactory>::command())
        .render(&mut out)
        .map_err(|source| Error::Io {
            what: "cannot render the manual page".into(),
            source,
        })?;
    write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(ExitCode::SUCCESS)
}
