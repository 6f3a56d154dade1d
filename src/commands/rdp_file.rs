//! `ecsrdp rdp-file`: a standard .rdp file for the instance, for other RDP apps. It never holds
//! the password.

use std::path::PathBuf;
use std::process::ExitCode;

use super::error::Error;
use super::locate::{choose_route, locate};
use super::session::DEFAULT_DESKTOP;
use crate::aws::Route;
use crate::cli::AwsArgs;
use crate::target::Target;
use crate::term::table::write_stdout;

/// `ecsrdp rdp-file`: a standard .rdp file for the instance's direct address. A private
/// instance's file points at `ecsrdp tunnel`'s local port instead, which the user starts.
pub(super) async fn rdp_file(
    target: &Target,
    args: &AwsArgs,
    output: Option<PathBuf>,
    size: Option<(u16, u16)>,
) -> Result<ExitCode, Error> {
    // A line break in a value would start a line of its own: a second setting (a shared drive,
    // say) for whoever opens the file.
    if args.user.chars().any(char::is_control) {
        return Err(Error::Usage(
            "--user must not contain a line break or other control character: an .rdp file \
             holds one setting a line"
                .into(),
        ));
    }
    let (aws, mut located) = locate(target, args, false).await?;
    let route = choose_route(&aws, &mut located.resolved, args).await?;
    let resolved = located.resolved;
    if let Some(problem) = resolved.blocking_problem() {
        return Err(Error::Prerequisite(problem.to_owned()));
    }
    let address = match route {
        Route::Direct => format!(
            "{}:{}",
            resolved.address.as_deref().unwrap_or_default(),
            resolved.port
        ),
        Route::Eice(_) | Route::Ssm(_) => {
            let (way, flag) = match resolved.session_manager {
                Some(_) => ("Session Manager", " --tunnel ssm"),
                None => ("an EC2 Instance Connect Endpoint", ""),
            };
            return Err(Error::Usage(format!(
                "instance {} is reached through {way}, which an .rdp file cannot open: run \
                 `ecsrdp tunnel {target}{flag} --local-port 13389` and point the file at \
                 127.0.0.1:13389 (`ecsrdp rdp-file {target} --via 127.0.0.1:13389`)",
                resolved.ec2_instance_id
            )));
        }
    };
    let (width, height) = size.unwrap_or(DEFAULT_DESKTOP);
    // The format Microsoft's clients read: `name:type:value`, one per line. No password, ever.
    let text = format!(
        "full address:s:{address}\r\n\
         username:s:{}\r\n\
         desktopwidth:i:{width}\r\n\
         desktopheight:i:{height}\r\n\
         screen mode id:i:1\r\n\
         authentication level:i:2\r\n\
         enablecredsspsupport:i:1\r\n\
         prompt for credentials:i:1\r\n",
        args.user
    );
    match output {
        None => write_stdout(&text)?,
        Some(file) => crate::private_file::replace(&file, |out| {
            std::io::Write::write_all(out, text.as_bytes())
        })
        .map_err(|source| Error::Io {
            what: format!("cannot write {}", file.display()),
            source,
        })?,
    }
    Ok(ExitCode::SUCCESS)
}
