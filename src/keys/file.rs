//! Finding and reading the key pair's private key file. A passphrase comes from
//! `ECSRDP_KEY_PASSPHRASE`, else from whoever the caller says can be asked (a person at a
//! terminal, through `term`): this module never prompts itself.
//!
//! The file is read into zeroizing memory and parsed; it is never copied or written.
//! Order: `--key`, `ECSRDP_KEY`, then `<KeyName>.pem` and `<KeyName>` in the configured
//! `key_dir` and in `~/.ssh`.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{KeyError, PrivateKey};

/// Asks someone for the passphrase of the key at a path; `None` when nobody can be asked.
pub type AskPassphrase<'a> = &'a dyn Fn(&Path) -> Option<Zeroizing<String>>;

/// Where the key may be, in the order tried.
#[derive(Clone, Debug)]
pub struct KeySearch {
    /// `--key` or `ECSRDP_KEY`: the only place looked at when given.
    pub explicit: Option<PathBuf>,
    /// The home directory, for `~/.ssh/<KeyName>[.pem]`.
    pub home: Option<PathBuf>,
    /// `key_dir` from the config file, looked in before `~/.ssh`.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "no private key for key pair `{key_name}` was found (tried {}); pass it with --key FILE or \
         set ECSRDP_KEY",
        list(.tried)
    )]
    NotFound {
        key_name: String,
        tried: Vec<PathBuf>,
    },
    #[error("cannot read the key file {}: {source}; check the path and its permissions", .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the key {} is protected by a passphrase and there is no terminal to ask on; set \
         ECSRDP_KEY_PASSPHRASE",
        .path.display()
    )]
    PassphraseUnavailable { path: PathBuf },
    #[error(
        "the instance's key pair is named `{key_name}`, which is not a plain file name, so ecsrdp \
         does not look for a key file by that name; pass the key pair's private key with --key \
         FILE"
    )]
    NotAFileName { key_name: String },
    #[error("{}: {source}", .path.display())]
    Key { path: PathBuf, source: KeyError },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl KeySearch {
    /// The standard search: `--key`, else `ECSRDP_KEY`, else `dir` (the config file's
    /// `key_dir`), then `~/.ssh`.
    pub fn standard(flag: Option<PathBuf>, dir: Option<PathBuf>) -> Self {
        let explicit = flag.or_else(|| std::env::var_os("ECSRDP_KEY").map(PathBuf::from));
        let home = std::env::var_os("HOME").map(PathBuf::from);
        KeySearch {
            explicit,
            home,
            dir,
        }
    }

    /// The paths to try for `key_name`, in order.
    pub fn candidates(&self, key_name: &str) -> Vec<PathBuf> {
        if let Some(path) = &self.explicit {
            return vec![path.clone()];
        }
        let ssh = self.home.as_ref().map(|home| home.join(".ssh"));
        self.dir
            .iter()
            .chain(ssh.iter())
            .flat_map(|dir| [dir.join(format!("{key_name}.pem")), dir.join(key_name)])
            .collect()
    }

    /// Finds, reads and parses the key for `key_name`, asking for a passphrase if needed.
    pub fn load(
        &self,
        key_name: &str,
        ask: AskPassphrase<'_>,
    ) -> Result<(PathBuf, PrivateKey), KeyFileError> {
        // The name comes from AWS, that is from whoever launched the instance: it must not
        // lead out of the key folders (`../../.aws/credentials`) or to a device.
        if self.explicit.is_none() && !is_plain_file_name(key_name) {
            return Err(KeyFileError::NotAFileName {
                key_name: key_name.escape_debug().to_string(),
            });
        }
        let tried = self.candidates(key_name);
        let path = tried
            .iter()
            .find(|path| path.exists() || self.explicit.is_some())
            .cloned()
            .ok_or_else(|| KeyFileError::NotFound {
                key_name: key_name.to_owned(),
                tried: tried.clone(),
            })?;
        let key = load_file(&path, ask)?;
        Ok((path, key))
    }
}

/// A name that stays a single file in the folder it is joined to.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

/// The largest key file read: an RSA key of 16384 bits is under 13 KiB in any format; a bigger
/// file (or a device that never ends) is not a key and is not read whole.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The file's permission bits when users other than its owner may read it (as `ssh` checks
/// before it uses a key): whoever can read the key can decrypt the instance's password.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

/// Reads and parses one key file.
pub fn load_file(path: &Path, ask: AskPassphrase<'_>) -> Result<PrivateKey, KeyFileError> {
    let unreadable = |source| KeyFileError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(unreadable)?,
            MAX_KEY_FILE + 1,
        ),
        &mut bytes,
    )
    .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(unreadable(std::io::Error::other(format!(
            "it is larger than {} KiB, which no key file is",
            MAX_KEY_FILE / 1024
        ))));
    }
    // Binary (a DER key, a .ppk of another era, anything else): not a key file ecsrdp reads.
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => Zeroizing::new(text.to_owned()),
        Err(_) => {
            return Err(KeyFileError::Key {
                path: path.to_owned(),
                source: KeyError::NotAKey,
            })
        }
    };
    let passphrase = if PrivateKey::needs_passphrase(&text) {
        Some(passphrase(path, ask)?)
    } else {
        None
    };
    PrivateKey::parse(&text, passphrase.as_deref().map(String::as_str)).map_err(|source| {
        KeyFileError::Key {
            path: path.to_owned(),
            source,
        }
    })
}

/// `ECSRDP_KEY_PASSPHRASE` for scripts, else whoever `ask` reaches.
fn passphrase(path: &Path, ask: AskPassphrase<'_>) -> Result<Zeroizing<String>, KeyFileError> {
    if let Some(value) = super::environment::passphrase() {
        return Ok(value);
    }
    ask(path).ok_or_else(|| KeyFileError::PassphraseUnavailable {
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pair_name_never_leads_out_of_the_key_folders() {
        let search = KeySearch {
            explicit: None,
            home: Some(PathBuf::from("/home/u")),
            dir: None,
        };
        let ask: AskPassphrase<'_> = &|_| None;
        for name in ["../../.aws/credentials", "..", "a/b", "", "kp\nx"] {
            let error = search.load(name, ask).unwrap_err();
            assert!(
                matches!(error, KeyFileError::NotAFileName { .. }),
                "{name}: {error}"
            );
        }
        assert!(matches!(
            search.load("kp-ok", ask).unwrap_err(),
            KeyFileError::NotFound { .. }
        ));
    }

    #[test]
    fn a_file_too_big_to_be_a_key_is_not_read_whole() {
        let error = load_file(Path::new("/dev/zero"), &|_| None).unwrap_err();
        assert!(error.to_string().contains("larger than 64 KiB"), "{error}");
    }

    #[test]
    fn a_binary_file_is_no_key_not_an_unreadable_one() {
        let dir = std::env::temp_dir().join(format!("ecsrdp-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.der");
        std::fs::write(&path, [0x30, 0x82, 0xff, 0xfe, 0x00, 0x80]).unwrap();
        let result = load_file(&path, &|_| None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(
                result,
                Err(KeyFileError::Key {
                    source: KeyError::NotAKey,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
