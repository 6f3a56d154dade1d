//! A hostile server's byte stream after a connection: framed as the session frames it (TPKT or
//! fast-path), each PDU through `rdp::replay` (IronRDP's processing, the graphics pipeline with
//! H.264, the desktop bound, the damage), then the damage through the window's blit, scaled
//! and unscaled. The session ends at the first error, as a real one would; nothing may panic
//! or allocate without bound. A panic inside IronRDP's decoding is contained as the shipped
//! client contains it (an error, exit 5), so the panics found are those that would escape.
#![no_main]

use ecsrdp::rdp::{replay, replay_stage, Codecs};
use ecsrdp::render::{blit, Canvas, Layout, Placement};
use libfuzzer_sys::fuzz_target;

/// The window the damage is blitted into: a size no desktop has, so that both layouts scale.
const WINDOW: (u32, u32) = (301, 203);

fuzz_target!(init: ecsrdp::rdp::install_panic_hook(), |data: &[u8]| {
    // The first byte picks the codecs advertised, as `--codec` does.
    let Some((&choice, stream)) = data.split_first() else {
        return;
    };
    let codecs = match choice % 3 {
        0 => Codecs::H264,
        1 => Codecs::RemoteFx,
        _ => Codecs::Lossless,
    };
    let mut canvas = Canvas::new(640, 480);
    let mut window = vec![0u32; (WINDOW.0 * WINDOW.1) as usize];
    let _ = replay(&mut replay_stage(codecs), &mut canvas, stream, |frame| {
        let damage = frame.take_damage();
        for layout in [
            Layout::fit(frame.size(), WINDOW),
            Layout::unscaled(frame.size(), WINDOW),
        ] {
            let placement = Placement::new(layout);
            for rect in damage.rects() {
                blit(frame.pixels(), &placement, *rect, &mut window);
            }
        }
    });
});
