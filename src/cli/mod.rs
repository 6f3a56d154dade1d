//! The command line as typed: one clap definition gives parsing, `--help` and errors.
//!
//! Values are parsed into types here (targets, durations, sizes); deciding what they mean
//! together (which address, which key) happens in `commands`. The optional [`config`] file fills
//! in what the command line left open.

pub mod config;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::target::Target;

/// Remote desktop for Amazon ECS Windows container instances, in one command.
///
/// `ecsrdp <CLUSTER>/<INSTANCE>` finds the instance, decrypts its Administrator password with
/// your key pair and opens its desktop in a window. `ecsrdp <CLUSTER>` lists the instances.
#[derive(Debug, Parser)]
#[command(
    name = "ecsrdp",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit codes: 0 ok, 2 usage, 3 AWS lookup, 4 password or key, 5 network or RDP,\n\
                  6 this machine (no display, snapshot not written, trust store, local port),\n\
                  7 the server ended the session (an administrator, a time limit, another connection).\n\
                  Logs: -v, -vv or RUST_LOG=ecsrdp=debug (never shows the password)."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `<CLUSTER>/<INSTANCE>` to connect to, or `<CLUSTER>` to list its instances. INSTANCE is
    /// a container instance ID or ARN, the EC2 instance ID (i-…), task/<ID>, service/<NAME>, or
    /// nothing (`<CLUSTER>/`: pick one). An EC2 instance ID or ARN alone connects to that
    /// instance, in whatever cluster it is (or none)
    #[arg(value_name = "CLUSTER[/INSTANCE]")]
    pub target: Option<Target>,

    /// With `ecsrdp` or `ecsrdp <CLUSTER>`: the listing as JSON, for scripts
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub session: SessionArgs,

    /// More log output on stderr (-v milestones, -vv protocol details)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Nothing on stderr but errors: no progress line, no warnings
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what ecsrdp finds for an instance and which prerequisites hold; no secrets
    Resolve {
        #[arg(value_name = "CLUSTER/INSTANCE")]
        target: Target,
        /// One JSON object on stdout instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Print the decrypted Administrator password, alone on stdout
    Password {
        #[arg(value_name = "CLUSTER/INSTANCE")]
        target: Target,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Open the instance's EC2 Instance Connect Endpoint tunnel on a local port, for another
    /// RDP client; runs until Ctrl-C
    Tunnel {
        #[arg(value_name = "CLUSTER/INSTANCE")]
        target: Target,
        /// The local port to listen on, on 127.0.0.1 (0: any free port)
        #[arg(long, default_value_t = 0, value_name = "PORT")]
        local_port: u16,
        /// How many connections may be open at once; more are refused. Only your own user's
        /// programs are admitted either way (on Linux): the tunnel rides your AWS credentials
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        connections: u16,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Connect to any RDP server, without AWS
    Direct {
        /// The server, `HOST[:PORT]` (port 3389 by default)
        #[arg(value_name = "HOST[:PORT]")]
        server: String,
        /// The user to log in as
        #[arg(long, default_value = "Administrator")]
        user: String,
        /// The domain, if the account is not local
        #[arg(long)]
        domain: Option<String>,
        /// Read the password from the first line of stdin (else ECSRDP_PASSWORD, else a prompt)
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// Write a standard .rdp file for another RDP app (address, user, size; never the password)
    RdpFile {
        #[arg(value_name = "CLUSTER/INSTANCE")]
        target: Target,
        /// Where to write it (default: stdout)
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The desktop size the file asks for
        #[arg(long, value_name = "WxH", value_parser = parse_size)]
        size: Option<(u16, u16)>,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `ecsrdp man | man -l -`
    Man,
    /// Manage remembered server certificates
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// List remembered certificates
    List,
    /// Forget a remembered certificate, so the next connection asks again: KEY is the EC2
    /// instance ID for AWS targets, `HOST:PORT` for `direct` (see `trust list`)
    Forget {
        #[arg(value_name = "KEY")]
        key: String,
    },
}

/// Where to look in AWS and how to reach the instance.
#[derive(Clone, Debug, ClapArgs)]
#[command(next_help_heading = "Finding the instance and its password")]
pub struct AwsArgs {
    /// The AWS profile (default: AWS_PROFILE or `default`)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// The AWS region (default: AWS_REGION or the profile's)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The key pair's private key (default: ECSRDP_KEY, then ~/.ssh/<KeyName>.pem and
    /// ~/.ssh/<KeyName>); PEM PKCS#1/PKCS#8 or OpenSSH, passphrase from ECSRDP_KEY_PASSPHRASE or
    /// a prompt
    #[arg(short = 'i', long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Where else to look for `<KeyName>.pem` (the config file's `key_dir`)
    #[arg(skip)]
    pub key_dir: Option<PathBuf>,
    /// The Windows user to log in as
    #[arg(long, default_value = "Administrator")]
    pub user: String,
    /// Connect to the instance's private IP (from inside its VPC or over a VPN)
    #[arg(long)]
    pub private: bool,
    /// Connect through a tunnel you run (e.g. an SSM port forward) at HOST:PORT instead of the
    /// instance's address; the instance is still resolved and its password decrypted
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with = "tunnel")]
    pub via: Option<String>,
    /// How to reach the instance: `auto` takes its public address when TCP 3389 is open to it,
    /// else an EC2 Instance Connect Endpoint of its VPC, else Session Manager when the instance
    /// is managed and online; `eice`, `ssm` and `direct` force one
    #[arg(long, value_enum, default_value_t = TunnelChoice::Auto)]
    pub tunnel: TunnelChoice,
    /// How long an EC2 Instance Connect Endpoint tunnel may last (1s to 1h, the service's
    /// default and limit; an IAM policy may allow less)
    #[arg(long, value_name = "DURATION", value_parser = parse_tunnel_duration)]
    pub tunnel_duration: Option<Duration>,
    /// Wait until the password is ready (AWS takes up to 15 minutes after launch); an optional
    /// duration such as 20m limits the wait
    #[arg(
        long,
        value_name = "DURATION",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "15m",
        value_parser = humantime::parse_duration
    )]
    pub wait: Option<Duration>,
    /// How often --wait asks AWS
    #[arg(long, hide = true, default_value = "10s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
}

/// `--wait 20m` as `--wait=20m`. `--wait` takes an optional duration, which clap can only
/// read when it is attached (`require_equals`): otherwise `ecsrdp --wait prod/i-…` would read
/// the target as the duration. People type it detached, as every other option's value; a
/// detached word that reads as a duration is the wait's, anything else is left alone.
pub fn attach_wait_duration(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for arg in args {
        let is_duration = arg
            .to_str()
            .is_some_and(|text| humantime::parse_duration(text).is_ok());
        match out.last_mut() {
            Some(last) if last == "--wait" && is_duration => {
                last.push("=");
                last.push(&arg);
            }
            _ => out.push(arg),
        }
    }
    out
}

/// `--exit-after`: a duration a session can last, at most a year (a clock cannot count much
/// further ahead, and nobody means more).
fn parse_exit_after(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration > Duration::from_secs(365 * 24 * 3600) {
        return Err("at most a year (e.g. 8h, 30d)".into());
    }
    Ok(duration)
}

fn parse_tunnel_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_secs(1) || duration > Duration::from_secs(3600) {
        return Err("a tunnel lasts from 1s to 1h".into());
    }
    Ok(Duration::from_secs(duration.as_secs()))
}

/// The path to the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TunnelChoice {
    Auto,
    /// Through an EC2 Instance Connect Endpoint (no public address needed)
    Eice,
    /// Through Systems Manager Session Manager (no address, endpoint or open port needed)
    Ssm,
    /// To the instance's own address (public, or private with --private)
    Direct,
}

/// How the RDP session runs and shows itself.
#[derive(Clone, Debug, ClapArgs)]
#[command(next_help_heading = "The session")]
pub struct SessionArgs {
    /// The remote desktop size, e.g. 1600x900 (default 1280x800); the window opens at that size
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub size: Option<(u16, u16)>,
    /// How the desktop fits the window: `fit` scales it (keeping its aspect), `none` shows it
    /// 1:1 and asks the server to follow the window size
    #[arg(long, value_enum, default_value_t = Scale::None)]
    pub scale: Scale,
    /// Run the session without a window (with --snapshot and --exit-after)
    #[arg(long)]
    pub headless: bool,
    /// Write the desktop to this PNG file when the session ends
    #[arg(long, value_name = "FILE.png")]
    pub snapshot: Option<PathBuf>,
    /// End the session cleanly after this long, e.g. 5s
    #[arg(long, value_name = "DURATION", value_parser = parse_exit_after)]
    pub exit_after: Option<Duration>,
    /// Trust a server's certificate on first contact without asking (for scripts); a changed
    /// certificate is still refused
    #[arg(long)]
    pub trust_new: bool,
    /// Which codecs to offer: `h264` (the graphics pipeline with H.264 and its other codecs,
    /// RemoteFX and bitmaps for servers without it), `rfx` (no graphics pipeline), `lossless`
    #[arg(long, value_enum, default_value_t = CodecChoice::H264)]
    pub codec: CodecChoice,
    /// Which H.264 decoder to use: `auto` (FFmpeg's libavcodec when the machine has it, else
    /// OpenH264), `ffmpeg`, `openh264` (built in), or `cisco` (Cisco's OpenH264 library in the
    /// data folder, or at $ECSRDP_OPENH264_LIBRARY); `-v` says which one runs
    #[arg(long, value_enum, value_name = "DECODER", default_value_t = H264DecoderChoice::Auto)]
    pub h264_decoder: H264DecoderChoice,
    /// Offer no lossy codec, so every pixel arrives exactly as the server has it (the same as
    /// --codec lossless); uses more bandwidth
    #[arg(long)]
    pub lossless: bool,
    /// Stop at the server's own login screen instead of logging on with the password (to log
    /// on as someone else)
    #[arg(long)]
    pub login_screen: bool,
    /// How long to wait for the TCP connection
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// `nla` (the default) requires Network Level Authentication; `tls` also accepts a server
    /// that offers only TLS (xrdp, Weston), and says so
    #[arg(long, value_enum, value_name = "nla|tls")]
    pub security: Option<SecurityChoice>,
    /// The keyboard layout the server applies to the keys you press: an XKB name (`de`, `fr`,
    /// `gb`, `ch(fr)`) or a Windows layout ID (`0x407`); default: this machine's
    #[arg(long, value_name = "LAYOUT", value_parser = crate::rdp::Klid::parse)]
    pub keyboard_layout: Option<crate::rdp::Klid>,
    /// When the network drops the session, try this many times to get it back (waiting 1 s,
    /// 2 s, 4 s... between tries; through a new tunnel when it went through one); 0 never
    /// reconnects
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub reconnect: u32,
    /// Share a local folder with the session as a drive, e.g. `--drive logs=./logs` (it shows
    /// as "logs on ecsrdp" in Explorer); the session can read it, nothing outside it
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_drive)]
    pub drive: Option<(String, PathBuf)>,
    /// With --drive: the session may also change the folder (create, write, rename, delete).
    /// Read-only is the default because whatever the server writes lands on this machine: into
    /// a repository or home folder it could plant hooks or start-up files that run here
    #[arg(long, requires = "drive")]
    pub drive_writable: bool,
    /// Read-only is the default now; kept so that existing scripts still run
    #[arg(
        long,
        requires = "drive",
        hide = true,
        conflicts_with = "drive_writable"
    )]
    pub drive_read_only: bool,
    /// Open the window full screen (F11 switches in and out)
    #[arg(long)]
    pub fullscreen: bool,
    /// Do not share the local clipboard with the session (shared by default: text and images,
    /// both ways, fetched only when a program pastes)
    #[arg(long)]
    pub no_clipboard: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodecChoice {
    H264,
    Rfx,
    Lossless,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum H264DecoderChoice {
    Auto,
    Ffmpeg,
    Openh264,
    Cisco,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SecurityChoice {
    Nla,
    Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    Fit,
    None,
}

/// `NAME=PATH`: a drive name the server can show (letters, digits, `-`, `_`; at most 32) and
/// an existing folder.
pub fn parse_drive(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=PATH, e.g. logs=./logs"))?;
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "`{name}` is not a drive name: use letters, digits, `-` and `_`, at most 32"
        ));
    }
    let path = PathBuf::from(path);
    let folder = std::fs::canonicalize(&path)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| format!("`{}` is not a folder", path.display()))?;
    // IronRDP's drive backend takes the folder's path as text.
    if folder.to_str().is_none() {
        return Err(format!(
            "`{}` resolves to a path that is not UTF-8, which the shared drive cannot serve",
            folder.display()
        ));
    }
    if let Some(why) = swappable(&folder) {
        return Err(format!(
            "`{}` cannot be shared safely: {why}. Another user could put a folder of theirs, \
             or one of yours, in its place during the session; share a folder whose parents \
             only you or root can change",
            folder.display()
        ));
    }
    Ok((name.to_owned(), folder))
}

/// Why another local user could replace `folder` (or a folder above it) during a session: the
/// drive backend opens the shared folder by its path at each request. A parent they own, or
/// one they may write (others, or a group not the user's own) without the sticky bit (which
/// keeps `/tmp` safe), lets them rename it.
fn swappable(folder: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let (me, my_group) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    folder.ancestors().skip(1).find_map(|dir| {
        let meta = std::fs::metadata(dir).ok()?;
        let (owner, mode) = (meta.uid(), meta.mode());
        let sticky = mode & 0o1000 != 0;
        let group_writes = mode & 0o020 != 0 && meta.gid() != my_group;
        if owner != me && owner != 0 {
            Some(format!(
                "{} belongs to another user (uid {owner})",
                dir.display()
            ))
        } else if (mode & 0o002 != 0 || group_writes) && !sticky {
            Some(format!(
                "{} can be written by other users (mode {:04o})",
                dir.display(),
                mode & 0o7777
            ))
        } else {
            None
        }
    })
}

pub fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{text}` is not a size like 1280x800 (each side 200 to 8192)");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let side = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|v| (200..=8192).contains(v))
    };
    Ok((side(w).ok_or_else(bad)?, side(h).ok_or_else(bad)?))
}

/// Splits `HOST[:PORT]` (IPv6 in brackets) with a default port.
pub fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let bad = || format!("`{text}` is not HOST[:PORT]");
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
            (host, port.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (text, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1280x800"), Ok((1280, 800)));
        assert!(parse_size("12x8").is_err());
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            host_port("example.com", 3389),
            Ok(("example.com".into(), 3389))
        );
        assert_eq!(
            host_port("127.0.0.1:13389", 3389),
            Ok(("127.0.0.1".into(), 13389))
        );
        assert_eq!(host_port("[::1]:5", 3389), Ok(("::1".into(), 5)));
        assert_eq!(host_port("::1", 3389), Ok(("::1".into(), 3389)));
        assert!(host_port("host:notaport", 3389).is_err());
    }

    #[test]
    fn wait_takes_its_duration_attached_or_not() {
        use clap::Parser as _;
        let parse = |line: &str| {
            Args::try_parse_from(attach_wait_duration(line.split(' ').map(OsString::from)))
        };
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        for line in [
            "ecsrdp prod/i-1 --wait 20m",
            "ecsrdp prod/i-1 --wait=20m",
            "ecsrdp --wait 20m prod/i-1",
        ] {
            let args = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(args.aws.wait, minutes(20), "{line}");
            assert_eq!(args.target.map(|t| t.to_string()), Some("prod/i-1".into()));
        }
        for line in ["ecsrdp --wait prod/i-1", "ecsrdp prod/i-1 --wait"] {
            let args = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(args.aws.wait, minutes(15), "{line}");
        }
        let args = parse("ecsrdp password prod/i-1 --wait 5m").unwrap();
        let Some(Command::Password { aws, .. }) = args.command else {
            panic!("not the password command")
        };
        assert_eq!(aws.wait, minutes(5));
    }

    #[test]
    fn exit_after_is_a_duration_a_session_can_last() {
        use clap::Parser as _;
        let parse = |value: &str| Args::try_parse_from(["ecsrdp", "p/i-1", "--exit-after", value]);
        assert_eq!(
            parse("2s").unwrap().session.exit_after,
            Some(Duration::from_secs(2))
        );
        let error = parse("400000000000y").unwrap_err().to_string();
        assert!(error.contains("at most a year"), "{error}");
    }

    #[test]
    fn i_names_the_key_as_in_ssh() {
        use clap::Parser as _;
        let args = Args::try_parse_from(["ecsrdp", "prod/i-1", "-i", "k.pem"]).unwrap();
        assert_eq!(args.aws.key, Some(PathBuf::from("k.pem")));
    }

    #[test]
    fn help_groups_the_options_under_headings() {
        use clap::CommandFactory as _;
        let help = Args::command().render_long_help().to_string();
        let aws = help
            .find("Finding the instance and its password:")
            .expect(&help);
        let session = help.find("The session:").expect(&help);
        // Each option under its own heading.
        let at = |option: &str| help.find(option).expect(option);
        assert!(aws < at("--profile") && at("--profile") < session, "{help}");
        assert!(
            session < at("--fullscreen") && session < at("--codec"),
            "{help}"
        );
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory as _;
        Args::command().debug_assert();
    }

    #[test]
    fn a_folder_others_could_swap_is_not_shared() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        let sticky = dir.path().join("sticky");
        for (parent, mode) in [(&open, 0o777), (&sticky, 0o1777)] {
            std::fs::create_dir_all(parent.join("logs")).unwrap();
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let refused = parse_drive(&format!("logs={}/logs", open.display())).unwrap_err();
        assert!(
            refused.contains("can be written by other users (mode 0777)"),
            "{refused}"
        );
        let (name, folder) = parse_drive(&format!("logs={}/logs", sticky.display())).unwrap();
        assert_eq!(
            (name.as_str(), folder),
            ("logs", sticky.join("logs").canonicalize().unwrap())
        );
    }
}
