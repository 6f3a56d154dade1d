//! The local keyboard, read off the system: its layout (for the server to apply) and its lock
//! keys (for the server to match when the window gains focus). X11's XKB state, which XWayland
//! also has; `None` where there is no X server to ask.

use crate::rdp::{Klid, Locks};

/// The first layout of the local keyboard, when the system says: the X server's XKB rules
/// (which XWayland also has, following the Wayland compositor's keymap), else
/// `XKB_DEFAULT_LAYOUT` as Wayland compositors read it.
pub fn local() -> Option<(String, Klid)> {
    let (layout, variant) = x11_layout().or_else(|| {
        let layout = std::env::var("XKB_DEFAULT_LAYOUT").ok()?;
        let variant = std::env::var("XKB_DEFAULT_VARIANT").unwrap_or_default();
        Some((layout, variant))
    })?;
    // Several groups (`us,de`): the first is the one in use when the window opens.
    let layout = layout.split(',').next()?.trim().to_owned();
    let variant = variant.split(',').next().unwrap_or("").trim().to_owned();
    let klid = Klid::from_xkb(&layout, &variant)?;
    let name = if variant.is_empty() {
        layout
    } else {
        format!("{layout}({variant})")
    };
    Some((name, klid))
}

/// The layout and variant in the X server's `_XKB_RULES_NAMES` root property (what
/// `setxkbmap -query` shows): rules, model, layout, variant, options, NUL-separated.
#[cfg(all(unix, not(target_os = "macos")))]
fn x11_layout() -> Option<(String, String)> {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _};

    std::env::var_os("DISPLAY")?;
    let (connection, screen) = x11rb::connect(None).ok()?;
    let root = connection.setup().roots.get(screen)?.root;
    let atom = connection
        .intern_atom(true, b"_XKB_RULES_NAMES")
        .ok()?
        .reply()
        .ok()?
        .atom;
    let reply = connection
        .get_property(false, root, atom, AtomEnum::STRING, 0, 1024)
        .ok()?
        .reply()
        .ok()?;
    let text = String::from_utf8_lossy(&reply.value).into_owned();
    let mut fields = text.split('\0');
    let layout = fields.nth(2)?.to_owned();
    let variant = fields.next().unwrap_or("").to_owned();
    (!layout.is_empty()).then_some((layout, variant))
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn x11_layout() -> Option<(String, String)> {
    None
}

/// The lock keys of the X server's core keyboard (XWayland's too), read at each focus-in over
/// one X11 connection kept for the window's life: a new connection each time would cost a
/// handshake and round trips on the UI thread, the more on a remote display.
#[cfg(all(unix, not(target_os = "macos")))]
pub struct LockKeys {
    connection: x11rb::rust_connection::RustConnection,
    /// The indicators' names, as XKB's keymaps give them.
    num: u32,
    scroll: u32,
}

#[cfg(all(unix, not(target_os = "macos")))]
impl LockKeys {
    /// `None` without X11 or XKB: winit does not report lock states.
    pub fn open() -> Option<LockKeys> {
        use x11rb::protocol::xkb::ConnectionExt as _;
        use x11rb::protocol::xproto::ConnectionExt as _;

        std::env::var_os("DISPLAY")?;
        let (connection, _) = x11rb::connect(None).ok()?;
        connection
            .xkb_use_extension(1, 0)
            .ok()?
            .reply()
            .ok()
            .filter(|r| r.supported)?;
        let atom = |name: &[u8]| Some(connection.intern_atom(false, name).ok()?.reply().ok()?.atom);
        let (num, scroll) = (atom(b"Num Lock")?, atom(b"Scroll Lock")?);
        Some(LockKeys {
            connection,
            num,
            scroll,
        })
    }

    /// Caps Lock is the Lock modifier; Num Lock and Scroll Lock are read from their named
    /// indicators (the keymap says which modifier Num Lock sets: Mod2 only by custom), with Mod2
    /// when the keymap names no Num Lock indicator. One round trip: the requests go together.
    pub fn read(&self) -> Option<Locks> {
        use x11rb::protocol::xkb::{self, ConnectionExt as _};
        use x11rb::protocol::xproto::ModMask;

        let core = xkb::DeviceSpec::from(u16::from(xkb::ID::USE_CORE_KBD));
        let indicator = |atom| {
            self.connection.xkb_get_named_indicator(
                core,
                xkb::LedClass::KBD_FEEDBACK_CLASS,
                u16::from(xkb::ID::DFLT_XI_ID),
                atom,
            )
        };
        let state = self.connection.xkb_get_state(core).ok()?;
        let (num, scroll) = (indicator(self.num).ok()?, indicator(self.scroll).ok()?);
        let locked = u16::from(state.reply().ok()?.locked_mods);
        let num = num.reply().ok()?;
        let scroll = scroll.reply().ok()?;
        Some(Locks {
            caps: locked & u16::from(ModMask::LOCK) != 0,
            num: if num.found {
                num.on
            } else {
                locked & u16::from(ModMask::M2) != 0
            },
            scroll: scroll.found && scroll.on,
        })
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
pub struct LockKeys;

#[cfg(not(all(unix, not(target_os = "macos"))))]
impl LockKeys {
    pub fn open() -> Option<LockKeys> {
        None
    }

    pub fn read(&self) -> Option<Locks> {
        None
    }
}
