//! The `ecsrdp` command: parse, run, print one clear paragraph on failure, exit with its code.

use std::process::ExitCode;

use clap::FromArgMatches as _;

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
/// (the presigned tunnel URL: token and signature, good for a minute of tunnels).
const SECRET_BEARING: [&str; 4] = [
    "sspi=warn",
    "ironrdp_connector::credssp=info",
    "aws_sigv4=debug",
    "tungstenite=debug",
];

/// Logs go to stderr; `RUST_LOG` wins over `-v`, except over [`SECRET_BEARING`]. The password
/// is never a log field of ours.
fn init_logging(verbose: u8) {
    let default = match verbose {
        // Other crates' warnings (the SDK's, IronRDP's) say nothing a user can act on; our
        // errors are printed as one paragraph by `main` anyway.
        0 => "ecsrdp=warn",
        1 => "ecsrdp=info",
        _ => "ecsrdp=debug,ironrdp=debug,info",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    for cap in SECRET_BEARING {
        // INVARIANT: the caps are valid directives (a unit test parses them).
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn secret_bearing_caps_are_valid_directives() {
        for cap in super::SECRET_BEARING {
            assert!(
                cap.parse::<tracing_subscriber::filter::Directive>().is_ok(),
                "{cap}"
            );
        }
    }
}
