//! Physical key → PC/AT scan code set 1, as RDP keyboard events carry it.
//!
//! An RDP keyboard event (MS-RDPBCGR 2.2.8.1.1.3.1.1.1) holds a one-byte set-1 make code plus
//! `KBDFLAGS_EXTENDED` for keys whose make code has the `E0` prefix. We keep our own table because
//! passing the platform's raw keycode through is only right on Windows: X11 keycodes and evdev
//! codes are not set-1 codes, so arrows, AltGr, Home/End and friends come out as the wrong keys.
//! winit's physical [`KeyCode`] names the key's position, independent of the local layout, so the
//! remote side applies its own layout to the scan code, just as with a keyboard plugged into it.
//!
//! Codes follow Microsoft's "Keyboard Scan Code Specification" (USB HID usage → set 1).

use winit::keyboard::KeyCode;

/// A set-1 scan code: the make code and whether it carries the E0 (extended) prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scancode {
    pub code: u8,
    pub extended: bool,
}

const fn plain(code: u8) -> Scancode {
    Scancode {
        code,
        extended: false,
    }
}

const fn ext(code: u8) -> Scancode {
    Scancode {
        code,
        extended: true,
    }
}

/// The set-1 scancode for a physical key, or None for keys RDP cannot send that way (then the
/// caller may use Unicode events or ignore).
///
/// Pause is None: its make code is the E1 sequence `E1 1D 45`, which needs `KBDFLAGS_EXTENDED1`
/// on a 0x1D event followed by a plain 0x45 event; a single [`Scancode`] cannot say that.
pub fn scancode(key: KeyCode) -> Option<Scancode> {
    let sc = match key {
        // Main block, row by row.
        KeyCode::Escape => plain(0x01),
        KeyCode::Digit1 => plain(0x02),
        KeyCode::Digit2 => plain(0x03),
        KeyCode::Digit3 => plain(0x04),
        KeyCode::Digit4 => plain(0x05),
        KeyCode::Digit5 => plain(0x06),
        KeyCode::Digit6 => plain(0x07),
        KeyCode::Digit7 => plain(0x08),
        KeyCode::Digit8 => plain(0x09),
        KeyCode::Digit9 => plain(0x0A),
        KeyCode::Digit0 => plain(0x0B),
        KeyCode::Minus => plain(0x0C),
        KeyCode::Equal => plain(0x0D),
        KeyCode::Backspace => plain(0x0E),
        KeyCode::Tab => plain(0x0F),
        KeyCode::KeyQ => plain(0x10),
        KeyCode::KeyW => plain(0x11),
        KeyCode::KeyE => plain(0x12),
        KeyCode::KeyR => plain(0x13),
        KeyCode::KeyT => plain(0x14),
        KeyCode::KeyY => plain(0x15),
        KeyCode::KeyU => plain(0x16),
        KeyCode::KeyI => plain(0x17),
        KeyCode::KeyO => plain(0x18),
        KeyCode::KeyP => plain(0x19),
        KeyCode::BracketLeft => plain(0x1A),
        KeyCode::BracketRight => plain(0x1B),
        KeyCode::Enter => plain(0x1C),
        KeyCode::ControlLeft => plain(0x1D),
        KeyCode::KeyA => plain(0x1E),
        KeyCode::KeyS => plain(0x1F),
        KeyCode::KeyD => plain(0x20),
        KeyCode::KeyF => plain(0x21),
        KeyCode::KeyG => plain(0x22),
        KeyCode::KeyH => plain(0x23),
        KeyCode::KeyJ => plain(0x24),
        KeyCode::KeyK => plain(0x25),
        KeyCode::KeyL => plain(0x26),
        KeyCode::Semicolon => plain(0x27),
        KeyCode::Quote => plain(0x28),
        KeyCode::Backquote => plain(0x29),
        KeyCode::ShiftLeft => plain(0x2A),
        KeyCode::Backslash => plain(0x2B),
        KeyCode::KeyZ => plain(0x2C),
        KeyCode::KeyX => plain(0x2D),
        KeyCode::KeyC => plain(0x2E),
        KeyCode::KeyV => plain(0x2F),
        KeyCode::KeyB => plain(0x30),
        KeyCode::KeyN => plain(0x31),
        KeyCode::KeyM => plain(0x32),
        KeyCode::Comma => plain(0x33),
        KeyCode::Period => plain(0x34),
        KeyCode::Slash => plain(0x35),
        KeyCode::ShiftRight => plain(0x36),
        KeyCode::AltLeft => plain(0x38),
        KeyCode::Space => plain(0x39),
        KeyCode::CapsLock => plain(0x3A),
        // The extra key left of Z on ISO keyboards.
        KeyCode::IntlBackslash => plain(0x56),

        // Right-hand modifiers share the left make code, told apart by E0.
        KeyCode::ControlRight => ext(0x1D),
        // AltGr: Windows layouts derive AltGr from the extended Alt, so this must be E0 38.
        KeyCode::AltRight => ext(0x38),
        KeyCode::SuperLeft => ext(0x5B),
        KeyCode::SuperRight => ext(0x5C),
        KeyCode::ContextMenu => ext(0x5D),

        // Function keys. F11/F12 and F13+ were added after the original XT range.
        KeyCode::F1 => plain(0x3B),
        KeyCode::F2 => plain(0x3C),
        KeyCode::F3 => plain(0x3D),
        KeyCode::F4 => plain(0x3E),
        KeyCode::F5 => plain(0x3F),
        KeyCode::F6 => plain(0x40),
        KeyCode::F7 => plain(0x41),
        KeyCode::F8 => plain(0x42),
        KeyCode::F9 => plain(0x43),
        KeyCode::F10 => plain(0x44),
        KeyCode::F11 => plain(0x57),
        KeyCode::F12 => plain(0x58),
        KeyCode::F13 => plain(0x64),
        KeyCode::F14 => plain(0x65),
        KeyCode::F15 => plain(0x66),
        KeyCode::F16 => plain(0x67),
        KeyCode::F17 => plain(0x68),
        KeyCode::F18 => plain(0x69),
        KeyCode::F19 => plain(0x6A),
        KeyCode::F20 => plain(0x6B),
        KeyCode::F21 => plain(0x6C),
        KeyCode::F22 => plain(0x6D),
        KeyCode::F23 => plain(0x6E),
        KeyCode::F24 => plain(0x76),

        // Print Screen sends E0 2A E0 37; the E0 2A is a fake shift, E0 37 is the key itself.
        KeyCode::PrintScreen => ext(0x37),
        KeyCode::ScrollLock => plain(0x46),

        // Navigation block: the keypad's codes with E0, so NumLock does not change them.
        KeyCode::Insert => ext(0x52),
        KeyCode::Delete => ext(0x53),
        KeyCode::Home => ext(0x47),
        KeyCode::End => ext(0x4F),
        KeyCode::PageUp => ext(0x49),
        KeyCode::PageDown => ext(0x51),
        KeyCode::ArrowUp => ext(0x48),
        KeyCode::ArrowLeft => ext(0x4B),
        KeyCode::ArrowRight => ext(0x4D),
        KeyCode::ArrowDown => ext(0x50),

        // Keypad. NumLock is the plain 0x45 on the wire (Win32's internal E0 45 is a remapping
        // done after the keyboard driver, which the server does itself).
        KeyCode::NumLock => plain(0x45),
        KeyCode::NumpadDivide => ext(0x35),
        KeyCode::NumpadMultiply => plain(0x37),
        KeyCode::NumpadSubtract => plain(0x4A),
        KeyCode::NumpadAdd => plain(0x4E),
        KeyCode::NumpadEnter => ext(0x1C),
        KeyCode::Numpad7 => plain(0x47),
        KeyCode::Numpad8 => plain(0x48),
        KeyCode::Numpad9 => plain(0x49),
        KeyCode::Numpad4 => plain(0x4B),
        KeyCode::Numpad5 => plain(0x4C),
        KeyCode::Numpad6 => plain(0x4D),
        KeyCode::Numpad1 => plain(0x4F),
        KeyCode::Numpad2 => plain(0x50),
        KeyCode::Numpad3 => plain(0x51),
        KeyCode::Numpad0 => plain(0x52),
        KeyCode::NumpadDecimal => plain(0x53),
        KeyCode::NumpadEqual => plain(0x59),
        // The Brazilian keypad's extra separator key.
        KeyCode::NumpadComma => plain(0x7E),

        // Japanese and Korean keys.
        KeyCode::IntlRo => plain(0x73),
        KeyCode::IntlYen => plain(0x7D),
        KeyCode::KanaMode => plain(0x70),
        KeyCode::Convert => plain(0x79),
        KeyCode::NonConvert => plain(0x7B),
        // Hangul/Hanja keys send make-only F2/F1; RDP wants them without the break bit.
        KeyCode::Lang1 => plain(0x72),
        KeyCode::Lang2 => plain(0x71),
        KeyCode::Lang3 => plain(0x78),
        KeyCode::Lang4 => plain(0x77),

        // Media, browser, launcher and power keys all live in the E0 page.
        KeyCode::MediaTrackPrevious => ext(0x10),
        KeyCode::MediaTrackNext => ext(0x19),
        KeyCode::AudioVolumeMute => ext(0x20),
        KeyCode::LaunchApp2 => ext(0x21),
        KeyCode::MediaPlayPause => ext(0x22),
        KeyCode::MediaStop => ext(0x24),
        KeyCode::AudioVolumeDown => ext(0x2E),
        KeyCode::AudioVolumeUp => ext(0x30),
        KeyCode::BrowserHome => ext(0x32),
        KeyCode::Power => ext(0x5E),
        KeyCode::Sleep => ext(0x5F),
        KeyCode::WakeUp => ext(0x63),
        KeyCode::BrowserSearch => ext(0x65),
        KeyCode::BrowserFavorites => ext(0x66),
        KeyCode::BrowserRefresh => ext(0x67),
        KeyCode::BrowserStop => ext(0x68),
        KeyCode::BrowserForward => ext(0x69),
        KeyCode::BrowserBack => ext(0x6A),
        KeyCode::LaunchApp1 => ext(0x6B),
        KeyCode::LaunchMail => ext(0x6C),
        KeyCode::MediaSelect => ext(0x6D),

        // E1 sequence, see the doc comment.
        KeyCode::Pause => return None,
        // Lang5 (Zenkaku/Hankaku) is 0x76 in the spec, the same code as F24; Windows JP
        // keyboards send that key as 0x29, which winit already reports as Backquote.
        KeyCode::Lang5 => return None,
        // Handled inside the keyboard; never reach the host as keys.
        KeyCode::Fn | KeyCode::FnLock => return None,
        // Legacy names for positions already covered (Super, Lang3/Lang4) or with no set-1 code.
        KeyCode::Meta | KeyCode::Hyper | KeyCode::Hiragana | KeyCode::Katakana => return None,
        // No set-1 code in the specification.
        KeyCode::Help
        | KeyCode::Eject
        | KeyCode::Turbo
        | KeyCode::Abort
        | KeyCode::Resume
        | KeyCode::Suspend
        | KeyCode::Again
        | KeyCode::Copy
        | KeyCode::Cut
        | KeyCode::Find
        | KeyCode::Open
        | KeyCode::Paste
        | KeyCode::Props
        | KeyCode::Select
        | KeyCode::Undo => return None,
        // Phone and calculator keypad keys with no PC keyboard counterpart.
        KeyCode::NumpadBackspace
        | KeyCode::NumpadClear
        | KeyCode::NumpadClearEntry
        | KeyCode::NumpadHash
        | KeyCode::NumpadMemoryAdd
        | KeyCode::NumpadMemoryClear
        | KeyCode::NumpadMemoryRecall
        | KeyCode::NumpadMemoryStore
        | KeyCode::NumpadMemorySubtract
        | KeyCode::NumpadParenLeft
        | KeyCode::NumpadParenRight
        | KeyCode::NumpadStar => return None,
        // Set 1 stops at F24.
        KeyCode::F25
        | KeyCode::F26
        | KeyCode::F27
        | KeyCode::F28
        | KeyCode::F29
        | KeyCode::F30
        | KeyCode::F31
        | KeyCode::F32
        | KeyCode::F33
        | KeyCode::F34
        | KeyCode::F35 => return None,
        // KeyCode is non-exhaustive: keys added in later winit versions stay unmapped until
        // someone looks them up.
        _ => return None,
    };
    Some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Every KeyCode the table maps; keep in step with `scancode`.
    const MAPPED: &[KeyCode] = &[
        KeyCode::Escape,
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
        KeyCode::Digit7,
        KeyCode::Digit8,
        KeyCode::Digit9,
        KeyCode::Digit0,
        KeyCode::Minus,
        KeyCode::Equal,
        KeyCode::Backspace,
        KeyCode::Tab,
        KeyCode::KeyQ,
        KeyCode::KeyW,
        KeyCode::KeyE,
        KeyCode::KeyR,
        KeyCode::KeyT,
        KeyCode::KeyY,
        KeyCode::KeyU,
        KeyCode::KeyI,
        KeyCode::KeyO,
        KeyCode::KeyP,
        KeyCode::BracketLeft,
        KeyCode::BracketRight,
        KeyCode::Enter,
        KeyCode::ControlLeft,
        KeyCode::KeyA,
        KeyCode::KeyS,
        KeyCode::KeyD,
        KeyCode::KeyF,
        KeyCode::KeyG,
        KeyCode::KeyH,
        KeyCode::KeyJ,
        KeyCode::KeyK,
        KeyCode::KeyL,
        KeyCode::Semicolon,
        KeyCode::Quote,
        KeyCode::Backquote,
        KeyCode::ShiftLeft,
        KeyCode::Backslash,
        KeyCode::KeyZ,
        KeyCode::KeyX,
        KeyCode::KeyC,
        KeyCode::KeyV,
        KeyCode::KeyB,
        KeyCode::KeyN,
        KeyCode::KeyM,
        KeyCode::Comma,
        KeyCode::Period,
        KeyCode::Slash,
        KeyCode::ShiftRight,
        KeyCode::AltLeft,
        KeyCode::Space,
        KeyCode::CapsLock,
        KeyCode::IntlBackslash,
        KeyCode::ControlRight,
        KeyCode::AltRight,
        KeyCode::SuperLeft,
        KeyCode::SuperRight,
        KeyCode::ContextMenu,
        KeyCode::F1,
        KeyCode::F2,
        KeyCode::F3,
        KeyCode::F4,
        KeyCode::F5,
        KeyCode::F6,
        KeyCode::F7,
        KeyCode::F8,
        KeyCode::F9,
        KeyCode::F10,
        KeyCode::F11,
        KeyCode::F12,
        KeyCode::F13,
        KeyCode::F14,
        KeyCode::F15,
        KeyCode::F16,
        KeyCode::F17,
        KeyCode::F18,
        KeyCode::F19,
        KeyCode::F20,
        KeyCode::F21,
        KeyCode::F22,
        KeyCode::F23,
        KeyCode::F24,
        KeyCode::PrintScreen,
        KeyCode::ScrollLock,
        KeyCode::Insert,
        KeyCode::Delete,
        KeyCode::Home,
        KeyCode::End,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::ArrowUp,
        KeyCode::ArrowLeft,
        KeyCode::ArrowRight,
        KeyCode::ArrowDown,
        KeyCode::NumLock,
        KeyCode::NumpadDivide,
        KeyCode::NumpadMultiply,
        KeyCode::NumpadSubtract,
        KeyCode::NumpadAdd,
        KeyCode::NumpadEnter,
        KeyCode::Numpad7,
        KeyCode::Numpad8,
        KeyCode::Numpad9,
        KeyCode::Numpad4,
        KeyCode::Numpad5,
        KeyCode::Numpad6,
        KeyCode::Numpad1,
        KeyCode::Numpad2,
        KeyCode::Numpad3,
        KeyCode::Numpad0,
        KeyCode::NumpadDecimal,
        KeyCode::NumpadEqual,
        KeyCode::NumpadComma,
        KeyCode::IntlRo,
        KeyCode::IntlYen,
        KeyCode::KanaMode,
        KeyCode::Convert,
        KeyCode::NonConvert,
        KeyCode::Lang1,
        KeyCode::Lang2,
        KeyCode::Lang3,
        KeyCode::Lang4,
        KeyCode::MediaTrackPrevious,
        KeyCode::MediaTrackNext,
        KeyCode::AudioVolumeMute,
        KeyCode::LaunchApp2,
        KeyCode::MediaPlayPause,
        KeyCode::MediaStop,
        KeyCode::AudioVolumeDown,
        KeyCode::AudioVolumeUp,
        KeyCode::BrowserHome,
        KeyCode::Power,
        KeyCode::Sleep,
        KeyCode::WakeUp,
        KeyCode::BrowserSearch,
        KeyCode::BrowserFavorites,
        KeyCode::BrowserRefresh,
        KeyCode::BrowserStop,
        KeyCode::BrowserForward,
        KeyCode::BrowserBack,
        KeyCode::LaunchApp1,
        KeyCode::LaunchMail,
        KeyCode::MediaSelect,
    ];

    #[test]
    fn letter_is_plain() {
        assert_eq!(scancode(KeyCode::KeyA), Some(plain(0x1E)));
    }

    #[test]
    fn arrow_is_extended() {
        assert_eq!(scancode(KeyCode::ArrowLeft), Some(ext(0x4B)));
    }

    #[test]
    fn altgr_is_extended_alt() {
        assert_eq!(scancode(KeyCode::AltRight), Some(ext(0x38)));
        assert_eq!(scancode(KeyCode::AltLeft), Some(plain(0x38)));
    }

    #[test]
    fn home_is_extended() {
        assert_eq!(scancode(KeyCode::Home), Some(ext(0x47)));
    }

    #[test]
    fn numpad_enter_is_extended() {
        assert_eq!(scancode(KeyCode::NumpadEnter), Some(ext(0x1C)));
    }

    #[test]
    fn unsendable_keys_are_none() {
        for key in [KeyCode::Pause, KeyCode::Fn, KeyCode::F25, KeyCode::Lang5] {
            assert_eq!(scancode(key), None, "{key:?}");
        }
    }

    #[test]
    fn every_mapped_key_is_a_make_code() {
        for &key in MAPPED {
            let sc = scancode(key).unwrap_or_else(|| panic!("{key:?} is listed but unmapped"));
            // The top bit marks a break code; RDP carries release in its own flag.
            assert!(sc.code != 0 && sc.code < 0x80, "{key:?} → {sc:?}");
        }
    }

    #[test]
    fn no_two_keys_share_a_scancode() {
        let mut seen: HashMap<Scancode, KeyCode> = HashMap::new();
        for &key in MAPPED {
            let sc = scancode(key).unwrap();
            if let Some(other) = seen.insert(sc, key) {
                panic!("{other:?} and {key:?} both map to {sc:?}");
            }
        }
    }
}
