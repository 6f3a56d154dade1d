//! H.264 decoded by the system's FFmpeg (`libavcodec`), loaded at run time: what FreeRDP 3
//! decodes with, faster than OpenH264, and never a requirement of the binary.
//!
//! Hand-written bindings rather than a crate: the FFmpeg crates (`ffmpeg-next`,
//! `ffmpeg-sys-next`) link `libavcodec` at build time, against one major version's headers,
//! so the binary would not start without it. Here ecsrdp opens whichever of FFmpeg 4 to 7 the
//! machine has and uses ten functions whose signatures have not changed across those majors,
//! plus the leading fields of `AVFrame` and `AVPacket`, which FFmpeg has kept in place since
//! 2012 (`data`, `linesize`, `extended_data`, `width`, `height`, `nb_samples`, `format`; `buf`,
//! `pts`, `dts`, `data`, `size`). Options go through an `AVDictionary`, never a struct offset.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::ptr;
use std::sync::OnceLock;

use libloading::Library;

use super::yuv444::View;

/// `AV_CODEC_ID_H264`, the same in every FFmpeg release.
const CODEC_ID_H264: c_int = 27;
/// `AV_PIX_FMT_YUV420P` and `AV_PIX_FMT_YUVJ420P` (full range, which the RDP streams are).
const YUV420P: c_int = 0;
const YUVJ420P: c_int = 12;
/// `AV_LOG_QUIET`.
const LOG_QUIET: c_int = -8;
/// Bytes FFmpeg may read past a packet's end (`AV_INPUT_BUFFER_PADDING_SIZE`): zeros.
const PADDING: usize = 64;
/// The majors of `libavcodec` tried, newest first, with the `libavutil` each was released with.
const VERSIONS: [(u32, u32); 5] = [(62, 60), (61, 59), (60, 58), (59, 57), (58, 56)];

/// The leading fields of `AVFrame` (libavutil/frame.h), unchanged since FFmpeg 1.0.
#[repr(C)]
struct FrameHead {
    data: [*mut u8; 8],
    linesize: [c_int; 8],
    extended_data: *mut *mut u8,
    width: c_int,
    height: c_int,
    nb_samples: c_int,
    format: c_int,
}

/// The leading fields of `AVPacket` (libavcodec/packet.h), unchanged since FFmpeg 1.0.
#[repr(C)]
struct PacketHead {
    buf: *mut c_void,
    pts: i64,
    dts: i64,
    data: *mut u8,
    size: c_int,
}

/// The functions ecsrdp calls, from the loaded libraries (which the struct keeps loaded).
struct Api {
    find_decoder: unsafe extern "C" fn(c_int) -> *const c_void,
    alloc_context: unsafe extern "C" fn(*const c_void) -> *mut c_void,
    open: unsafe extern "C" fn(*mut c_void, *const c_void, *mut *mut c_void) -> c_int,
    free_context: unsafe extern "C" fn(*mut *mut c_void),
    send_packet: unsafe extern "C" fn(*mut c_void, *const c_void) -> c_int,
    receive_frame: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
    packet_alloc: unsafe extern "C" fn() -> *mut c_void,
    packet_free: unsafe extern "C" fn(*mut *mut c_void),
    frame_alloc: unsafe extern "C" fn() -> *mut c_void,
    frame_free: unsafe extern "C" fn(*mut *mut c_void),
    dict_set: unsafe extern "C" fn(*mut *mut c_void, *const c_char, *const c_char, c_int) -> c_int,
    dict_free: unsafe extern "C" fn(*mut *mut c_void),
    /// `libavcodec`'s version, as `major.minor.micro`.
    version: String,
    _codec: Library,
    _util: Library,
}

/// The file names tried for one major version on this platform.
fn names(library: &str, major: u32) -> Vec<String> {
    if cfg!(target_os = "macos") {
        // Homebrew's prefixes (Apple silicon, Intel), then the loader's own search.
        ["/opt/homebrew/lib/", "/usr/local/lib/", ""]
            .iter()
            .map(|dir| format!("{dir}lib{library}.{major}.dylib"))
            .collect()
    } else {
        vec![format!("lib{library}.so.{major}")]
    }
}

fn open_first(library: &str, major: u32) -> Option<Library> {
    names(library, major).into_iter().find_map(|name| {
        // SAFETY: loading FFmpeg runs only its libraries' initialisers, which have no
        // requirements of the caller.
        unsafe { Library::new(name) }.ok()
    })
}

impl Api {
    fn load() -> Result<Api, String> {
        for (codec_major, util_major) in VERSIONS {
            let (Some(codec), Some(util)) = (
                open_first("avcodec", codec_major),
                open_first("avutil", util_major),
            ) else {
                continue;
            };
            return Api::bind(codec, util);
        }
        Err("no FFmpeg (libavcodec 58 to 62) on this machine".into())
    }

    fn bind(codec: Library, util: Library) -> Result<Api, String> {
        macro_rules! symbol {
            ($library:expr, $name:literal) => {
                // SAFETY: each symbol is declared with the signature FFmpeg gives it in every
                // major version tried (see the module's doc).
                *unsafe { $library.get($name) }
                    .map_err(|e| format!("FFmpeg has no {}: {e}", stringify!($name)))?
            };
        }
        let version: unsafe extern "C" fn() -> c_uint = symbol!(codec, b"avcodec_version\0");
        let log_level: unsafe extern "C" fn(c_int) = symbol!(util, b"av_log_set_level\0");
        // SAFETY: `avcodec_version` takes nothing and returns a number; `av_log_set_level`
        // takes a level. FFmpeg would otherwise print each damaged packet's details on stderr,
        // over the terminal's status line: its return codes say enough.
        let number = unsafe {
            log_level(LOG_QUIET);
            version()
        };
        Ok(Api {
            find_decoder: symbol!(codec, b"avcodec_find_decoder\0"),
            alloc_context: symbol!(codec, b"avcodec_alloc_context3\0"),
            open: symbol!(codec, b"avcodec_open2\0"),
            free_context: symbol!(codec, b"avcodec_free_context\0"),
            send_packet: symbol!(codec, b"avcodec_send_packet\0"),
            receive_frame: symbol!(codec, b"avcodec_receive_frame\0"),
            packet_alloc: symbol!(codec, b"av_packet_alloc\0"),
            packet_free: symbol!(codec, b"av_packet_free\0"),
            frame_alloc: symbol!(util, b"av_frame_alloc\0"),
            frame_free: symbol!(util, b"av_frame_free\0"),
            dict_set: symbol!(util, b"av_dict_set\0"),
            dict_free: symbol!(util, b"av_dict_free\0"),
            version: format!(
                "{}.{}.{}",
                number >> 16,
                (number >> 8) & 0xff,
                number & 0xff
            ),
            _codec: codec,
            _util: util,
        })
    }
}

/// FFmpeg, loaded once per process; the error says why not.
fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(Api::load).as_ref().map_err(Clone::clone)
}

/// An FFmpeg H.264 decoder for one stream.
pub struct Decoder {
    api: &'static Api,
    context: *mut c_void,
    packet: *mut c_void,
    frame: *mut c_void,
    /// The packet's bytes, with FFmpeg's padding after them.
    padded: Vec<u8>,
}

// SAFETY: the decoder's FFmpeg objects belong to it alone and are used from one thread at a
// time (`&mut self`); FFmpeg keeps no thread-local state for them.
unsafe impl Send for Decoder {}

impl Decoder {
    /// Opens a decoder: single-threaded (frame threads would hold pictures back, and a session
    /// wants each at once) and with low delay, so each packet gives its picture.
    pub fn new() -> Result<Decoder, String> {
        let api = api()?;
        // SAFETY: FFmpeg's documented sequence: find, allocate, set options, open; every
        // pointer is checked before use and freed in `Drop` (null is fine there).
        unsafe {
            let codec = (api.find_decoder)(CODEC_ID_H264);
            if codec.is_null() {
                return Err("this FFmpeg has no H.264 decoder".into());
            }
            let decoder = Decoder {
                api,
                context: (api.alloc_context)(codec),
                packet: (api.packet_alloc)(),
                frame: (api.frame_alloc)(),
                padded: Vec::new(),
            };
            if decoder.context.is_null() || decoder.packet.is_null() || decoder.frame.is_null() {
                return Err("FFmpeg could not allocate a decoder".into());
            }
            let mut options: *mut c_void = ptr::null_mut();
            for (key, value) in [(c"threads", c"1"), (c"flags", c"low_delay")] {
                (api.dict_set)(&mut options, key.as_ptr(), value.as_ptr(), 0);
            }
            let opened = (api.open)(decoder.context, codec, &mut options);
            (api.dict_free)(&mut options);
            if opened < 0 {
                return Err(format!("FFmpeg's H.264 decoder did not open ({opened})"));
            }
            Ok(decoder)
        }
    }

    /// What decodes, with `libavcodec`'s version, for the log.
    pub fn name(&self) -> String {
        format!("FFmpeg's libavcodec {}", self.api.version)
    }

    /// Decodes one Annex B access unit; `None` when it completes no picture.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<View<'_>>, String> {
        self.padded.clear();
        self.padded.extend_from_slice(data);
        self.padded.resize(data.len() + PADDING, 0);
        let size = c_int::try_from(data.len()).map_err(|_| "an H.264 packet over 2 GB")?;
        // SAFETY: the packet points into `padded` (not reference-counted, so FFmpeg copies
        // what it keeps) only for the call; the frame's planes stay valid until the next
        // `receive_frame`, which needs `&mut self`, so the returned view cannot outlive them.
        unsafe {
            let packet = self.packet.cast::<PacketHead>();
            (*packet).buf = ptr::null_mut();
            (*packet).data = self.padded.as_mut_ptr();
            (*packet).size = size;
            let sent = (self.api.send_packet)(self.context, self.packet);
            (*packet).data = ptr::null_mut();
            (*packet).size = 0;
            if sent < 0 && sent != -libc::EAGAIN {
                return Err(format!("FFmpeg refused the packet ({sent})"));
            }
            let received = (self.api.receive_frame)(self.context, self.frame);
            if received == -libc::EAGAIN {
                return Ok(None);
            }
            if received < 0 {
                return Err(format!("FFmpeg could not decode the packet ({received})"));
            }
            let frame = &*self.frame.cast::<FrameHead>();
            if frame.format != YUV420P && frame.format != YUVJ420P {
                return Err(format!(
                    "FFmpeg decoded pixel format {}, not 4:2:0",
                    frame.format
                ));
            }
            let (width, height) = (to_usize(frame.width), to_usize(frame.height));
            let (y_stride, chroma_stride) =
                (to_usize(frame.linesize[0]), to_usize(frame.linesize[1]));
            let chroma_rows = height.div_ceil(2);
            if frame.data[..3].iter().any(|p| p.is_null()) || y_stride < width {
                return Err("FFmpeg returned a picture without planes".into());
            }
            Ok(Some(View {
                y: std::slice::from_raw_parts(frame.data[0], y_stride * height),
                u: std::slice::from_raw_parts(frame.data[1], chroma_stride * chroma_rows),
                v: std::slice::from_raw_parts(frame.data[2], chroma_stride * chroma_rows),
                y_stride,
                chroma_stride,
                width,
                height,
            }))
        }
    }
}

fn to_usize(value: c_int) -> usize {
    usize::try_from(value).unwrap_or(0)
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: each pointer came from its allocator above (or is null, which the free
        // functions accept) and is freed once.
        unsafe {
            (self.api.frame_free)(&mut self.frame);
            (self.api.packet_free)(&mut self.packet);
            (self.api.free_context)(&mut self.context);
        }
    }
}
