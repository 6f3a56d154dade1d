//! Trust on first use for server certificates: RDP servers (Windows included) present
//! self-signed certificates, so we remember each one's SHA-256 fingerprint and refuse a change.
//! What makes a remembered fingerprint worth anything is [`super::tls`]: the handshake proves the
//! peer holds the certificate's key.
//!
//! The store is a text file, `<key> <fingerprint>` per line, under the XDG data dir
//! (`$ECSRDP_DATA_DIR` overrides, for tests). Keys are EC2 instance IDs for AWS targets, so a
//! tunnel's `localhost:port` never collides, and `host:port` for `direct`. It is kept the way
//! OpenSSH keeps `known_hosts`, only stricter: mode 0600 in a 0700 directory, changed under a
//! lock so that two runs never lose each other's entries, replaced atomically (temporary file,
//! `fsync`, rename), and never silently rewritten when it cannot be read.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::rdp::error::RdpError;

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

/// The SHA-256 fingerprint of a DER certificate, as colon-separated upper-case hex (the form
/// Windows' and FreeRDP's certificate dialogs show).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate's SHA-1 thumbprint, 40 hex digits, as Windows' certificate manager, macOS and
/// AWS's guide show it (EC2Launch writes it to the instance's console output as
/// `RDPCERTIFICATE-THUMBPRINT`). Shown to the user to compare; never used to pin, which is the
/// SHA-256 [`fingerprint`]'s job.
pub fn thumbprint(der: &[u8]) -> String {
    Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Whether `text` is a fingerprint as [`fingerprint`] writes it.
fn is_fingerprint(text: &str) -> bool {
    text.len() == 32 * 3 - 1
        && text.split(':').all(|pair| {
            pair.len() == 2
                && pair
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        })
}

/// The verdict on a presented certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustDecision {
    Known,
    New,
    Changed { old: String },
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

    /// Every remembered `(key, fingerprint)`, in file order. A line that is neither blank, a
    /// `#` comment nor an entry makes the whole store an error: guessing past it could drop
    /// a pin.
    pub fn entries(&self) -> Result<Vec<(String, String)>, RdpError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e.to_string())),
        };
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(' ') {
                Some((key, fingerprint)) if is_fingerprint(fingerprint.trim()) => {
                    entries.push((key.to_owned(), fingerprint.trim().to_owned()))
                }
                _ => {
                    return Err(self.error(format!(
                        "line {} is not `<key> <SHA-256 fingerprint>`; the file is damaged. Fix \
                         or delete that line (its server will be asked about again)",
                        number + 1
                    )))
                }
            }
        }
        Ok(entries)
    }

    /// The fingerprint remembered for `key`, if any.
    pub fn pinned(&self, key: &TrustKey) -> Result<Option<String>, RdpError> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|(k, _)| *k == key.0)
            .map(|(_, fingerprint)| fingerprint))
    }

    pub fn decide(&self, key: &TrustKey, fingerprint: &str) -> Result<TrustDecision, RdpError> {
        Ok(match self.pinned(key)? {
            None => TrustDecision::New,
            Some(old) if old == fingerprint => TrustDecision::Known,
            Some(old) => TrustDecision::Changed { old },
        })
    }

    /// Remembers `fingerprint` for `key`, unless another run remembered a different one for it
    /// meanwhile (then that one stands and the answer is [`TrustDecision::Changed`]).
    pub fn remember(&self, key: &TrustKey, fingerprint: &str) -> Result<TrustDecision, RdpError> {
        self.update(|entries| {
            match entries.iter().find(|(k, _)| *k == key.0) {
                Some((_, old)) if old == fingerprint => return TrustDecision::Known,
                Some((_, old)) => return TrustDecision::Changed { old: old.clone() },
                None => entries.push((key.0.clone(), fingerprint.to_owned())),
            }
            TrustDecision::New
        })
    }

    /// Forgets `key`; `false` if nothing was remembered for it.
    pub fn forget(&self, key: &str) -> Result<bool, RdpError> {
        self.update(|entries| {
            let before = entries.len();
            entries.retain(|(k, _)| k != key);
            entries.len() != before
        })
    }

    /// Reads, changes and writes the store under an exclusive lock, so that concurrent runs
    /// each see the others' entries. Readers take no lock: the rename makes every version
    /// they can see whole.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Vec<(String, String)>) -> T,
    ) -> Result<T, RdpError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| self.error(e.to_string()))?;
        let lock = self.open_lock(&self.path.with_extension("lock"))?;
        lock.lock()
            .map_err(|e| self.error(format!("cannot lock it: {e}")))?;
        let mut entries = self.entries()?;
        let answer = change(&mut entries);
        self.replace(&entries)?;
        // The lock goes with the file handle.
        drop(lock);
        Ok(answer)
    }

    /// Writes `entries` over the store at once: a crash leaves the old store or the new one,
    /// never a mix.
    fn replace(&self, entries: &[(String, String)]) -> Result<(), RdpError> {
        let text: String = entries.iter().map(|(k, f)| format!("{k} {f}\n")).collect();
        crate::private_file::replace(&self.path, |file| file.write_all(text.as_bytes()))
            .map_err(|e| self.error(e.to_string()))
    }

    /// Opens the lock file, only its owner can read or write it, never through a link.
    fn open_lock(&self, path: &Path) -> Result<File, RdpError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| self.error(format!("{}: {e}", path.display())))
    }

    fn error(&self, detail: String) -> RdpError {
        RdpError::TrustStore {
            path: self.path.display().to_string(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const AA: &str = "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA";
    const BB: &str = "BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB";

    fn store() -> (tempfile::TempDir, TrustStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::at(dir.path().join("data/known_hosts"));
        (dir, store)
    }

    #[test]
    fn first_use_then_known_then_changed() {
        let (_dir, store) = store();
        let key = TrustKey::new("i-1".into());
        assert_eq!(store.decide(&key, AA).unwrap(), TrustDecision::New);
        assert_eq!(store.remember(&key, AA).unwrap(), TrustDecision::New);
        assert_eq!(store.decide(&key, AA).unwrap(), TrustDecision::Known);
        assert_eq!(
            store.decide(&key, BB).unwrap(),
            TrustDecision::Changed { old: AA.into() }
        );
        // A second remember never overwrites a pin.
        assert_eq!(
            store.remember(&key, BB).unwrap(),
            TrustDecision::Changed { old: AA.into() }
        );
        assert!(store.forget("i-1").unwrap());
        assert!(!store.forget("i-1").unwrap());
        assert_eq!(store.decide(&key, BB).unwrap(), TrustDecision::New);
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert!(fingerprint(b"").starts_with("E3:B0:C4:42"));
        assert!(is_fingerprint(&fingerprint(b"")));
        assert!(!is_fingerprint("E3:B0"));
    }

    #[test]
    fn the_store_is_private_to_its_owner() {
        let (_dir, store) = store();
        store.remember(&TrustKey::new("i-1".into()), AA).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path), 0o600);
        assert_eq!(mode(store.path.parent().unwrap()), 0o700);
    }

    #[test]
    fn a_damaged_store_is_reported_not_replaced() {
        let (_dir, store) = store();
        store.remember(&TrustKey::new("i-1".into()), AA).unwrap();
        let damaged = format!("i-1 {AA}\ni-2 not-a-fingerprint\n");
        std::fs::write(&store.path, &damaged).unwrap();
        let error = store
            .remember(&TrustKey::new("i-3".into()), BB)
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert_eq!(std::fs::read_to_string(&store.path).unwrap(), damaged);
        assert!(store.decide(&TrustKey::new("i-1".into()), AA).is_err());
    }

    #[test]
    fn concurrent_writers_lose_no_entry() {
        let (_dir, store) = store();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store
                        .remember(&TrustKey::new(format!("i-{i}")), AA)
                        .unwrap()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), TrustDecision::New);
        }
        assert_eq!(store.entries().unwrap().len(), 16);
    }
}
