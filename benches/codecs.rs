//! What each codec costs per pixel on screen: sessions recorded from FreeRDP's shadow servers
//! (`scripts/record-streams`: the same animated 1024x768 desktop sent as H.264, RemoteFX
//! Progressive and planar over the graphics pipeline, as RemoteFX, and as lossless bitmaps) replayed through the session's own decoding
//! (`rdp::replay`) and the window's blit, as a session does it. The throughput is in pixels
//! painted (damage area), so ns per pixel is 1000 / Melem/s. H.264 once per decoder
//! (`--h264-decoder`), FFmpeg's only where the machine has it. `cargo bench --bench codecs`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ecsrdp::rdp::{h264_decoder_name, replay, replay_stage_decoding, Codecs, DecoderChoice};
use ecsrdp::render::{blit, Canvas, Layout, Placement};

const DESKTOP: (u16, u16) = (1024, 768);

/// The benchmark's name (the recording's, then the H.264 decoder's), its codecs and decoder.
const STREAMS: [(&str, Codecs, DecoderChoice); 6] = [
    ("shadow-h264-ffmpeg", Codecs::H264, DecoderChoice::Ffmpeg),
    (
        "shadow-h264-openh264",
        Codecs::H264,
        DecoderChoice::OpenH264,
    ),
    ("shadow-progressive", Codecs::H264, DecoderChoice::Auto),
    ("shadow-planar", Codecs::H264, DecoderChoice::Auto),
    ("shadow-rfx", Codecs::RemoteFx, DecoderChoice::Auto),
    ("shadow-lossless", Codecs::Lossless, DecoderChoice::Auto),
];

/// Replays `stream`, blitting each damage into `window`; returns the pixels painted.
fn play(
    (codecs, decoder): (Codecs, DecoderChoice),
    stream: &[u8],
    window: &mut [u32],
    placement: &Placement,
) -> u64 {
    let mut canvas = Canvas::new(DESKTOP.0, DESKTOP.1);
    let mut painted = 0;
    let mut stage = replay_stage_decoding(codecs, decoder);
    replay(&mut stage, &mut canvas, stream, |frame| {
        let damage = frame.take_damage();
        for rect in damage.rects() {
            blit(frame.pixels(), placement, *rect, window);
        }
        painted += damage.area();
    })
    .expect("the recording decodes");
    painted
}

fn codecs(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/streams");
    let size = (u32::from(DESKTOP.0), u32::from(DESKTOP.1));
    let placement = Placement::new(Layout::unscaled(size, size));
    let mut window = vec![0u32; (size.0 * size.1) as usize];
    let mut group = c.benchmark_group("replay");
    group.sample_size(20);
    for (name, codecs, decoder) in STREAMS {
        let file = name
            .trim_end_matches("-ffmpeg")
            .trim_end_matches("-openh264");
        if codecs == Codecs::H264 {
            if let Err(why) = h264_decoder_name(decoder) {
                eprintln!("{name}: skipped: {why}");
                continue;
            }
        }
        let stream = std::fs::read(dir.join(format!("{file}.bin"))).expect("recorded stream");
        let painted = play((codecs, decoder), &stream, &mut window, &placement);
        group.throughput(Throughput::Elements(painted));
        // The decoders' set-up (an H.264 decoder zeroes megabytes) is a session's, once: outside
        // the measurement, which is the stream itself.
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let stage = replay_stage_decoding(codecs, decoder);
                    (stage, Canvas::new(DESKTOP.0, DESKTOP.1))
                },
                |(mut stage, mut canvas)| {
                    replay(&mut stage, &mut canvas, &stream, |frame| {
                        for rect in frame.take_damage().rects() {
                            blit(frame.pixels(), &placement, *rect, &mut window);
                        }
                    })
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
