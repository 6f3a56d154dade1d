//! The `ecsrdp` command: parse, run, print one clear paragraph on failure, exit with its code.

use std::process::ExitCode;

use clap::FromArgMatches as _;
use tracing_subscriber::filter::{LevelFilter, Targets};

fn main() -> ExitCode {
    // Before any thread: the environment may be changed only while nobody else reads it.
    ecsrdp::keys::environment::take_from_environment();
    ecsrdp::commands::protect_process();
    let matches = <ecsrdp::cli::Args as clap::CommandFactory>::command()
        .get_matches_from(ecsrdp::cli::attach_wait_duration(std::env::args_os()));
    let mut args = ecsrdp::cli::Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(args.verbose);
    ecsrdp::rdp::install_panic_hook();
    ecsrdp::term::status::init(args.quiet);
    let result = ecsrdp::cli::config::Config::load()
        .map_err(ecsrdp::Error::from)
        .and_then(|config| {
            config.apply(&mut args, &matches);
            ecsrdp::commands::run(args)
        });
    ecsrdp::term::status::clear();
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ecsrdp: {error}");
            error.exit_code()
        }
    }
}

/// Where other crates log secrets, and the most they may log there, whatever `RUST_LOG` says:
/// sspi's debug spans print CredSSP buffers in clear (the TSCredentials holding the password in
/// UTF-16, and the NTLM messages, whose AUTHENTICATE carries a hash that can be cracked offline),
/// IronRDP's CredSSP step logs every TSRequest with its NTLM token, aws-sigv4 traces each
/// canonical request (the session token among it) and tungstenite traces the request it sends
/// (the presigned tunnel URL: token and signature, good for a minute of tunnels); the SDK's
/// orchestrator traces every answer, `StartSession`'s with the token that opens the session.
const SECRET_BEARING: [(&str, LevelFilter); 5] = [
    ("sspi", LevelFilter::WARN),
    ("ironrdp_connector::credssp", LevelFilter::INFO),
    ("aws_sigv4", LevelFilter::DEBUG),
    ("tungstenite", LevelFilter::DEBUG),
    ("aws_smithy_runtime", LevelFilter::DEBUG),
];

/// Logs go to stderr; `RUST_LOG` wins over `-v`, except over [`SECRET_BEARING`], whose levels
/// are ceilings applied after it (a second filter both must pass), never floors. The password
/// is never a log field of ours.
fn init_logging(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let default = match verbose {
        // Other crates' warnings (the SDK's, IronRDP's) say nothing a user can act on; our
        // errors are printed as one paragraph by `main` anyway.
        0 => "ecsrdp=warn",
        1 => "ecsrdp=info",
        _ => "ecsrdp=debug,ironrdp=debug,info",
    };
    let asked = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(SECRET_BEARING);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(asked)
        .with_filter(caps);
    tracing_subscriber::registry().with(layer).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bearing_crates_are_capped_and_others_are_not() {
        let caps = Targets::new()
            .with_default(LevelFilter::TRACE)
            .with_targets(SECRET_BEARING);
        assert!(!caps.would_enable("sspi::ntlm", &tracing::Level::INFO));
        assert!(!caps.would_enable("tungstenite::handshake", &tracing::Level::TRACE));
        assert!(!caps.would_enable("aws_sigv4::http_request", &tracing::Level::TRACE));
        assert!(caps.would_enable("ecsrdp::rdp", &tracing::Level::TRACE));
    }
}
