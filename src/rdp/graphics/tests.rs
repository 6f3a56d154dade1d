//! The pipeline against IronRDP's own, on the same messages.

use ironrdp_egfx::pdu::{
    CacheToSurfacePdu, CapabilitiesConfirmPdu, CapabilitiesV8Flags, Color, CreateSurfacePdu,
    DeleteSurfacePdu, EndFramePdu, EvictCacheEntryPdu, MapSurfaceToOutputPdu, PixelFormat, Point,
    ResetGraphicsPdu, SolidFillPdu, StartFramePdu, SurfaceToCachePdu, SurfaceToSurfacePdu,
    Timestamp, WireToSurface1Pdu,
};
use ironrdp_pdu::geometry::ExclusiveRectangle;

use super::*;
use crate::rdp::graphics::area::rect;

const CHANNEL: u32 = 7;
const WIDTH: u16 = 256;
const HEIGHT: u16 = 192;

fn color(r: u8, g: u8, b: u8) -> Color {
    Color { b, g, r, xa: 0 }
}

/// An uncompressed update of `rect` (wire XRGB: B, G, R, X bytes) in a pattern.
fn pattern(surface_id: u16, rect: ExclusiveRectangle) -> GfxPdu {
    let (width, height) = (rect.right - rect.left, rect.bottom - rect.top);
    let bitmap_data = (0..u32::from(width) * u32::from(height))
        .flat_map(|i| [(i * 7) as u8, (i / 3) as u8, (i * 13 + 40) as u8, 0xFF])
        .collect();
    GfxPdu::WireToSurface1(WireToSurface1Pdu {
        surface_id,
        codec_id: Codec1Type::Uncompressed,
        pixel_format: PixelFormat::XRgb,
        destination_rectangle: rect,
        bitmap_data,
    })
}

fn frame(frame_id: u32, commands: Vec<GfxPdu>) -> Vec<GfxPdu> {
    let timestamp = Timestamp {
        milliseconds: 0,
        seconds: 0,
        minutes: 0,
        hours: 0,
    };
    let mut pdus = vec![GfxPdu::StartFrame(StartFramePdu {
        timestamp,
        frame_id,
    })];
    pdus.extend(commands);
    pdus.push(GfxPdu::EndFrame(EndFramePdu { frame_id }));
    pdus
}

/// Every surface command, on two surfaces (one mapped away from the corner, one deleted
/// later), some reaching past their surface, over three frames in two messages.
fn session() -> Vec<Vec<GfxPdu>> {
    let create = |surface_id, width, height| {
        GfxPdu::CreateSurface(CreateSurfacePdu {
            surface_id,
            width,
            height,
            pixel_format: PixelFormat::XRgb,
        })
    };
    let map = |surface_id, x, y| {
        GfxPdu::MapSurfaceToOutput(MapSurfaceToOutputPdu {
            surface_id,
            output_origin_x: x,
            output_origin_y: y,
        })
    };
    let first = frame(
        1,
        vec![
            pattern(1, rect(0, 0, 200, 150)),
            GfxPdu::SolidFill(SolidFillPdu {
                surface_id: 1,
                fill_pixel: color(200, 30, 90),
                rectangles: vec![rect(10, 10, 60, 40), rect(240, 180, 400, 400)],
            }),
            // A scroll up by 7 rows over itself.
            GfxPdu::SurfaceToSurface(SurfaceToSurfacePdu {
                source_surface_id: 1,
                destination_surface_id: 1,
                source_rectangle: rect(0, 7, 120, 100),
                destination_points: vec![Point { x: 0, y: 0 }],
            }),
            GfxPdu::SurfaceToCache(SurfaceToCachePdu {
                surface_id: 1,
                cache_key: 99,
                cache_slot: 3,
                source_rectangle: rect(5, 5, 37, 29),
            }),
            pattern(2, rect(0, 0, 64, 64)),
            GfxPdu::SurfaceToSurface(SurfaceToSurfacePdu {
                source_surface_id: 2,
                destination_surface_id: 1,
                source_rectangle: rect(8, 8, 40, 40),
                destination_points: vec![Point { x: 150, y: 20 }, Point { x: 240, y: 170 }],
            }),
        ],
    );
    let second = frame(
        2,
        vec![
            GfxPdu::CacheToSurface(CacheToSurfacePdu {
                cache_slot: 3,
                surface_id: 1,
                destination_points: vec![Point { x: 100, y: 100 }, Point { x: 250, y: 1 }],
            }),
            GfxPdu::EvictCacheEntry(EvictCacheEntryPdu { cache_slot: 3 }),
            GfxPdu::CacheToSurface(CacheToSurfacePdu {
                cache_slot: 3,
                surface_id: 1,
                destination_points: vec![Point { x: 0, y: 0 }],
            }),
            GfxPdu::DeleteSurface(DeleteSurfacePdu { surface_id: 2 }),
        ],
    );
    let third = frame(
        3,
        vec![GfxPdu::SolidFill(SolidFillPdu {
            surface_id: 1,
            fill_pixel: color(0, 250, 0),
            rectangles: vec![rect(100, 100, 110, 105)],
        })],
    );
    let mut opening = vec![
        GfxPdu::CapabilitiesConfirm(CapabilitiesConfirmPdu::from_typed(&CapabilitySet::V8 {
            flags: CapabilitiesV8Flags::empty(),
        })),
        GfxPdu::ResetGraphics(ResetGraphicsPdu {
            width: WIDTH.into(),
            height: HEIGHT.into(),
            monitors: Vec::new(),
        }),
        create(1, WIDTH, HEIGHT),
        map(1, 0, 0),
        create(2, 64, 64),
        map(2, 180, 140),
    ];
    opening.extend(first);
    let mut rest = second;
    rest.extend(third);
    vec![opening, rest]
}

fn message(pdus: &[GfxPdu]) -> Vec<u8> {
    let bytes: Vec<u8> = pdus
        .iter()
        .flat_map(|pdu| ironrdp_core::encode_vec(pdu).unwrap())
        .collect();
    zgfx::wrap_uncompressed(&bytes)
}

/// The screen after each message, as RGB.
fn rgb(pixels: &[u8]) -> Vec<u8> {
    pixels
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Against IronRDP's own pipeline and compositor, on the same messages: the same screen
/// after each, pixel for pixel.
#[test]
fn surfaces_paint_what_ironrdps_compositor_paints() {
    struct Quiet;
    impl GraphicsPipelineHandler for Quiet {}
    let mut theirs = GraphicsPipelineClient::new(Box::new(Quiet), None);
    let mut their_image = DecodedImage::new(crate::render::PIXEL_FORMAT, WIDTH, HEIGHT);
    let mut ours = pipeline(DecoderChoice::Auto);
    let mut canvas = Canvas::new(WIDTH, HEIGHT);
    theirs.start(CHANNEL).unwrap();
    ours.start(CHANNEL).unwrap();
    for (i, pdus) in session().iter().enumerate() {
        let message = message(pdus);
        let their_replies = theirs.process(CHANNEL, &message).unwrap();
        composite_graphics_pipeline(&mut theirs, &mut their_image).unwrap();
        let our_replies = ours.process(CHANNEL, &message).unwrap();
        ours.composite(canvas.image_mut()).unwrap();
        assert!(ours.show(&mut canvas));
        // Each ended frame is acknowledged.
        assert_eq!(our_replies.len(), their_replies.len());
        let frame = canvas.frame();
        let frame = frame.lock();
        let (ours, theirs) = (rgb(frame.pixels().data), rgb(their_image.data()));
        assert_eq!(ours.len(), theirs.len());
        if let Some(at) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
            let pixel = at / 3;
            let (x, y) = (pixel % usize::from(WIDTH), pixel / usize::from(WIDTH));
            panic!("after message {i}, pixel ({x}, {y}) differs");
        }
        // Not all black: the comparison compared something.
        assert!(theirs.iter().filter(|&&c| c > 0x20).count() > theirs.len() / 4);
    }
}
