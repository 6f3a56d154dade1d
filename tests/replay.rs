//! Server streams replayed through exactly the session's decoding, without a server: the
//! sessions recorded from real servers in `resources/streams` (FreeRDP's shadow with each codec,
//! xrdp, Weston) decode without error and paint, and every input the fuzzer kept, the crashes it found
//! included, passes without a panic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ecsrdp::rdp::{
    replay, replay_stage, replay_stage_decoding, replay_stage_with, Codecs, DecoderChoice,
};
use ecsrdp::render::Canvas;
use ironrdp_displaycontrol::client::DisplayControlClient;
use ironrdp_dvc::DrdynvcClient;
use ironrdp_egfx::client::{GraphicsPipelineClient, GraphicsPipelineHandler};
use ironrdp_egfx::decode::{DecodedFrame, DecoderError, DecoderResult, H264Decoder, Yuv420Frame};
use ironrdp_session::ActiveStage;
use openh264::formats::YUVSource as _;

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// As the fuzz target reads its input: the first byte picks the codecs advertised.
fn run(data: &[u8]) -> (Result<usize, ecsrdp::rdp::RdpError>, u64) {
    let Some((&choice, stream)) = data.split_first() else {
        return (Ok(0), 0);
    };
    let codecs = match choice % 3 {
        0 => Codecs::H264,
        1 => Codecs::RemoteFx,
        _ => Codecs::Lossless,
    };
    let mut canvas = Canvas::new(1024, 768);
    let mut painted = 0;
    let result = replay(&mut replay_stage(codecs), &mut canvas, stream, |frame| {
        painted += frame.take_damage().area();
    });
    (result, painted)
}

/// Sessions recorded (`ECSRDP_RECORD`) from real servers, and the codecs each was asked for.
const RECORDED: [(&str, Codecs); 7] = [
    ("shadow-h264", Codecs::H264),
    ("shadow-progressive", Codecs::H264),
    ("shadow-planar", Codecs::H264),
    ("shadow-rfx", Codecs::RemoteFx),
    ("shadow-lossless", Codecs::Lossless),
    ("xrdp-login", Codecs::Lossless),
    ("weston", Codecs::Lossless),
];

#[test]
fn recorded_sessions_decode_whole_and_paint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/streams");
    for (name, codecs) in RECORDED {
        let stream = std::fs::read(dir.join(format!("{name}.bin")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut canvas = Canvas::new(1024, 768);
        let mut painted = 0;
        let decoded = replay(&mut replay_stage(codecs), &mut canvas, &stream, |frame| {
            painted += frame.take_damage().area();
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            decoded > 0 && painted > 0,
            "{name}: {decoded} PDUs painted {painted} pixels"
        );
    }
}

/// ecsrdp decodes H.264 in front of IronRDP's graphics pipeline (`src/rdp/graphics`). On the
/// AVC444v2 stream FreeRDP's shadow server sent, it must paint what IronRDP's own decoding
/// paints, up to the two colour conversions' rounding.
#[test]
fn h264_paints_what_ironrdp_paints() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/streams/shadow-h264.bin");
    let stream = std::fs::read(path).unwrap();
    let paint = |mut stage: ActiveStage| {
        let mut canvas = Canvas::new(1024, 768);
        let mut updates = 0;
        replay(&mut stage, &mut canvas, &stream, |_| updates += 1).unwrap();
        let pixels = canvas.frame().lock().pixels().data.to_vec();
        (pixels, updates)
    };
    let (ours, our_updates) = paint(replay_stage(Codecs::H264));
    let pictures = Arc::new(AtomicUsize::new(0));
    let (theirs, their_updates) = paint(ironrdp_stage(pictures.clone()));
    // The stream is H.264 all through, not a session whose graphics channel opened unrecorded.
    let pictures = pictures.load(Ordering::Relaxed);
    assert!(pictures > 10, "only {pictures} H.264 pictures decoded");
    assert!(
        our_updates > 2 && their_updates > 2,
        "{our_updates} and {their_updates} updates"
    );
    assert_eq!(ours.len(), theirs.len());
    let mut off = [0u32; 256];
    for (a, b) in ours.iter().zip(&theirs) {
        off[usize::from(a.abs_diff(*b))] += 1;
    }
    let worst = off.iter().rposition(|&n| n > 0).unwrap();
    let exact = f64::from(off[0]) / ours.len() as f64;
    eprintln!("channels off by 0: {:.1} %, worst {worst}", exact * 100.0);
    assert!(worst <= 2, "a channel is off by {worst}: {off:?}");
    // The stream is not all black: the comparison compared something.
    assert!(theirs.iter().filter(|&&c| c > 0x20).count() > theirs.len() / 4);
}

/// ecsrdp keeps the graphics pipeline's surfaces itself (`src/rdp/graphics/surfaces.rs`),
/// with IronRDP decoding the codecs other than H.264. On the RemoteFX Progressive and planar
/// sessions FreeRDP's shadow server sent, the screen must end as IronRDP's own pipeline and
/// compositor leave it, pixel for pixel.
#[test]
fn graphics_pipeline_sessions_paint_what_ironrdp_paints() {
    for name in ["shadow-progressive", "shadow-planar"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("resources/streams")
            .join(format!("{name}.bin"));
        let stream = std::fs::read(path).unwrap();
        let paint = |mut stage: ActiveStage| {
            let mut canvas = Canvas::new(1024, 768);
            replay(&mut stage, &mut canvas, &stream, |_| {}).unwrap();
            let frame = canvas.frame();
            let frame = frame.lock();
            let rgb: Vec<u8> = frame
                .pixels()
                .data
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
            rgb
        };
        let ours = paint(replay_stage(Codecs::H264));
        let theirs = paint(ironrdp_stage(Arc::new(AtomicUsize::new(0))));
        assert_eq!(ours.len(), theirs.len(), "{name}");
        let differ = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert_eq!(
            differ.map(|at| (at / 3 % 1024, at / 3 / 1024)),
            None,
            "{name}: the first pixel that differs"
        );
        // Not all black: the comparison compared something.
        assert!(
            theirs.iter().filter(|&&c| c > 0x20).count() > theirs.len() / 8,
            "{name}"
        );
    }
}

/// RemoteFX surface bits are ecsrdp's (`src/rdp/updates`). On the session FreeRDP's shadow
/// server sent, every picture ecsrdp shows must be one IronRDP's own session paints, pixel for
/// pixel, in the same order: IronRDP's session, fed each PDU straight, is the reference.
#[test]
fn remotefx_paints_what_ironrdp_paints() {
    paints_what_ironrdp_paints("shadow-rfx", Codecs::RemoteFx, 8);
}

/// Planar bitmaps are ecsrdp's too (`src/rdp/updates/bitmap.rs`), those IronRDP's image
/// refuses IronRDP's: on the bitmap session FreeRDP's shadow server sent (64×64 planar tiles,
/// some past a 1000×700 desktop's canvas), ecsrdp shows what IronRDP's own session paints.
#[test]
fn bitmaps_paint_what_ironrdp_paints() {
    paints_what_ironrdp_paints("shadow-lossless", Codecs::Lossless, 8);
}

/// Replays a recorded session at 1024×768 and at 1000×700 (where tiles are cut at the
/// desktop's edge) and compares, in order, the distinct pictures ecsrdp shows with those
/// IronRDP's session paints; there must be more than `pictures` of them.
fn paints_what_ironrdp_paints(name: &str, codecs: Codecs, pictures: usize) {
    use ironrdp_graphics::image_processing::PixelFormat;
    use ironrdp_session::image::DecodedImage;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("resources/streams")
        .join(format!("{name}.bin"));
    let stream = std::fs::read(path).unwrap();
    // The desktop's part of an image 1,024 pixels wide (a 1000×700 canvas is rounded up to
    // that), as RGB.
    let rgb = |pixels: &[u8], (width, height): (usize, usize)| -> Vec<u8> {
        pixels
            .chunks_exact(1024 * 4)
            .take(height)
            .flat_map(|row| row[..width * 4].chunks_exact(4))
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    };
    let keep = |pictures: &mut Vec<Vec<u8>>, picture: Vec<u8>| {
        if pictures.last() != Some(&picture) {
            pictures.push(picture);
        }
    };
    for size in [(1024, 768), (1000, 700)] {
        // Both start black.
        let black = rgb(&vec![0; 1024 * 768 * 4], size);
        let mut ours = vec![black.clone()];
        let mut canvas = Canvas::new(size.0 as u16, size.1 as u16);
        replay(&mut replay_stage(codecs), &mut canvas, &stream, |frame| {
            keep(&mut ours, rgb(frame.pixels().data, size))
        })
        .unwrap();
        // IronRDP's session, on an image the channel's size (it drops a tile that does not fit).
        let mut theirs = vec![black];
        let mut stage = replay_stage(codecs);
        let mut image = DecodedImage::new(PixelFormat::RgbX32, 1024, 768);
        let mut rest = &stream[..];
        while let Ok(Some(info)) = ironrdp_pdu::find_size(rest) {
            let (pdu, next) = rest.split_at(info.length);
            rest = next;
            // What ecsrdp passes over before IronRDP sees it, IronRDP may refuse.
            if stage.process(&mut image, info.action, pdu, None).is_ok() {
                keep(&mut theirs, rgb(image.data(), size));
            }
        }
        // Pictures of the desktop, not a black screen compared with another.
        assert!(
            theirs.len() > pictures,
            "{name} {size:?}: {} pictures",
            theirs.len()
        );
        let first_difference = ours.iter().zip(&theirs).position(|(a, b)| a != b);
        assert_eq!(
            first_difference,
            None,
            "{name} {size:?}: of {} pictures",
            ours.len()
        );
        assert_eq!(ours.len(), theirs.len(), "{name} {size:?}");
    }
}

/// The H.264 decoders ecsrdp can choose (`--h264-decoder`) paint the same pixels: H.264
/// decoding is exact, so FFmpeg's and OpenH264's pictures of the recorded AVC444v2 stream must
/// agree bit for bit, after every update, not only at the end. Needs FFmpeg's libavcodec
/// (`scripts/setup tests` installs Debian's).
#[test]
fn ffmpeg_and_openh264_paint_the_same_pixels() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/streams/shadow-h264.bin");
    let stream = std::fs::read(path).unwrap();
    let paint = |decoder| {
        let mut canvas = Canvas::new(1024, 768);
        let mut shown = Vec::new();
        let mut stage = replay_stage_decoding(Codecs::H264, decoder);
        replay(&mut stage, &mut canvas, &stream, |frame| {
            use std::hash::{Hash, Hasher};
            let mut hash = std::collections::hash_map::DefaultHasher::new();
            frame.pixels().data.hash(&mut hash);
            shown.push(hash.finish());
        })
        .unwrap_or_else(|e| panic!("{decoder:?}: {e}"));
        let pixels = canvas.frame().lock().pixels().data.to_vec();
        (shown, pixels)
    };
    assert!(
        ecsrdp::rdp::h264_decoder_name(DecoderChoice::Ffmpeg).is_ok(),
        "no FFmpeg here (apt-get install libavcodec59, or scripts/setup tests)"
    );
    let (ffmpeg_frames, ffmpeg) = paint(DecoderChoice::Ffmpeg);
    let (openh264_frames, openh264) = paint(DecoderChoice::OpenH264);
    assert!(ffmpeg_frames.len() >= 10, "{} frames", ffmpeg_frames.len());
    let first_difference = ffmpeg_frames
        .iter()
        .zip(&openh264_frames)
        .position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "the frames differ from this update on"
    );
    assert_eq!(ffmpeg_frames.len(), openh264_frames.len());
    assert!(ffmpeg == openh264, "the last pictures differ");
    // Not all black: the comparison compared something.
    assert!(ffmpeg.iter().filter(|&&c| c > 0x20).count() > ffmpeg.len() / 4);
}

/// An active stage like [`replay_stage`]'s, with IronRDP's own graphics pipeline decoding H.264
/// (combining AVC444's views and converting colours itself).
fn ironrdp_stage(pictures: Arc<AtomicUsize>) -> ActiveStage {
    struct Quiet;
    impl GraphicsPipelineHandler for Quiet {}
    /// OpenH264's planes, handed over as IronRDP's `OpenH264Decoder` does (which would need a
    /// feature of ironrdp-egfx that the client does not build with).
    struct Planes(openh264::decoder::Decoder, Arc<AtomicUsize>);
    impl H264Decoder for Planes {
        fn decode(&mut self, _: &[u8]) -> DecoderResult<DecodedFrame> {
            Err(DecoderError::msg("planes only"))
        }
        fn decode_yuv420(&mut self, data: &[u8]) -> DecoderResult<Yuv420Frame> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let picture = self.0.decode(data).unwrap().unwrap();
            let (width, height) = picture.dimensions();
            let (y_stride, chroma_stride, _) = picture.strides();
            let (y, u, v) = (
                picture.y().to_vec(),
                picture.u().to_vec(),
                picture.v().to_vec(),
            );
            let (width, height) = (width as u16, height as u16);
            Yuv420Frame::new(width, height, y, y_stride, u, v, chroma_stride)
        }
        fn supports_yuv420(&self) -> bool {
            true
        }
    }
    let decoder = Planes(openh264::decoder::Decoder::new().unwrap(), pictures);
    let pipeline = GraphicsPipelineClient::new(Box::new(Quiet), Some(Box::new(decoder)));
    let drdynvc = DrdynvcClient::new()
        .with_dynamic_channel(DisplayControlClient::new(|_| Ok(Vec::new())))
        .with_dynamic_channel(pipeline);
    replay_stage_with(drdynvc)
}

/// Everything under `fuzz/corpus/server_pdus` and `fuzz/regressions/server_pdus`.
#[test]
fn every_kept_fuzz_input_passes_without_a_panic() {
    let mut files = corpus("fuzz/corpus/server_pdus");
    files.extend(corpus("fuzz/regressions/server_pdus"));
    assert!(!files.is_empty());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let _ = run(&data);
    }
}

/// Inputs on which IronRDP's decoding panicked, found by the fuzz target, one per place
/// (named after it: RemoteFX tile positions and clipping rects that overflow 16 bits, a
/// fast-path surface rect of width 0, the RemoteFX colour conversion in the `yuv` crate). All
/// were RemoteFX surface bits, which are ecsrdp's since 2026-12-05 and no longer reach those
/// places: each must now decode, or end with a protocol error of ecsrdp's own, without a panic
/// (a contained one would say that the decoder failed).
#[test]
fn every_decoder_panic_the_fuzzer_found_ends_the_session_cleanly() {
    ecsrdp::rdp::install_panic_hook();
    let found = corpus("fuzz/regressions/server_pdus");
    assert!(found.len() >= 8, "{found:?}");
    for file in found {
        let (result, _) = run(&std::fs::read(&file).unwrap());
        let name = file.display().to_string();
        if let Err(error) = result {
            // A protocol error, said as one: never a crash of the session.
            let error = error.to_string();
            assert!(error.contains("cannot understand"), "{name}: {error}");
            assert!(!error.contains("failed"), "{name}: {error}");
        }
    }
}
