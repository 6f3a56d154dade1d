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

/// The lock keys of the X server's core keyboard (XWayland's too), from XKB: Caps Lock is the
/// Lock modifier, Num Lock the modifier the keymap gives `Num_Lock` (Mod2 in every common
/// keymap), Scroll Lock its indicator. `None` without X11: winit does not report lock states.
#[cfg(all(unix, not(target_os = "macos")))]
pub fn locks() -> Option<Locks> {
    use x11rb::protocol::xkb::{self, ConnectionExt as _};
    use x11rb::protocol::xproto::ModMask;

    std::env::var_os("DISPLAY")?;
    let (connection, _) = x11rb::connect(None).ok()?;
    connection
        .xkb_use_extension(1, 0)
        .ok()?
        .reply()
        .ok()
        .filter(|r| r.supported)?;
    let core = xkb::DeviceSpec::from(u16::from(xkb::ID::USE_CORE_KBD));
    let state = connection.xkb_get_state(core).ok()?.reply().ok()?;
    let locked = u16::from(state.locked_mods);
    let indicators = connection
        .xkb_get_indicator_state(core)
        .ok()?
        .reply()
        .ok()?;
    Some(Locks {
        caps: locked & u16::from(ModMask::LOCK) != 0,
        num: locked & u16::from(ModMask::M2) != 0,
        // The third indicator is Scroll Lock's in every keymap XKB ships.
        scroll: indicators.state & 0b100 != 0,
    })
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
pub fn locks() -> Option<Locks> {
    None
}
