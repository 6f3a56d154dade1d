//! The H.264 decoders ecsrdp can use, chosen at run time: the system's FFmpeg, OpenH264 built
//! into the binary (the `openh264-source` build feature, on by default), or Cisco's prebuilt
//! OpenH264 library, which its licence lets a user download and ecsrdp load. Every one gives the
//! same 4:2:0 planes (H.264 decoding is exact: conforming decoders agree bit for bit, which
//! `tests/replay.rs` checks on the recorded streams), so the choice is speed and licence only.

use std::path::PathBuf;

use openh264::decoder::DecoderConfig;
use openh264::formats::YUVSource as _;
use openh264::OpenH264API;

use super::ffmpeg;
use super::yuv444::View;

/// Which decoder to use (`--h264-decoder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DecoderChoice {
    /// FFmpeg when the machine has it, else OpenH264 (built in, else Cisco's library).
    #[default]
    Auto,
    Ffmpeg,
    /// OpenH264 built into the binary.
    OpenH264,
    /// Cisco's prebuilt `libopenh264` ([`cisco_library`]), checked against its published hash.
    Cisco,
}

/// Where Cisco's OpenH264 library is looked for: `ECSRDP_OPENH264_LIBRARY`, else the file
/// Cisco publishes for this platform (2.6.0) in ecsrdp's data folder.
pub fn cisco_library() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ECSRDP_OPENH264_LIBRARY") {
        return Some(PathBuf::from(path));
    }
    let name = if cfg!(target_os = "macos") {
        if cfg!(target_arch = "aarch64") {
            "libopenh264-2.6.0-mac-arm64.dylib"
        } else {
            "libopenh264-2.6.0-mac-x64.dylib"
        }
    } else if cfg!(target_arch = "aarch64") {
        "libopenh264-2.6.0-linux-arm64.8.so"
    } else {
        "libopenh264-2.6.0-linux64.8.so"
    };
    let dirs = directories::ProjectDirs::from("", "", "ecsrdp")?;
    Some(dirs.data_dir().join(name))
}

/// One stream's decoder.
pub enum Decoder {
    Ffmpeg(ffmpeg::Decoder),
    OpenH264(Box<openh264::decoder::Decoder>),
}

impl Decoder {
    /// Opens the chosen decoder; for [`DecoderChoice::Auto`] the first that opens. Returns its
    /// name and which it is; the error names each one tried and why it did not open.
    pub fn open(choice: DecoderChoice) -> Result<(Decoder, String, DecoderChoice), String> {
        let order: &[DecoderChoice] = match choice {
            DecoderChoice::Auto => &[
                DecoderChoice::Ffmpeg,
                DecoderChoice::OpenH264,
                DecoderChoice::Cisco,
            ],
            _ => std::slice::from_ref(&choice),
        };
        let mut failures = Vec::new();
        for &one in order {
            match Decoder::open_one(one) {
                Ok((decoder, name)) => return Ok((decoder, name, one)),
                Err(why) => failures.push(why),
            }
        }
        Err(failures.join("; "))
    }

    fn open_one(choice: DecoderChoice) -> Result<(Decoder, String), String> {
        match choice {
            DecoderChoice::Auto | DecoderChoice::Ffmpeg => {
                let decoder = ffmpeg::Decoder::new()?;
                let name = decoder.name();
                Ok((Decoder::Ffmpeg(decoder), name))
            }
            DecoderChoice::OpenH264 => {
                let api = built_in_openh264()?;
                let decoder =
                    openh264::decoder::Decoder::with_api_config(api, DecoderConfig::new())
                        .map_err(|e| format!("OpenH264 did not start: {e}"))?;
                Ok((
                    Decoder::OpenH264(Box::new(decoder)),
                    "OpenH264 (built in)".into(),
                ))
            }
            DecoderChoice::Cisco => {
                let path = cisco_library().ok_or("no data folder for Cisco's OpenH264")?;
                Decoder::cisco_at(&path)
            }
        }
    }

    /// Cisco's library at `path`, checked against the hashes of Cisco's own releases, so that
    /// a library whose interface differs from the one this build was written for is never
    /// called.
    fn cisco_at(path: &std::path::Path) -> Result<(Decoder, String), String> {
        if !path.exists() {
            return Err(format!("no Cisco OpenH264 library at {}", path.display()));
        }
        let api = OpenH264API::from_blob_path(path).map_err(|e| {
            format!(
                "{} is not a Cisco OpenH264 2.6.0 release ({e})",
                path.display()
            )
        })?;
        let decoder = openh264::decoder::Decoder::with_api_config(api, DecoderConfig::new())
            .map_err(|e| format!("Cisco's OpenH264 did not start: {e}"))?;
        Ok((
            Decoder::OpenH264(Box::new(decoder)),
            format!("Cisco's OpenH264 ({})", path.display()),
        ))
    }

    /// Decodes one Annex B access unit; `None` when it completes no picture.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<Decoded<'_>>, String> {
        match self {
            Decoder::Ffmpeg(decoder) => Ok(decoder.decode(data)?.map(Decoded::Ffmpeg)),
            Decoder::OpenH264(decoder) => {
                let picture = decoder.decode(data).map_err(|e| e.to_string())?;
                Ok(picture.map(Decoded::OpenH264))
            }
        }
    }
}

/// A decoded picture, valid until its decoder decodes the next.
pub enum Decoded<'d> {
    Ffmpeg(View<'d>),
    OpenH264(openh264::decoder::DecodedYUV<'d>),
}

impl Decoded<'_> {
    /// Its planes, where the decoder left them.
    pub fn view(&self) -> View<'_> {
        match self {
            Decoded::Ffmpeg(view) => *view,
            Decoded::OpenH264(picture) => {
                let (width, height) = picture.dimensions();
                let (y_stride, chroma_stride, _) = picture.strides();
                View {
                    y: picture.y(),
                    u: picture.u(),
                    v: picture.v(),
                    y_stride,
                    chroma_stride,
                    width,
                    height,
                }
            }
        }
    }
}

#[cfg(feature = "openh264-source")]
fn built_in_openh264() -> Result<OpenH264API, String> {
    Ok(OpenH264API::from_source())
}

#[cfg(not(feature = "openh264-source"))]
fn built_in_openh264() -> Result<OpenH264API, String> {
    Err("this build has no OpenH264 built in (the openh264-source feature)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_library_cisco_published_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libopenh264-2.6.0-linux64.8.so");
        let missing = Decoder::cisco_at(&path).err().unwrap();
        assert!(
            missing.starts_with("no Cisco OpenH264 library at"),
            "{missing}"
        );
        // Anything else, say a library built elsewhere, is never called.
        std::fs::write(&path, b"\x7fELF not Cisco's").unwrap();
        let refused = Decoder::cisco_at(&path).err().unwrap();
        assert!(
            refused.contains("is not a Cisco OpenH264 2.6.0 release"),
            "{refused}"
        );
    }

    #[test]
    fn auto_names_every_decoder_it_tried() {
        // Whatever this machine has, `Auto` either opens one or says why each did not.
        match Decoder::open(DecoderChoice::Auto) {
            Ok((_, name, choice)) => assert!(choice != DecoderChoice::Auto && !name.is_empty()),
            Err(why) => assert_eq!(why.matches("; ").count(), 2, "{why}"),
        }
    }
}
