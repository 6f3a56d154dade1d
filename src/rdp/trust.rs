//! Trust on first use for server certificates: RDP servers (Windows included) present
//! self-signed certificates, so we remember each one's SHA-256 fingerprint and refuse a change.
//!
//! The store is a plain text file, `<key> <fingerprint>` per line, under the XDG data dir
//! (`$ECSRDP_DATA_DIR` overrides, for tests). Keys are EC2 instance IDs for AWS targets, so a
//! tunnel's `localhost:port` never collides, and `host:port` for `direct`.

use std::fmt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::RdpError;

/// What a certificate is remembered under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustKey(String);

impl TrustKey {
    pub fn new(key: String) -> Self {
        TrustKey(key)
    }
}

impl fmt::Display for TrustKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 fingerprint of a DER certificate, as colon-separated hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The verdict on a presented certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustDecision {
    Known,
    New,
    Changed { old: String },
}

/// Asks the user about a new certificate.
pub trait TrustPrompt {
    /// `true` to trust and remember it.
    fn confirm_new(&self, key: &TrustKey, fingerprint: &str) -> Result<bool, RdpError>;
}

/// The file of remembered fingerprints.
#[derive(Clone, Debug)]
pub struct TrustStore {
    path: PathBuf,
}

impl TrustStore {
    pub fn at(path: PathBuf) -> Self {
        TrustStore { path }
    }

    /// `$ECSRDP_DATA_DIR/known_hosts`, else the platform's data dir (`~/.local/share/ecsrdp`).
    pub fn open_default() -> Result<Self, RdpError> {
        let dir = match std::env::var_os("ECSRDP_DATA_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => directories::ProjectDirs::from("", "", "ecsrdp")
                .map(|dirs| dirs.data_dir().to_owned())
                .ok_or_else(|| RdpError::TrustStore {
                    path: "~".into(),
                    detail: "no home directory; set ECSRDP_DATA_DIR".into(),
                })?,
        };
        Ok(TrustStore::at(dir.join("known_hosts")))
    }

    pub fn entries(&self) -> Result<Vec<(String, String)>, RdpError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e)),
        };
        Ok(text
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(k, f)| (k.to_owned(), f.trim().to_owned()))
            .collect())
    }

    pub fn decide(&self, key: &TrustKey, fingerprint: &str) -> Result<TrustDecision, RdpError> {
        Ok(
            match self.entries()?.into_iter().find(|(k, _)| *k == key.0) {
                None => TrustDecision::New,
                Some((_, old)) if old == fingerprint => TrustDecision::Known,
                Some((_, old)) => TrustDecision::Changed { old },
            },
        )
    }

    pub fn remember(&self, key: &TrustKey, fingerprint: &str) -> Result<(), RdpError> {
        let mut entries = self.entries()?;
        entries.retain(|(k, _)| *k != key.0);
        entries.push((key.0.clone(), fingerprint.to_owned()));
        self.write(&entries)
    }

    /// Forgets `key`; `false` if nothing was remembered for it.
    pub fn forget(&self, key: &str) -> Result<bool, RdpError> {
        let mut entries = self.entries()?;
        let before = entries.len();
        entries.retain(|(k, _)| k != key);
        if entries.len() == before {
            return Ok(false);
        }
        self.write(&entries)?;
        Ok(true)
    }

    fn write(&self, entries: &[(String, String)]) -> Result<(), RdpError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let text: String = entries.iter().map(|(k, f)| format!("{k} {f}\n")).collect();
        // Write then rename, so a crash never leaves a half-written store.
        let temp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, &self.path))
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: std::io::Error) -> RdpError {
        RdpError::TrustStore {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_then_known_then_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::at(dir.path().join("known_hosts"));
        let key = TrustKey::new("i-1".into());
        assert_eq!(store.decide(&key, "AA").unwrap(), TrustDecision::New);
        store.remember(&key, "AA").unwrap();
        assert_eq!(store.decide(&key, "AA").unwrap(), TrustDecision::Known);
        assert_eq!(
            store.decide(&key, "BB").unwrap(),
            TrustDecision::Changed { old: "AA".into() }
        );
        assert!(store.forget("i-1").unwrap());
        assert!(!store.forget("i-1").unwrap());
        assert_eq!(store.decide(&key, "BB").unwrap(), TrustDecision::New);
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert!(fingerprint(b"").starts_with("E3:B0:C4:42"));
    }
}
