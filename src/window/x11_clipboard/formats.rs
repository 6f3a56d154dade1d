//! What crosses between X11 selection targets and CLIPRDR formats, and the conversions between
//! their bytes: text as UTF-8 here and UTF-16 (`CF_UNICODETEXT`) there, images as PNG here and
//! device-independent bitmaps there. Pure: no X connection.

use ironrdp_cliprdr::pdu::{ClipboardFormat, ClipboardFormatId, FormatDataResponse};
use ironrdp_cliprdr_format::bitmap;

/// The most one transfer carries either way; a larger copy is refused, never truncated.
pub const MAX_TRANSFER: usize = 100 * 1024 * 1024;

/// What a local selection (or a remote copy) can be, as far as ecsrdp shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Text,
    Image,
}

/// How a target's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// `STRING`: ISO 8859-1, by ICCCM.
    Latin1,
    Png,
}

impl Encoding {
    pub fn kind(self) -> Kind {
        match self {
            Encoding::Utf8 | Encoding::Latin1 => Kind::Text,
            Encoding::Png => Kind::Image,
        }
    }
}

/// The target names ecsrdp reads and serves, best first within a kind.
pub const TARGETS: [(&str, Encoding); 6] = [
    ("UTF8_STRING", Encoding::Utf8),
    ("text/plain;charset=utf-8", Encoding::Utf8),
    ("TEXT", Encoding::Utf8),
    ("text/plain", Encoding::Utf8),
    ("STRING", Encoding::Latin1),
    ("image/png", Encoding::Png),
];

/// The formats to announce to the server for what a local owner offers.
pub fn announced(kinds: &[Kind]) -> Vec<ClipboardFormat> {
    let mut formats = Vec::new();
    if kinds.contains(&Kind::Text) {
        formats.push(ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT));
    }
    if kinds.contains(&Kind::Image) {
        formats.push(ClipboardFormat::new(ClipboardFormatId::CF_DIB));
        formats.push(ClipboardFormat::new(ClipboardFormatId::CF_DIBV5));
    }
    formats
}

/// The kind a CLIPRDR format carries, if ecsrdp can render it locally.
pub fn kind_of(format: ClipboardFormatId) -> Option<Kind> {
    match format {
        ClipboardFormatId::CF_UNICODETEXT => Some(Kind::Text),
        ClipboardFormatId::CF_DIB | ClipboardFormatId::CF_DIBV5 => Some(Kind::Image),
        _ => None,
    }
}

/// The server's format to ask for a kind, from those it offered: for images the V5 bitmap,
/// which keeps alpha.
pub fn remote_format(kind: Kind, offered: &[ClipboardFormatId]) -> Option<ClipboardFormatId> {
    let wanted: &[ClipboardFormatId] = match kind {
        Kind::Text => &[ClipboardFormatId::CF_UNICODETEXT],
        Kind::Image => &[ClipboardFormatId::CF_DIBV5, ClipboardFormatId::CF_DIB],
    };
    wanted.iter().copied().find(|id| offered.contains(id))
}

/// The server's data for `format`, as local bytes (UTF-8 text, or PNG).
pub fn from_remote(format: ClipboardFormatId, data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() > MAX_TRANSFER {
        return Err("the remote clipboard is larger than 100 MiB".into());
    }
    match format {
        ClipboardFormatId::CF_UNICODETEXT => FormatDataResponse::new_data(data)
            .to_unicode_string()
            .map(String::into_bytes)
            .map_err(|e| e.to_string()),
        ClipboardFormatId::CF_DIB => bitmap::dib_to_png(data).map_err(|e| e.to_string()),
        ClipboardFormatId::CF_DIBV5 => bitmap::dibv5_to_png(data).map_err(|e| e.to_string()),
        other => Err(format!("format {other:?} is not shared")),
    }
}

/// Local bytes read in `encoding`, as the server's `format`.
pub fn to_remote(
    format: ClipboardFormatId,
    encoding: Encoding,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    match (format, encoding) {
        (ClipboardFormatId::CF_UNICODETEXT, Encoding::Utf8 | Encoding::Latin1) => {
            let text = match encoding {
                Encoding::Latin1 => data.iter().map(|&b| char::from(b)).collect(),
                _ => String::from_utf8_lossy(data).into_owned(),
            };
            if text.encode_utf16().count() >= MAX_TRANSFER / 2 {
                return Err("the local clipboard's text is larger than 100 MiB".into());
            }
            Ok(FormatDataResponse::new_unicode_string(&text)
                .data()
                .to_vec())
        }
        (ClipboardFormatId::CF_DIB, Encoding::Png) => {
            bitmap::png_to_cf_dib(data).map_err(|e| e.to_string())
        }
        (ClipboardFormatId::CF_DIBV5, Encoding::Png) => {
            bitmap::png_to_cf_dibv5(data).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "format {format:?} cannot be made from {encoding:?}"
        )),
    }
}

/// UTF-8 text as `STRING` (ISO 8859-1) for an old program: what Latin-1 lacks becomes `?`.
pub fn latin1(utf8: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(utf8)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_survives_the_round_trip_through_utf16() {
        let text = "naïve 日本語 😀\nline two";
        let remote = to_remote(
            ClipboardFormatId::CF_UNICODETEXT,
            Encoding::Utf8,
            text.as_bytes(),
        )
        .unwrap();
        assert_eq!(remote.len(), (text.encode_utf16().count() + 1) * 2);
        let back = from_remote(ClipboardFormatId::CF_UNICODETEXT, &remote).unwrap();
        assert_eq!(back, text.as_bytes());
    }

    #[test]
    fn latin1_is_read_and_written_as_iso_8859_1() {
        let remote = to_remote(
            ClipboardFormatId::CF_UNICODETEXT,
            Encoding::Latin1,
            b"caf\xe9",
        )
        .unwrap();
        let back = from_remote(ClipboardFormatId::CF_UNICODETEXT, &remote).unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), "café");
        assert_eq!(latin1("café 日".as_bytes()), b"caf\xe9 ?");
    }

    #[test]
    fn images_are_offered_as_both_bitmaps_and_asked_for_as_v5() {
        let formats = announced(&[Kind::Image]);
        let ids: Vec<_> = formats.iter().map(|f| f.id()).collect();
        assert_eq!(
            ids,
            [ClipboardFormatId::CF_DIB, ClipboardFormatId::CF_DIBV5]
        );
        assert_eq!(
            remote_format(Kind::Image, &ids),
            Some(ClipboardFormatId::CF_DIBV5)
        );
        assert_eq!(remote_format(Kind::Text, &ids), None);
        assert!(announced(&[]).is_empty());
    }

    #[test]
    fn a_bad_bitmap_is_an_error_not_a_panic() {
        assert!(from_remote(ClipboardFormatId::CF_DIB, &[1, 2, 3]).is_err());
        assert!(to_remote(ClipboardFormatId::CF_DIB, Encoding::Png, b"not a png").is_err());
    }
}
