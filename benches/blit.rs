//! The window's blit, measured against the pipeline we set out to beat: converting the whole
//! frame into a fresh `Vec<u32>` on every update and copying all of it into the window buffer.
//!
//! Both run in one criterion session on the same 1920×1080 frame, so the report's ratios hold
//! for this machine. `cargo bench --bench blit`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ecsrdp::render::{blit, blit_all, Layout, Placement, Rect, PIXEL_FORMAT};
use ironrdp_session::image::DecodedImage;

const W: u16 = 1920;
const H: u16 = 1080;

/// The baseline: every update converts every pixel into a newly allocated frame (RGBA bytes to
/// 0RGB words), which then travels whole and is copied whole into the window buffer.
fn whole_frame_pipeline(rgba: &[u8], buffer: &mut [u32]) {
    let frame: Vec<u32> = rgba
        .chunks_exact(4)
        .map(|p| (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2]))
        .collect();
    buffer.copy_from_slice(&frame);
}

fn updates(c: &mut Criterion) {
    let image = DecodedImage::new(PIXEL_FORMAT, W, H);
    let rgba = vec![0x55u8; usize::from(W) * usize::from(H) * 4];
    let window = (u32::from(W), u32::from(H));
    let layout = Placement::new(Layout::unscaled(window, window));
    let mut buffer = vec![0u32; usize::from(W) * usize::from(H)];

    // A blinking caret, a typed word, a scrolled text pane, the whole screen.
    let cases = [
        ("caret 2x20", Rect::new(700, 400, 2, 20)),
        ("word 120x24", Rect::new(600, 300, 120, 24)),
        ("pane 800x600", Rect::new(100, 100, 800, 600)),
        (
            "full 1920x1080",
            Rect::new(0, 0, u32::from(W), u32::from(H)),
        ),
    ];
    let mut group = c.benchmark_group("update");
    for (name, rect) in cases {
        group.throughput(Throughput::Elements(rect.area()));
        group.bench_with_input(
            BenchmarkId::new("whole-frame baseline", name),
            &rect,
            |b, _| b.iter(|| whole_frame_pipeline(black_box(&rgba), black_box(&mut buffer))),
        );
        group.bench_with_input(
            BenchmarkId::new("ecsrdp damage blit", name),
            &rect,
            |b, &r| b.iter(|| blit(black_box(&image), &layout, r, black_box(&mut buffer))),
        );
    }
    group.finish();

    // Scaled into a smaller window (--scale fit): the nearest-neighbour path, damaged area only.
    let small = (1280u32, 720u32);
    let fit = Placement::new(Layout::fit(window, small));
    let mut small_buffer = vec![0u32; (small.0 * small.1) as usize];
    let mut group = c.benchmark_group("fit 1920x1080 into 1280x720");
    group.bench_function("ecsrdp word 120x24", |b| {
        b.iter(|| {
            blit(
                &image,
                &fit,
                Rect::new(600, 300, 120, 24),
                black_box(&mut small_buffer),
            )
        })
    });
    group.bench_function("ecsrdp whole window", |b| {
        b.iter(|| blit_all(&image, &fit, black_box(&mut small_buffer)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = updates
}
criterion_main!(benches);
