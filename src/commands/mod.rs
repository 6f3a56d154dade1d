//! The commands: typed arguments in, resolved plans carried out, an exit code out. One file per
//! subcommand; [`locate`] and [`password`] hold what the connecting ones share, and
//! [`session`] the one way from an endpoint to a running session.
//!
//! This is where AWS, keys, tunnels, RDP, the terminal and the window meet; each of them stays
//! ignorant of the others, and its errors become an [`Error`] with its exit code here.

mod connect;
mod error;
mod list;
mod locate;
mod manual;
mod password;
mod rdp_file;
mod resolve;
mod session;
mod trust;
mod tunnel;

use std::process::ExitCode;

pub use self::error::Error;
use crate::cli::{Args, Command, SecurityChoice, TunnelChoice};
use crate::target::Target;

/// Keeps the secrets this process will hold out of core dumps and out of reach of the user's
/// other programs: no core file (`RLIMIT_CORE` 0) and, on Linux, not dumpable, which also keeps
/// debuggers of the same user off and makes `/proc/<pid>/` (its environment, its memory)
/// readable by root alone. Best effort: a platform that refuses keeps its defaults.
pub fn protect_process() {
    use nix::sys::resource::{setrlimit, Resource};
    if let Err(error) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        tracing::debug!(%error, "core dumps stay as they were");
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_dumpable(false) {
        tracing::debug!(%error, "the process stays dumpable");
    }
}

/// Runs the parsed command line.
pub fn run(args: Args) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the async runtime".into(),
            source,
        })?;
    match args.command {
        Some(Command::Resolve { target, json, aws }) => {
            runtime.block_on(resolve::resolve(&target, &aws, json))
        }
        Some(Command::Password { target, aws }) => {
            runtime.block_on(password::password(&target, &aws))
        }
        Some(Command::Tunnel {
            target,
            local_port,
            connections,
            mut aws,
        }) => {
            // The listener serves tunnels: EICE's unless Session Manager's are asked for.
            if aws.tunnel != TunnelChoice::Ssm {
                aws.tunnel = TunnelChoice::Eice;
            }
            runtime.block_on(tunnel::serve_tunnel(&target, &aws, local_port, connections))
        }
        Some(Command::Direct {
            server,
            user,
            domain,
            password_stdin,
            session,
        }) => {
            // NLA by default here too: a first contact is where a pin protects nothing, and a
            // man in the middle answering "TLS only" would otherwise receive the password.
            session::check_decoder(&session)?;
            let endpoint = connect::direct_endpoint(&server, user, domain, password_stdin)?;
            session::run(runtime, endpoint, None, session::SystemLog::None, &session)
        }
        Some(Command::Trust { command }) => trust::trust(command),
        Some(Command::RdpFile {
            target,
            output,
            size,
            aws,
        }) => runtime.block_on(rdp_file::rdp_file(&target, &aws, output, size)),
        Some(Command::Completions { shell }) => manual::completions(shell),
        Some(Command::Man) => manual::man(),
        None => match args.target {
            None => runtime.block_on(list::list_clusters(&args.aws, args.json)),
            Some(target @ Target { instance: None, .. }) => {
                runtime.block_on(list::list(&target, &args.aws, args.json))
            }
            Some(target) => {
                session::check_decoder(&args.session)?;
                let timeout = args.session.connect_timeout;
                let (endpoint, tunnel, log, ssm_sessions) =
                    runtime.block_on(connect::instance_endpoint(&target, &args.aws, timeout))?;
                // Windows AMIs have NLA on: anything less is refused unless asked for.
                let mut session = args.session;
                session.security.get_or_insert(SecurityChoice::Nla);
                let ended = session::run(runtime, endpoint, tunnel, log, &session);
                if let Some(sessions) = ssm_sessions {
                    sessions.terminate_all();
                }
                ended
            }
        },
    }
}
