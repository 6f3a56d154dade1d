//! The `ecsrdp` command: parse, run, print one clear paragraph on failure, exit with its code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = ecsrdp::cli::Args::parse();
    init_logging(args.verbose);
    match ecsrdp::app::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ecsrdp: {error}");
            error.exit_code()
        }
    }
}

/// Logs go to stderr; `RUST_LOG` wins over `-v`. The password is never a log field.
fn init_logging(verbose: u8) {
    let default = match verbose {
        // Other crates' warnings (the SDK's, IronRDP's) say nothing a user can act on; our
        // errors are printed as one paragraph by `main` anyway.
        0 => "ecsrdp=warn",
        1 => "ecsrdp=info",
        _ => "ecsrdp=debug,ironrdp=debug,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
