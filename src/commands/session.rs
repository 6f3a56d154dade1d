//! From an [`Endpoint`] to a running session, the one way through: connect on the terminal
//! (before any window opens, so trust questions, warnings and login errors appear where the
//! command was typed), then hand the session to the window or to the headless runner, each with
//! its own small options type.

use std::process::ExitCode;
use std::time::Instant;

use super::error::Error;
use crate::cli::{CodecChoice, H264DecoderChoice, Scale as ScaleArg, SecurityChoice, SessionArgs};
use crate::headless::HeadlessOptions;
use crate::rdp::{
    connect, connect_over, Clipboard, Codecs, ConnectOptions, DecoderChoice, Endpoint, Handshake,
    Layout, Outcome, RdpError, Reconnect, Security, Session, Transport, TrustStore,
};
use crate::term::{prompt, status};
use crate::tunnel::{Reopen, Tunnel, TunnelError};
use crate::window::{Display, Scale, WindowOptions};

/// How early before its end a tunnel that closes counts as having run out of time.
const EXPIRY_SLACK: std::time::Duration = std::time::Duration::from_secs(3);

/// A duration measured a little short of whole seconds, as the user asked for it (rounded to
/// the nearest second).
fn whole_seconds(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs_f64().round() as u64)
}

/// The desktop size when neither `--size` nor a window says otherwise.
pub const DEFAULT_DESKTOP: (u16, u16) = (1280, 800);

/// What the instance's system log says about its RDP certificate, for a first contact.
#[derive(Clone, Debug)]
pub(super) enum SystemLog {
    /// Not an AWS target (`direct`): there is no log to read.
    None,
    /// The thumbprint EC2Launch wrote at the last boot.
    Thumbprint(String),
    /// The log names no certificate (not written yet, or not by EC2Launch).
    Silent,
    /// The log could not be read (a permission, a throttle): why.
    Unreadable(String),
}

/// Runs a whole session and reports how it ended.
pub(super) fn run(
    runtime: tokio::runtime::Runtime,
    endpoint: Endpoint,
    tunnel: Option<Tunnel>,
    log: SystemLog,
    args: &SessionArgs,
) -> Result<ExitCode, Error> {
    // A session through a tunnel that failed reports the tunnel's reason, not the RDP symptom;
    // one that reached the tunnel's maximum duration says so.
    let ended = tunnel.as_ref().map(|t| (t.ended.clone(), t.expires));
    // Only a connection the network took from the first tunnel's session can be the first
    // tunnel's doing: after a reconnection (the tries' own errors), or when the server itself
    // ended the session or refused something, what happened is the news.
    let blame_tunnel = |error: Error| match (&error, &ended) {
        (Error::Rdp(lost), Some((ended, expires))) if lost.is_network_loss() => {
            match (ended.failure(), expires) {
                (Some(cause), _) => Error::Tunnel(cause),
                // The service's clock and ours differ by the handshake's time at most.
                (None, Some((expires, limit))) if Instant::now() + EXPIRY_SLACK >= *expires => {
                    Error::Tunnel(TunnelError::Expired(whole_seconds(*limit)))
                }
                (None, _) => error,
            }
        }
        _ => error,
    };
    run_session(runtime, endpoint, tunnel, &log, args).map_err(blame_tunnel)
}

fn run_session(
    runtime: tokio::runtime::Runtime,
    endpoint: Endpoint,
    tunnel: Option<Tunnel>,
    log: &SystemLog,
    args: &SessionArgs,
) -> Result<ExitCode, Error> {
    let started = status::command_started();
    let store = TrustStore::open_default()?;
    let desktop = args.size.unwrap_or(DEFAULT_DESKTOP);
    let title = format!("ecsrdp — {}", endpoint.title);
    let outcome = if args.headless {
        let session = establish(&runtime, endpoint, tunnel, log, args, desktop, &store)?;
        let options = HeadlessOptions {
            snapshot: args.snapshot.clone(),
            started,
        };
        runtime.block_on(crate::headless::run(session, options))?
    } else {
        // Open the display first: without one, fail before asking anything of the server.
        let display = Display::open()?;
        let session = establish(&runtime, endpoint, tunnel, log, args, desktop, &store)?;
        let options = WindowOptions {
            title,
            scale: match args.scale {
                ScaleArg::Fit => Scale::Fit,
                ScaleArg::None => Scale::None,
            },
            desktop,
            fullscreen: args.fullscreen,
            snapshot: args.snapshot.clone(),
            started,
        };
        crate::window::run(runtime, display, session, options)?
    };
    if let Outcome::ServerEnded(words) = &outcome {
        eprintln!("ecsrdp: {words}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects, decides about the certificate on the terminal, warns before a password goes
/// without NLA, logs in, and lets the password go.
fn establish(
    runtime: &tokio::runtime::Runtime,
    endpoint: Endpoint,
    tunnel: Option<Tunnel>,
    log: &SystemLog,
    args: &SessionArgs,
    desktop: (u16, u16),
    store: &TrustStore,
) -> Result<Session, Error> {
    let options = connect_options(args, desktop);
    if let (Some((_, folder)), true) = (&args.drive, args.drive_writable) {
        // Shown even with -q: it says what the server may change on this machine.
        status::print(format_args!(
            "ecsrdp: warning: the session may change {}: whatever the server writes there lands \
             on this machine (into a repository or home folder, hooks or start-up files that run \
             here); share a folder made for the purpose",
            folder.display()
        ));
    }
    status::phase(format!("connecting to {}", endpoint.title));
    // Through a tunnel, the way back is a new tunnel; one that cannot be reopened is not retried.
    let reopen = tunnel.as_ref().map(|t| t.reopen.clone());
    let reconnect = (args.reconnect > 0 && !matches!(reopen, Some(None)))
        .then(|| reconnector(&endpoint, args, desktop, store, reopen.flatten()));
    let handshake = runtime.block_on(async {
        match tunnel {
            Some(tunnel) => {
                connect_over(Transport::Pipe(tunnel.pipe), &endpoint, options, store).await
            }
            None => connect(&endpoint, options, store).await,
        }
    })?;
    // Outside any time bound: a person may be reading the fingerprint.
    let accept_new = handshake.is_new() && trust_first_contact(&handshake, log, args.trust_new)?;
    if !handshake.nla() {
        // Shown even with -q: it says where the password goes.
        status::print(format_args!(
            "ecsrdp: warning: {} does not use Network Level Authentication: the password will be \
             sent inside the TLS session, to a server that has proved only that it holds the \
             certificate you trusted",
            handshake.addr
        ));
    }
    status::phase(format!("logging on as {}", endpoint.user));
    let connected = runtime.block_on(handshake.finish(store, accept_new))?;
    status::clear();
    // The password has done its work; without reconnection it goes now, with it, it stays (in
    // zeroizing memory, inside the reconnector) for as long as the session may need it.
    drop(endpoint);
    let session = Session::new(connected, args.exit_after);
    Ok(match reconnect {
        Some(reconnect) => session.with_reconnect(reconnect),
        None => session,
    })
}

/// How a session dropped by the network comes back: the same connection again (through a new
/// tunnel when it went through one), without a question (the certificate pinned on the first
/// one must match; a new one is refused).
fn reconnector(
    endpoint: &Endpoint,
    args: &SessionArgs,
    desktop: (u16, u16),
    store: &TrustStore,
    reopen: Option<Reopen>,
) -> Reconnect {
    let (endpoint, args, store) = (endpoint.clone(), args.clone(), store.clone());
    Reconnect {
        attempts: args.reconnect,
        connect: Box::new(move |layout: Option<Layout>| {
            let (endpoint, args, store) = (endpoint.clone(), args.clone(), store.clone());
            let reopen = reopen.clone();
            Box::pin(async move {
                // Off the async workers: the keyboard layout is asked of X11, and opening the
                // clipboard starts a thread and waits for it.
                let mut options =
                    tokio::task::spawn_blocking(move || connect_options(&args, desktop))
                        .await
                        .map_err(|e| RdpError::Crashed {
                            addr: endpoint.title.clone(),
                            detail: e.to_string(),
                        })?;
                // The desktop the window had when the connection dropped, not the first one.
                if let Some((desktop, scale)) = layout.map(Layout::at_connection) {
                    (options.desktop, options.scale_percent) = (desktop, scale);
                }
                let handshake = match reopen {
                    Some(reopen) => {
                        let tunnel = reopen().await.map_err(|detail| RdpError::Unreachable {
                            addr: endpoint.title.clone(),
                            port: endpoint.port,
                            detail: format!("a new tunnel did not open: {detail}"),
                        })?;
                        connect_over(Transport::Pipe(tunnel.pipe), &endpoint, options, &store)
                            .await?
                    }
                    None => connect(&endpoint, options, &store).await?,
                };
                handshake.finish(&store, false).await
            })
        }),
    }
}

/// The options `connect` needs, from the flags.
fn connect_options(args: &SessionArgs, desktop: (u16, u16)) -> ConnectOptions {
    ConnectOptions {
        // `app` fills in the default of each kind of target; NLA when nobody did.
        security: match args.security {
            Some(SecurityChoice::Tls) => Security::NlaOrTls,
            Some(SecurityChoice::Nla) | None => Security::Nla,
        },
        desktop,
        // The window sends its real factor once it exists.
        scale_percent: 100,
        codecs: match args.codec {
            _ if args.lossless => Codecs::Lossless,
            CodecChoice::H264 => Codecs::H264,
            CodecChoice::Rfx => Codecs::RemoteFx,
            CodecChoice::Lossless => Codecs::Lossless,
        },
        login_screen: args.login_screen,
        connect_timeout: args.connect_timeout,
        keyboard_layout: keyboard_layout(args),
        clipboard: shared_clipboard(args),
        drive: args.drive.clone(),
        drive_read_only: !args.drive_writable,
        h264_decoder: decoder_choice(args.h264_decoder),
    }
}

fn decoder_choice(choice: H264DecoderChoice) -> DecoderChoice {
    match choice {
        H264DecoderChoice::Auto => DecoderChoice::Auto,
        H264DecoderChoice::Ffmpeg => DecoderChoice::Ffmpeg,
        H264DecoderChoice::Openh264 => DecoderChoice::OpenH264,
        H264DecoderChoice::Cisco => DecoderChoice::Cisco,
    }
}

/// An H.264 decoder asked for by name must be there: said before anything is asked of AWS or
/// the server, rather than a session that quietly goes without H.264 (which `auto` does, with a
/// warning, when no decoder opens).
pub(super) fn check_decoder(args: &SessionArgs) -> Result<(), Error> {
    let choice = decoder_choice(args.h264_decoder);
    if choice == DecoderChoice::Auto || args.codec != CodecChoice::H264 || args.lossless {
        return Ok(());
    }
    let Err(why) = crate::rdp::h264_decoder_name(choice) else {
        return Ok(());
    };
    let advice = match choice {
        DecoderChoice::Ffmpeg => "install FFmpeg's libavcodec (Debian and Ubuntu: the libavcodec \
             package of the release, e.g. `apt-get install libavcodec59`; macOS: `brew install \
             ffmpeg`), or leave out --h264-decoder"
            .to_owned(),
        DecoderChoice::Cisco => "download Cisco's OpenH264 2.6.0 for this platform from \
             http://ciscobinary.openh264.org/ (its licence covers the H.264 patents) and unpack \
             it there (or point $ECSRDP_OPENH264_LIBRARY at it), or leave out --h264-decoder"
            .to_owned(),
        _ => "leave out --h264-decoder to use the decoders this machine has".to_owned(),
    };
    Err(Error::Usage(format!(
        "--h264-decoder: {why}. To fix: {advice}"
    )))
}

/// `--keyboard-layout`, else this machine's layout, else 0: the server's own.
fn keyboard_layout(args: &SessionArgs) -> u32 {
    if let Some(klid) = args.keyboard_layout {
        return klid.0;
    }
    match crate::window::keyboard::local() {
        Some((name, klid)) => {
            tracing::info!(layout = %name, klid = format_args!("{:#x}", klid.0), "keyboard layout");
            klid.0
        }
        None => {
            tracing::info!("the local keyboard layout is unknown: the server applies its own");
            0
        }
    }
}

/// The local clipboard, shared with a session in a window unless `--no-clipboard` (a headless
/// session has no desktop to copy from). Without one, the session goes on and says why.
fn shared_clipboard(args: &SessionArgs) -> Option<Clipboard> {
    if args.headless || args.no_clipboard {
        return None;
    }
    crate::window::clipboard::open()
        .map_err(|why| status::warn(format_args!("the clipboard is not shared: {why}")))
        .ok()
}

/// Whether to trust a certificate seen for the first time, and how it was trusted, said: the
/// instance's system log vouches for it (no question asked), or names another (refused, unless
/// a person on a terminal accepts it after a warning: `--trust-new` does not), or cannot say
/// (then `--trust-new` or a person decides, as for any server).
fn trust_first_contact(
    handshake: &Handshake,
    log: &SystemLog,
    trust_new: bool,
) -> Result<bool, RdpError> {
    let key = handshake.trust_key();
    let presented = handshake.thumbprint();
    match log {
        SystemLog::Thumbprint(published) if published == presented => {
            status::note(format_args!(
                "the certificate of {key} is the one its system log names (SHA-1 thumbprint \
                 {presented}): trusted without asking, and remembered"
            ));
            return Ok(true);
        }
        SystemLog::Thumbprint(published) => {
            let refused = || RdpError::CertificateNotInLog {
                key: key.to_string(),
                presented: presented.to_owned(),
                published: published.clone(),
            };
            return match prompt::trust_despite_log(&refused().to_string()) {
                Some(true) => Ok(true),
                Some(false) | None => Err(refused()),
            };
        }
        SystemLog::Silent => status::warn(format_args!(
            "the system log of {key} names no RDP certificate (EC2Launch writes it at boot), so \
             this first connection cannot be verified against it"
        )),
        SystemLog::Unreadable(why) => status::warn(format_args!(
            "cannot read the system log of {key} to verify its certificate ({why})"
        )),
        SystemLog::None => {}
    }
    if trust_new {
        status::note(format_args!(
            "trusting the new certificate of {key} because of --trust-new, unverified (SHA-1 \
             thumbprint {presented})"
        ));
        return Ok(true);
    }
    ask_about(handshake)
}

/// Asks about a certificate seen for the first time; without a terminal, refuses (see
/// `--trust-new`).
fn ask_about(handshake: &Handshake) -> Result<bool, RdpError> {
    let key = handshake.trust_key();
    let fingerprint = handshake.fingerprint();
    prompt::trust_certificate(&key.to_string(), handshake.thumbprint(), fingerprint).ok_or_else(
        || RdpError::CertificateUnconfirmed {
            key: key.to_string(),
            fingerprint: fingerprint.to_owned(),
        },
    )
}
