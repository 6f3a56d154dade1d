//! Whatever a user passes as `--key`: PEM (PKCS#1, PKCS#8, encrypted or not, legacy
//! OpenSSL-encrypted), OpenSSH, PuTTY, or garbage. Parsing must fail with an error, never
//! panic; a passphrase is tried as well, since encrypted keys take another path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ecsrdp::keys::PrivateKey::parse(text, None);
    let _ = ecsrdp::keys::PrivateKey::parse(text, Some("passphrase"));
});
