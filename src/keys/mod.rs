//! Key material and the Windows password: parse a private key, decrypt `GetPasswordData`.
//!
//! Pure here: no IO (finding and reading the file is [`file`]'s job). The password only ever lives
//! in a [`Password`], which zeroizes its memory on drop and never shows itself in `Debug`.

pub mod environment;
pub mod file;

use std::fmt;

use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use zeroize::Zeroizing;

/// The decrypted Windows password. Its `Debug` is redacted and its memory zeroized on drop.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    pub fn new(text: String) -> Self {
        Password(Zeroizing::new(text))
    }

    /// The secret itself: call only where it leaves for the RDP server or, on request, stdout.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An RSA private key, the only kind AWS encrypts Windows passwords to.
/// (`RsaPrivateKey` zeroizes its own material on drop.)
pub struct PrivateKey(RsaPrivateKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "this file holds no private key in a format ecsrdp knows (PEM PKCS#1, PKCS#8, or OpenSSH)"
    )]
    NotAKey,
    #[error(
        "this is {0} key; AWS encrypts Windows passwords only to RSA key pairs, so no password can \
         be recovered with it. Launch the instance with an RSA key pair"
    )]
    NotRsa(String),
    #[error("the key is protected by a passphrase")]
    PassphraseRequired,
    #[error("the passphrase does not unlock this key")]
    WrongPassphrase,
    #[error(
        "this PEM key is encrypted with {0}, which ecsrdp does not read; convert it once with \
         `ssh-keygen -p -f FILE` (rewrites it in the OpenSSH format)"
    )]
    UnsupportedCipher(String),
    #[error(
        "this is a PuTTY key (.ppk); export it in OpenSSH format with \
         `puttygen FILE.ppk -O private-openssh -o FILE.pem` and pass that with --key"
    )]
    Putty,
    #[error("the key file is damaged: {0}")]
    Malformed(String),
    #[error("the password data from AWS is not valid base64")]
    BadPasswordData,
    /// Decryption failed or gave something that is not a password: the key is not the pair's.
    #[error("this key does not match the instance's key pair")]
    WrongKey,
}

impl PrivateKey {
    /// Parses a PEM or OpenSSH private key; `passphrase` unlocks encrypted ones.
    pub fn parse(text: &str, passphrase: Option<&str>) -> Result<Self, KeyError> {
        let text = text.trim_start();
        let label = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("-----BEGIN "))
            .and_then(|line| line.strip_suffix("-----"));
        match label {
            Some("RSA PRIVATE KEY") if text.contains("Proc-Type: 4,ENCRYPTED") => {
                let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
                parse_legacy_encrypted(text, passphrase)
            }
            Some("RSA PRIVATE KEY") => RsaPrivateKey::from_pkcs1_pem(text)
                .map(PrivateKey)
                .map_err(|e| KeyError::Malformed(e.to_string())),
            Some("PRIVATE KEY") => parse_pkcs8(text),
            Some("ENCRYPTED PRIVATE KEY") => {
                let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
                RsaPrivateKey::from_pkcs8_encrypted_pem(text, passphrase)
                    .map(PrivateKey)
                    .map_err(|_| KeyError::WrongPassphrase)
            }
            Some("OPENSSH PRIVATE KEY") => parse_openssh(text, passphrase),
            Some("EC PRIVATE KEY") => Err(KeyError::NotRsa("an EC (ECDSA)".into())),
            Some("DSA PRIVATE KEY") => Err(KeyError::NotRsa("a DSA".into())),
            _ if text.starts_with("PuTTY-User-Key-File-") => Err(KeyError::Putty),
            _ => Err(KeyError::NotAKey),
        }
    }

    /// Whether parsing needs a passphrase, so the caller asks only when it must.
    pub fn needs_passphrase(text: &str) -> bool {
        matches!(
            PrivateKey::parse(text, None),
            Err(KeyError::PassphraseRequired)
        )
    }

    /// Decrypts `GetPasswordData`'s answer: base64 (AWS may wrap it) of an RSA PKCS#1 v1.5
    /// ciphertext of the password.
    pub fn decrypt_password(&self, password_data: &str) -> Result<Password, KeyError> {
        let compact: String = password_data
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| KeyError::BadPasswordData)?;
        let plain = Zeroizing::new(
            self.0
                .decrypt(Pkcs1v15Encrypt, &ciphertext)
                .map_err(|_| KeyError::WrongKey)?,
        );
        // PKCS#1 v1.5 padding can pass by chance with a wrong key; a real Windows password is
        // printable text, so anything else means the key is not the pair's.
        let text = std::str::from_utf8(&plain).map_err(|_| KeyError::WrongKey)?;
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(KeyError::WrongKey);
        }
        Ok(Password::new(text.to_owned()))
    }
}

fn parse_pkcs8(text: &str) -> Result<PrivateKey, KeyError> {
    use rsa::pkcs8::der::pem::PemLabel as _;
    use rsa::pkcs8::der::Decode as _;

    if let Ok(key) = RsaPrivateKey::from_pkcs8_pem(text) {
        return Ok(PrivateKey(key));
    }
    // Tell a non-RSA key apart from a damaged one by its algorithm identifier.
    let (label, der) = rsa::pkcs8::der::pem::decode_vec(text.as_bytes())
        .map_err(|e| KeyError::Malformed(e.to_string()))?;
    if rsa::pkcs8::PrivateKeyInfo::validate_pem_label(label).is_err() {
        return Err(KeyError::NotAKey);
    }
    let info = rsa::pkcs8::PrivateKeyInfo::from_der(&der)
        .map_err(|e| KeyError::Malformed(e.to_string()))?;
    let kind = match info.algorithm.oid.to_string().as_str() {
        "1.2.840.10045.2.1" => "an EC (ECDSA)",
        "1.3.101.112" => "an Ed25519",
        "1.3.101.113" => "an Ed448",
        "1.2.840.10040.4.1" => "a DSA",
        _ => "a non-RSA",
    };
    Err(KeyError::NotRsa(kind.into()))
}

fn parse_openssh(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, KeyError> {
    let text = rewrap_openssh(text);
    let mut key = ssh_key::PrivateKey::from_openssh(&*text)
        .map_err(|e| KeyError::Malformed(e.to_string()))?;
    if key.is_encrypted() {
        let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
        key = key
            .decrypt(passphrase)
            .map_err(|_| KeyError::WrongPassphrase)?;
    }
    match key.key_data() {
        ssh_key::private::KeypairData::Rsa(pair) => rsa_from_openssh(pair),
        ssh_key::private::KeypairData::Ed25519(_) => Err(KeyError::NotRsa("an Ed25519".into())),
        ssh_key::private::KeypairData::Ecdsa(_) => Err(KeyError::NotRsa("an ECDSA".into())),
        _ => Err(KeyError::NotRsa(format!("a {}", key.algorithm()))),
    }
}

/// The legacy OpenSSL encryption of PKCS#1 PEM (RFC 1421 headers), still what
/// `ssh-keygen -m PEM -N …` and `openssl genrsa -aes256` write: `DEK-Info: <cipher>,<iv hex>`,
/// a key from OpenSSL's `EVP_BytesToKey` (MD5, one round, salt = first 8 bytes of the IV), CBC
/// with PKCS#7 padding around the PKCS#1 DER.
fn parse_legacy_encrypted(text: &str, passphrase: &str) -> Result<PrivateKey, KeyError> {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut as _, KeyIvInit as _};

    let malformed = |what: &str| KeyError::Malformed(what.to_owned());
    let dek = text
        .lines()
        .find_map(|line| line.strip_prefix("DEK-Info:"))
        .ok_or_else(|| malformed("no DEK-Info header"))?;
    let (cipher, iv) = dek
        .trim()
        .split_once(',')
        .ok_or_else(|| malformed("bad DEK-Info header"))?;
    let iv = hex::decode(iv.trim()).map_err(|_| malformed("bad IV in DEK-Info"))?;
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----") && !line.contains(':'))
        .map(str::trim)
        .collect();
    let data = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| malformed("bad base64"))?;
    let key_len = match cipher {
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        "DES-EDE3-CBC" => 24,
        other => return Err(KeyError::UnsupportedCipher(other.to_owned())),
    };
    let salt = iv.get(..8).ok_or_else(|| malformed("IV too short"))?;
    let key = evp_bytes_to_key(passphrase.as_bytes(), salt, key_len);
    let plain = Zeroizing::new(
        match cipher {
            "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
                .map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(&data)),
            "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
                .map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(&data)),
            "AES-256-CBC" => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
                .map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(&data)),
            _ => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(&data)),
        }
        .map_err(|_| malformed("bad key or IV length"))?
        .map_err(|_| KeyError::WrongPassphrase)?,
    );
    // A wrong passphrase almost always breaks the padding; when it does not, the DER does.
    RsaPrivateKey::from_pkcs1_der(&plain)
        .map(PrivateKey)
        .map_err(|_| KeyError::WrongPassphrase)
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one round: D_i = MD5(D_{i-1} || pass || salt).
fn evp_bytes_to_key(passphrase: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    use md5::{Digest as _, Md5};
    let mut key = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut previous: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut md5 = Md5::new();
        md5.update(&previous);
        md5.update(passphrase);
        md5.update(salt);
        previous = md5.finalize().to_vec();
        key.extend_from_slice(&previous);
    }
    key.truncate(len);
    key
}

/// Builds the RSA key from its parts. (`ssh-key` 0.6's own conversion passes `p` twice
/// instead of `p` and `q`, so it fails on every real key.)
fn rsa_from_openssh(pair: &ssh_key::private::RsaKeypair) -> Result<PrivateKey, KeyError> {
    let int = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or_else(|| KeyError::Malformed("an RSA component is not a positive integer".into()))
    };
    let key = RsaPrivateKey::from_components(
        int(&pair.public.n)?,
        int(&pair.public.e)?,
        int(&pair.private.d)?,
        vec![int(&pair.private.p)?, int(&pair.private.q)?],
    )
    .map_err(|e| KeyError::Malformed(e.to_string()))?;
    Ok(PrivateKey(key))
}

/// `ssh-key` accepts only OpenSSH's own 70-column lines; keys written by other tools (Python's
/// `cryptography` uses 64) or re-wrapped by an editor are just as valid, so wrap them anew.
fn rewrap_openssh(text: &str) -> Zeroizing<String> {
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const END: &str = "-----END OPENSSH PRIVATE KEY-----";
    let body: Zeroizing<String> = Zeroizing::new(
        text.lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("-----"))
            .collect(),
    );
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 70 + 80));
    out.push_str(BEGIN);
    out.push('\n');
    for line in body.as_bytes().chunks(70) {
        // INVARIANT: the body is base64, so ASCII, and every chunk boundary is a char boundary.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_is_redacted() {
        let password = Password::new("hunter2".into());
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
    }

    #[test]
    fn unknown_text_is_not_a_key() {
        assert_eq!(
            PrivateKey::parse("hello", None).unwrap_err(),
            KeyError::NotAKey
        );
    }

    #[test]
    fn putty_gets_conversion_advice_and_legacy_pem_asks_for_a_passphrase() {
        let ppk = "PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\n";
        assert_eq!(PrivateKey::parse(ppk, None).unwrap_err(), KeyError::Putty);
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: BF-CBC,0001020304050607\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(PrivateKey::needs_passphrase(legacy));
        assert_eq!(
            PrivateKey::parse(legacy, Some("x")).unwrap_err(),
            KeyError::UnsupportedCipher("BF-CBC".into())
        );
    }

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // `openssl enc -aes-128-cbc -k password -S 0102030405060708 -P -md md5`
        let key = evp_bytes_to_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8], 16);
        assert_eq!(hex::encode(&*key), "e7b0971e52ca5cc8d0539fb3412f6316");
    }
}
