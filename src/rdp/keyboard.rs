//! The keyboard as the server must know it, as protocol values: its layout, told at connection so
//! the server reads the physical keys ecsrdp sends (scancodes, by position) with the user's layout
//! (the key labelled Z on a German keyboard types `z` in the session, not `y`), and its lock keys,
//! told whenever the window gains focus. Reading them off the local system is the window's job
//! ([`crate::window`] asks X11); here they are data.
//!
//! RDP names layouts by Windows keyboard layout IDs (KLIDs, MS-RDPBCGR 2.2.1.3.2); X11 and
//! Wayland by XKB layout and variant names. The table below is the common part of both worlds,
//! written out by hand because no crate keeps it (FreeRDP's `xkb_layout_ids.c` is the reference
//! to check it against).

/// A layout as RDP names it: a Windows keyboard layout ID, e.g. 0x407 for German.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Klid(pub u32);

/// XKB layout (and variant) → KLID. `None` as variant: any variant not listed.
const TABLE: &[(&str, Option<&str>, u32)] = &[
    ("us", Some("intl"), 0x0002_0409),
    ("us", Some("alt-intl"), 0x0002_0409),
    ("us", Some("dvorak"), 0x0001_0409),
    ("us", None, 0x0409),
    ("gb", None, 0x0809),
    ("ie", None, 0x1809),
    ("de", None, 0x0407),
    ("at", None, 0x0407),
    ("ch", Some("fr"), 0x100C),
    ("ch", None, 0x0807),
    ("fr", None, 0x040C),
    ("be", None, 0x080C),
    ("ca", Some("multix"), 0x0001_1009),
    ("ca", None, 0x1009),
    ("es", None, 0x040A),
    ("latam", None, 0x080A),
    ("it", None, 0x0410),
    ("pt", None, 0x0816),
    ("br", None, 0x0416),
    ("nl", None, 0x0413),
    ("se", None, 0x041D),
    ("no", None, 0x0414),
    ("dk", None, 0x0406),
    ("fi", None, 0x040B),
    ("is", None, 0x040F),
    ("pl", None, 0x0415),
    ("cz", None, 0x0405),
    ("sk", None, 0x041B),
    ("hu", None, 0x040E),
    ("si", None, 0x0424),
    ("hr", None, 0x041A),
    ("ro", None, 0x0418),
    ("bg", None, 0x0402),
    ("ru", None, 0x0419),
    ("ua", None, 0x0422),
    ("gr", None, 0x0408),
    ("tr", None, 0x041F),
    ("il", None, 0x040D),
    ("ee", None, 0x0425),
    ("lv", None, 0x0426),
    ("lt", None, 0x0427),
    ("jp", None, 0x0411),
    ("kr", None, 0x0412),
];

impl Klid {
    /// The KLID of an XKB layout, e.g. `de` or `ch` with variant `fr`.
    pub fn from_xkb(layout: &str, variant: &str) -> Option<Klid> {
        TABLE
            .iter()
            .find(|(l, v, _)| *l == layout && v.is_none_or(|v| v == variant))
            .map(|&(.., klid)| Klid(klid))
    }

    /// What `--keyboard-layout` takes: an XKB name (`de`, `ch(fr)`) or a KLID in hex (`0x407`,
    /// `00000407`).
    pub fn parse(text: &str) -> Result<Klid, String> {
        let text = text.trim();
        let unknown = || {
            format!(
                "`{text}` is not a keyboard layout ecsrdp knows: give an XKB name such as `de`, \
                 `fr`, `gb` or `ch(fr)`, or a Windows keyboard layout ID in hex such as 0x407"
            )
        };
        // Hex only with its prefix or at full width: `de` and `be` are names, not numbers.
        let hex = text
            .strip_prefix("0x")
            .or_else(|| (text.len() == 8).then_some(text));
        if let Some(hex) = hex {
            return u32::from_str_radix(hex, 16)
                .ok()
                .filter(|&klid| klid != 0)
                .map(Klid)
                .ok_or_else(unknown);
        }
        let (layout, variant) = match text.split_once('(') {
            Some((layout, rest)) => (layout, rest.trim_end_matches(')')),
            None => (text, ""),
        };
        Klid::from_xkb(layout, variant).ok_or_else(unknown)
    }
}

/// Which lock keys are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Locks {
    pub caps: bool,
    pub num: bool,
    pub scroll: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xkb_names_map_to_windows_layouts() {
        assert_eq!(Klid::from_xkb("de", ""), Some(Klid(0x407)));
        assert_eq!(Klid::from_xkb("de", "nodeadkeys"), Some(Klid(0x407)));
        assert_eq!(Klid::from_xkb("ch", "fr"), Some(Klid(0x100C)));
        assert_eq!(Klid::from_xkb("ch", ""), Some(Klid(0x807)));
        assert_eq!(Klid::from_xkb("us", "dvorak"), Some(Klid(0x10409)));
        assert_eq!(Klid::from_xkb("us", ""), Some(Klid(0x409)));
        assert_eq!(Klid::from_xkb("xx", ""), None);
    }

    #[test]
    fn the_option_takes_names_and_hex_ids() {
        assert_eq!(Klid::parse("fr"), Ok(Klid(0x40C)));
        assert_eq!(Klid::parse("de"), Ok(Klid(0x407)));
        assert_eq!(Klid::parse("be"), Ok(Klid(0x80C)));
        assert_eq!(Klid::parse("ch(fr)"), Ok(Klid(0x100C)));
        assert_eq!(Klid::parse("0x407"), Ok(Klid(0x407)));
        assert_eq!(Klid::parse("00000807"), Ok(Klid(0x807)));
        assert!(Klid::parse("klingon")
            .unwrap_err()
            .contains("not a keyboard layout"));
        assert!(Klid::parse("").is_err());
    }
}
