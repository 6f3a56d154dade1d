//! The optional config file, `$XDG_CONFIG_HOME/ecsrdp/config.toml` (`~/.config/ecsrdp` when
//! unset; `ECSRDP_CONFIG` names another): defaults for what people otherwise type every time.
//! The command line always wins; the file only fills in what it did not say.
//!
//! ```toml
//! user = "Administrator"
//! key_dir = "~/keys"
//! size = "1600x900"
//! scale = "fit"
//! clipboard = false
//! keyboard_layout = "de"
//!
//! [clusters.prod]
//! profile = "prod-admin"
//! region = "eu-west-1"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum as _;
use serde::Deserialize;

use super::{parse_size, Args, AwsArgs, Command, Scale, SessionArgs};
use crate::rdp::Klid;
use crate::target::Target;

/// The config file exists but cannot be read or understood (a usage error, exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    user: Option<String>,
    key_dir: Option<String>,
    size: Option<String>,
    scale: Option<String>,
    /// `false`: as `--no-clipboard`.
    clipboard: Option<bool>,
    /// As `--keyboard-layout`.
    keyboard_layout: Option<String>,
    #[serde(default)]
    clusters: BTreeMap<String, ClusterConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterConfig {
    profile: Option<String>,
    region: Option<String>,
}

/// The options named on the command line, which the file must not override.
pub trait Given {
    fn given(&self, id: &str) -> bool;
}

impl Given for clap::ArgMatches {
    fn given(&self, id: &str) -> bool {
        let matches = self.subcommand().map_or(self, |(_, sub)| sub);
        // Asked of ids the subcommand may not define: `try_get_raw` says so instead of panicking.
        let source = matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .and_then(|_| matches.value_source(id));
        matches!(
            source,
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        )
    }
}

impl Config {
    /// Where the file is looked for.
    pub fn path() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("ECSRDP_CONFIG") {
            return Some(PathBuf::from(path));
        }
        directories::ProjectDirs::from("", "", "ecsrdp")
            .map(|dirs| dirs.config_dir().join("config.toml"))
    }

    /// The file's settings; none when it does not exist. A file that exists but cannot be read
    /// or understood is a usage error naming it, not something to pass over silently.
    pub fn load() -> Result<Config, ConfigError> {
        let Some(path) = Config::path() else {
            return Ok(Config::default());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(bad(&path, &e.to_string())),
        };
        let config: Config = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1);
            let at = line.map(|n| format!("line {n}: ")).unwrap_or_default();
            bad(&path, &format!("{at}{}", e.message()))
        })?;
        config.check(&path)?;
        Ok(config)
    }

    /// Values whose form toml cannot check.
    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        if let Some(size) = &self.size {
            parse_size(size).map_err(|e| bad(path, &format!("size: {e}")))?;
        }
        if let Some(scale) = &self.scale {
            Scale::from_str(scale, false)
                .map_err(|_| bad(path, &format!("scale: `{scale}` is not `fit` or `none`")))?;
        }
        if let Some(layout) = &self.keyboard_layout {
            Klid::parse(layout).map_err(|e| bad(path, &format!("keyboard_layout: {e}")))?;
        }
        Ok(())
    }

    /// Fills in what the command line left open.
    pub fn apply(&self, args: &mut Args, given: &impl Given) {
        match &mut args.command {
            Some(
                Command::Resolve { target, aws, .. }
                | Command::Password { target, aws }
                | Command::Tunnel { target, aws, .. },
            ) => self.apply_aws(aws, Some(target), given),
            Some(Command::RdpFile {
                target, aws, size, ..
            }) => {
                self.apply_aws(aws, Some(target), given);
                if size.is_none() {
                    *size = self.size.as_deref().and_then(|s| parse_size(s).ok());
                }
            }
            Some(Command::Direct { session, user, .. }) => {
                if let (Some(wanted), false) = (&self.user, given.given("user")) {
                    user.clone_from(wanted);
                }
                self.apply_session(session, given);
            }
            Some(_) => {}
            None => {
                self.apply_aws(&mut args.aws, args.target.as_ref(), given);
                self.apply_session(&mut args.session, given);
            }
        }
    }

    fn apply_aws(&self, aws: &mut AwsArgs, target: Option<&Target>, given: &impl Given) {
        if let (Some(user), false) = (&self.user, given.given("user")) {
            aws.user.clone_from(user);
        }
        aws.key_dir = self.key_dir.as_deref().map(expand_home);
        let cluster = target.and_then(|t| {
            let cluster = t.cluster.as_deref()?;
            let name = cluster.rsplit('/').next().unwrap_or(cluster);
            self.clusters.get(name)
        });
        if let Some(cluster) = cluster {
            if aws.profile.is_none() && !given.given("profile") {
                aws.profile.clone_from(&cluster.profile);
            }
            if aws.region.is_none() && !given.given("region") {
                aws.region.clone_from(&cluster.region);
            }
        }
    }

    fn apply_session(&self, session: &mut SessionArgs, given: &impl Given) {
        if session.size.is_none() {
            session.size = self.size.as_deref().and_then(|s| parse_size(s).ok());
        }
        if let (Some(scale), false) = (&self.scale, given.given("scale")) {
            if let Ok(scale) = Scale::from_str(scale, false) {
                session.scale = scale;
            }
        }
        if self.clipboard == Some(false) {
            session.no_clipboard = true;
        }
        if session.keyboard_layout.is_none() {
            session.keyboard_layout = self
                .keyboard_layout
                .as_deref()
                .and_then(|l| Klid::parse(l).ok());
        }
    }
}

fn bad(path: &Path, detail: &str) -> ConfigError {
    ConfigError(format!(
        "the config file {} is not valid: {}; fix it or move it away",
        path.display(),
        detail.trim()
    ))
}

/// `~/x` as people write it in config files.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
