//! Secrets a script passes in the environment (`ECSRDP_PASSWORD` for `direct`,
//! `ECSRDP_KEY_PASSPHRASE` for a key file): taken out of it once, at start and before any
//! thread, so that no program ecsrdp starts inherits them, and kept in zeroizing memory until
//! used. Used as a library (without [`take_from_environment`]), the environment is read as is.

use std::sync::{Mutex, OnceLock, PoisonError};

use zeroize::Zeroizing;

pub const PASSWORD: &str = "ECSRDP_PASSWORD";
pub const PASSPHRASE: &str = "ECSRDP_KEY_PASSPHRASE";

struct Taken {
    password: Option<Zeroizing<String>>,
    passphrase: Option<Zeroizing<String>>,
}

static TAKEN: OnceLock<Mutex<Taken>> = OnceLock::new();

/// Moves the secrets out of the process environment. Call first thing in `main`: changing the
/// environment is safe only while no other thread reads it.
pub fn take_from_environment() {
    let take = |name: &str| {
        let value = std::env::var(name).ok().map(Zeroizing::new);
        std::env::remove_var(name);
        value
    };
    let taken = Taken {
        password: take(PASSWORD),
        passphrase: take(PASSPHRASE),
    };
    let _ = TAKEN.set(Mutex::new(taken));
}

/// `ECSRDP_PASSWORD`, once: whoever takes it owns the only copy.
pub fn password() -> Option<Zeroizing<String>> {
    match TAKEN.get() {
        Some(taken) => taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .password
            .take(),
        None => std::env::var(PASSWORD).ok().map(Zeroizing::new),
    }
}

/// `ECSRDP_KEY_PASSPHRASE`, for each key file that needs it.
pub fn passphrase() -> Option<Zeroizing<String>> {
    match TAKEN.get() {
        Some(taken) => taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .passphrase
            .clone(),
        None => std::env::var(PASSPHRASE).ok().map(Zeroizing::new),
    }
}
