//! The connector configuration: what we announce to the server (MS-RDPBCGR 2.2.1.3, client
//! data blocks, and 2.2.7, capability sets). Pure.

use ironrdp_connector::{BitmapConfig, Config, Credentials, DesktopSize};
use ironrdp_pdu::rdp::capability_sets::{
    client_codecs_capabilities, BitmapCodecs, Codec, CodecProperty, MajorPlatformType,
};
use ironrdp_pdu::rdp::client_info::{PerformanceFlags, TimezoneInfo};

use super::channels::clipboard::Clipboard;
use super::connect::trust::TrustKey;
use crate::keys::Password;

/// Where and as whom to connect; the password stays redacted in `Debug`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub domain: Option<String>,
    pub password: Password,
    /// What the server's certificate is remembered under.
    pub trust_key: TrustKey,
    /// What the user calls it, for the window title and messages.
    pub title: String,
}

/// Which security protocols (MS-RDPBCGR 5.4.5) the client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// CredSSP only: the server proves it can check the password before it receives it, and
    /// we never offer TLS alone, so nobody can talk us down to it.
    Nla,
    /// NLA when the server offers it, else TLS alone: the password then travels in the Client
    /// Info PDU (MS-RDPBCGR 2.2.1.11) inside the TLS session, and the user is told.
    NlaOrTls,
}

/// Which ways of sending pixels the client offers (MS-RDPBCGR 2.2.7.2.10, MS-RDPEGFX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codecs {
    /// The graphics pipeline with H.264 (AVC420/AVC444), progressive RemoteFX, ClearCodec and
    /// planar, what Windows Server prefers; RemoteFX and bitmaps for a server without it.
    H264,
    /// No graphics pipeline: RemoteFX surface commands, else bitmaps.
    RemoteFx,
    /// Only lossless bitmaps: every pixel exactly as the server has it, more bandwidth.
    Lossless,
}

/// Choices that shape the connection, beyond where and who.
#[derive(Debug)]
pub struct ConnectOptions {
    pub security: Security,
    pub desktop: (u16, u16),
    /// The window's scale factor in percent (100 = 1.0), sent so the server sizes text for it.
    pub scale_percent: u32,
    pub codecs: Codecs,
    /// Let the server show its own login screen instead of logging on automatically.
    pub login_screen: bool,
    pub connect_timeout: std::time::Duration,
    /// The Windows keyboard layout ID the server should read our scancodes with; 0 leaves it
    /// to the server.
    pub keyboard_layout: u32,
    /// The local clipboard to share with the session (the CLIPRDR channel is announced only
    /// with one).
    pub clipboard: Option<Clipboard>,
    /// A local folder the session sees as a drive: its name there, and its path here.
    pub drive: Option<(String, std::path::PathBuf)>,
    /// The session may read the drive but not change it.
    pub drive_read_only: bool,
    /// Which H.264 decoder to use (with `Codecs::H264`).
    pub h264_decoder: super::graphics::DecoderChoice,
}

/// The surface codecs advertised: RemoteFX, or for lossless only CODEC_GUID_IGNORE
/// (MS-RDPBCGR 2.2.7.2.10.1.1), which names no codec. Lossless still lists that one because
/// IronRDP sends the Surface Commands capability set only with a non-empty list, and a server
/// built on FreeRDP may require surface commands (Weston closes the connection without them);
/// with no real codec it sends raw 32-bit surface bits, which stay exact. Named explicitly
/// rather than taken from IronRDP's defaults, which grow with crate features (QOI, QOIZ) that
/// another crate in the build could switch on: the client under test must advertise what ships.
fn bitmap_codecs(codecs: Codecs) -> BitmapCodecs {
    if codecs == Codecs::Lossless {
        return BitmapCodecs(vec![Codec {
            id: 0,
            property: CodecProperty::Ignore,
        }]);
    }
    let mut all = client_codecs_capabilities(&[]).unwrap_or(BitmapCodecs(Vec::new()));
    all.0
        .retain(|codec| matches!(codec.property, CodecProperty::RemoteFx(_)));
    all
}

pub(super) fn connector_config(endpoint: &Endpoint, options: &ConnectOptions) -> Config {
    // With no codec listed the server falls back to lossless bitmaps (planar, interleaved RLE
    // or raw); RemoteFX is faster on real Windows but lossy.
    let codecs = bitmap_codecs(options.codecs);
    Config {
        desktop_size: DesktopSize {
            width: options.desktop.0,
            height: options.desktop.1,
        },
        desktop_scale_factor: options.scale_percent,
        desktop_physical_size: None,
        desktop_orientation: None,
        device_scale_factor: None,
        monitor_layout: None,
        monitor_extended_layout: None,
        relative_mouse_input: false,
        enable_tls: options.security == Security::NlaOrTls,
        enable_credssp: true,
        // RC4 "standard RDP security" protects nothing: never offered.
        enable_standard_rdp_security: false,
        credentials: Credentials::UsernamePassword {
            username: endpoint.user.clone(),
            password: endpoint.password.expose().to_owned(),
        },
        domain: endpoint.domain.clone(),
        client_build: 0,
        client_name: "ecsrdp".to_owned(),
        keyboard_type: ironrdp_pdu::gcc::KeyboardType::IBM_ENHANCED,
        keyboard_subtype: 0,
        keyboard_functional_keys_count: 12,
        // We send physical scancodes; the layout says how the server reads them.
        keyboard_layout: options.keyboard_layout,
        ime_file_name: String::new(),
        connection_type: ironrdp_pdu::gcc::ConnectionType::Lan,
        bitmap: Some(BitmapConfig {
            lossy_compression: options.codecs != Codecs::Lossless,
            color_depth: 32,
            codecs,
        }),
        dig_product_id: String::new(),
        client_dir: String::new(),
        alternate_shell: String::new(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: ironrdp_pdu::rdp::capability_sets::RailSupportLevel::empty(),
        platform: platform(),
        hardware_id: None,
        request_data: None,
        // INFO_AUTOLOGON (MS-RDPBCGR 2.2.1.11.1.1): log on with the password we hold, so a
        // TLS-only server does not stop at its own login screen.
        autologon: !options.login_screen,
        enable_audio_playback: false,
        enable_audio_capture: false,
        performance_flags: PerformanceFlags::default(),
        license_cache: None,
        timezone_info: TimezoneInfo::default(),
        // No bulk compression: IronRDP fails to decode xrdp's MPPC-compressed bitmap updates
        // ("not enough bytes"), and RemoteFX data does not compress further anyway.
        compression_type: None,
        enable_server_pointer: true,
        pointer_software_rendering: false,
        multitransport_flags: None,
        // Without this flag Windows never opens the graphics pipeline channel.
        support_dyn_vc_gfx_protocol: options.codecs == Codecs::H264,
    }
}

fn platform() -> MajorPlatformType {
    if cfg!(target_os = "macos") {
        MajorPlatformType::MACINTOSH
    } else {
        MajorPlatformType::UNIX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_remotefx_is_advertised_besides_lossless_bitmaps() {
        for codecs in [Codecs::H264, Codecs::RemoteFx] {
            let advertised = bitmap_codecs(codecs);
            assert_eq!(advertised.0.len(), 1, "{advertised:?}");
            assert!(matches!(
                advertised.0[0].property,
                CodecProperty::RemoteFx(_)
            ));
        }
        let lossless = bitmap_codecs(Codecs::Lossless);
        assert!(
            matches!(
                lossless.0.as_slice(),
                [Codec {
                    property: CodecProperty::Ignore,
                    ..
                }]
            ),
            "{lossless:?}"
        );
    }
}
