//! IronRDP's decoders run on whatever a server sends, and fuzzing has found inputs on which
//! they panic (a RemoteFX tile position whose pixel offset overflows). A hostile server must
//! end the session with a message and exit 5, not the process with a backtrace, so the decoding
//! call runs [`contained`]: a panic there becomes an error, and the panic hook leaves such
//! panics to the debug log. Any other panic is still reported by the hook that was installed.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Set while this thread runs a [`contained`] call.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`; a panic in it comes back as `Err` with its message. Whatever `f` was changing
/// must be given up by the caller (the session ends).
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = CONTAINED.replace(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.set(was);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

/// Wraps the current panic hook so that panics inside [`contained`] are only logged (at debug
/// level, with where they happened); the rest go to the previous hook as before.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CONTAINED.get() {
            tracing::debug!(%info, "the decoder panicked; the session ends");
        } else {
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_becomes_an_error_and_the_flag_is_restored() {
        install_panic_hook();
        assert_eq!(contained(|| 7), Ok(7));
        let err = contained(|| -> u8 { panic!("boom {}", 1) }).unwrap_err();
        assert_eq!(err, "boom 1");
        assert!(!CONTAINED.get());
    }
}
