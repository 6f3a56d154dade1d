//! The surfaces against what the screen must show.

use super::*;
use crate::rdp::graphics::area::{rect, MAX_AREAS};

fn red() -> Color {
    Color {
        b: 0,
        g: 0,
        r: 0xFF,
        xa: 0,
    }
}

/// A 64x64 screen, and surface 1 (32x32) on it at the top left.
fn one_surface() -> (Canvas, Surfaces) {
    let mut surfaces = Surfaces::default();
    surfaces.create(1, 32, 32);
    surfaces.map(1, 0, 0, None);
    (Canvas::new(64, 64), surfaces)
}

/// The shown frame's pixel at (x, y), as RGB.
fn at(canvas: &Canvas, x: usize, y: usize) -> [u8; 3] {
    let frame = canvas.frame();
    let frame = frame.lock();
    let pixels = frame.pixels();
    let i = (y * usize::from(pixels.width) + x) * 4;
    [pixels.data[i], pixels.data[i + 1], pixels.data[i + 2]]
}

#[test]
fn nothing_shows_before_its_frame_ends() {
    let mut canvas = Canvas::new(64, 64);
    let mut surfaces = Surfaces::default();
    surfaces.create(1, 32, 32);
    surfaces.map(1, 8, 8, None);
    surfaces.fill(1, &red(), &[rect(0, 0, 4, 4)]);
    assert!(!surfaces.show(&mut canvas));
    surfaces.end_frame();
    assert!(surfaces.show(&mut canvas));
    assert_eq!(at(&canvas, 8, 8), [0xFF, 0, 0]);
    assert_eq!(at(&canvas, 12, 8), [0, 0, 0]);
}

#[test]
fn an_ended_frame_shows_whole_though_the_next_has_begun() {
    let (mut canvas, mut surfaces) = one_surface();
    surfaces.fill(1, &red(), &[rect(0, 0, 4, 4)]);
    surfaces.end_frame();
    // The next frame paints the same place before the screen showed the first.
    let blue = Color {
        b: 0xFF,
        g: 0,
        r: 0,
        xa: 0,
    };
    surfaces.fill(1, &blue, &[rect(0, 0, 2, 2)]);
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 0, 0), [0xFF, 0, 0]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 0, 0), [0, 0, 0xFF]);
    assert_eq!(at(&canvas, 3, 3), [0xFF, 0, 0]);
}

#[test]
fn copies_scrolls_and_the_cache_move_pixels() {
    let (mut canvas, mut surfaces) = one_surface();
    surfaces.fill(1, &red(), &[rect(0, 0, 4, 4)]);
    // A scroll down by 2 over itself, a copy, and a cached tile pasted twice.
    surfaces.copy(1, &rect(0, 0, 4, 4), 1, &[Point { x: 0, y: 2 }]);
    surfaces.cache(1, &rect(0, 0, 2, 2), 7, 1 << 20);
    surfaces.uncache(7, 1, &[Point { x: 20, y: 20 }, Point { x: 31, y: 31 }]);
    surfaces.evict(7);
    surfaces.uncache(7, 1, &[Point { x: 10, y: 10 }]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 0, 5), [0xFF, 0, 0]);
    assert_eq!(at(&canvas, 0, 6), [0, 0, 0]);
    assert_eq!(at(&canvas, 21, 21), [0xFF, 0, 0]);
    assert_eq!(at(&canvas, 31, 31), [0xFF, 0, 0]);
    assert_eq!(at(&canvas, 10, 10), [0, 0, 0]);
}

#[test]
fn a_scaled_mapping_stretches_the_surface() {
    let mut canvas = Canvas::new(64, 64);
    let mut surfaces = Surfaces::default();
    surfaces.create(1, 8, 8);
    surfaces.map(1, 0, 0, Some((32, 32)));
    surfaces.fill(1, &red(), &[rect(1, 1, 2, 2)]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 4, 4), [0xFF, 0, 0]);
    assert_eq!(at(&canvas, 7, 7), [0xFF, 0, 0]);
    assert_eq!(at(&canvas, 8, 8), [0, 0, 0]);
    assert_eq!(at(&canvas, 3, 3), [0, 0, 0]);
}

#[test]
fn a_server_cannot_make_the_client_allocate_without_bound() {
    let mut surfaces = Surfaces::default();
    for id in 0..100 {
        surfaces.create(id, 8192, 8192);
    }
    assert!(surfaces.held <= BUDGET);
    assert!(surfaces.surfaces.len() < 2);
    surfaces.reset();
    // Thousands of fills between frame ends keep a short list.
    surfaces.create(1, 64, 64);
    for i in 0..10_000u16 {
        surfaces.fill(1, &red(), &[rect(i % 64, i % 61, i % 64 + 1, i % 61 + 1)]);
        if i % 3 == 0 {
            surfaces.end_frame();
        }
    }
    assert!(surfaces.building.len() <= MAX_AREAS);
    assert!(surfaces.ended.len() <= MAX_PENDING);
}

/// Changes on more surfaces than can be told apart, and frames that end faster than the
/// screen is shown, fall back to showing every surface whole, at a bounded cost.
#[test]
fn too_many_changes_show_every_surface_whole() {
    let mut canvas = Canvas::new(64, 64);
    let mut surfaces = Surfaces::default();
    for id in 0..1000 {
        surfaces.create(id, 1, 1);
        // Each stretched over the whole screen: painting them all would cost 1000 screens.
        surfaces.map(id, 0, 0, Some((64, 64)));
    }
    assert!(surfaces.building_all);
    surfaces.fill(999, &red(), &[rect(0, 0, 1, 1)]);
    surfaces.end_frame();
    assert!(surfaces.show_all && surfaces.ended.is_empty());
    assert!(surfaces.show(&mut canvas));
    // Thousands of one-pixel frames ended before the screen shows them.
    let mut surfaces = Surfaces::default();
    surfaces.create(1, 64, 64);
    surfaces.map(1, 0, 0, None);
    for i in 0..5000u16 {
        let (x, y) = (i % 64, i / 64 % 64);
        surfaces.fill(1, &red(), &[rect(x, y, x + 1, y + 1)]);
        surfaces.end_frame();
    }
    assert!(surfaces.ended.len() <= MAX_PENDING);
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 63, 63), [0xFF, 0, 0]);
}

/// Surfaces overlapping on the screen show in the order they changed, whether their
/// pixels were still in the surface or copied aside.
#[test]
fn overlapping_surfaces_show_in_the_order_they_changed() {
    let mut canvas = Canvas::new(64, 64);
    let mut surfaces = Surfaces::default();
    surfaces.create(1, 32, 32);
    surfaces.create(2, 32, 32);
    surfaces.map(1, 0, 0, None);
    surfaces.map(2, 0, 0, None);
    surfaces.end_frame();
    let blue = Color {
        b: 0xFF,
        g: 0,
        r: 0,
        xa: 0,
    };
    surfaces.fill(1, &red(), &[rect(0, 0, 8, 8)]);
    surfaces.end_frame();
    surfaces.fill(2, &blue, &[rect(0, 0, 8, 8)]);
    surfaces.end_frame();
    // Surface 2 changes again before the screen showed the frame above.
    surfaces.fill(2, &blue, &[rect(20, 20, 24, 24)]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 4, 4), [0, 0, 0xFF]);
    assert_eq!(at(&canvas, 21, 21), [0, 0, 0xFF]);
}

#[test]
fn the_cache_keeps_to_its_capacity_and_a_bad_source_leaves_a_slot_alone() {
    let (mut canvas, mut surfaces) = one_surface();
    surfaces.fill(1, &red(), &[rect(0, 0, 4, 4)]);
    surfaces.cache(1, &rect(0, 0, 4, 4), 1, 100);
    // An unknown surface, and an empty rectangle, leave slot 1 as it was.
    surfaces.cache(9, &rect(0, 0, 4, 4), 1, 100);
    surfaces.cache(1, &rect(40, 40, 50, 50), 1, 100);
    // Over the capacity: not cached.
    surfaces.cache(1, &rect(0, 0, 8, 8), 2, 100);
    surfaces.uncache(1, 1, &[Point { x: 10, y: 10 }]);
    surfaces.uncache(2, 1, &[Point { x: 20, y: 20 }]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 11, 11), [0xFF, 0, 0]);
    assert_eq!(at(&canvas, 21, 21), [0, 0, 0]);
    assert!(surfaces.cached <= 100);
}

#[test]
fn a_surface_mapped_to_a_window_leaves_the_screen() {
    let (mut canvas, mut surfaces) = one_surface();
    // A window mapping that could not be presented changes nothing.
    surfaces.map_to_window(1, (64, 64), (64, 64));
    surfaces.fill(1, &red(), &[rect(0, 0, 4, 4)]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 0, 0), [0xFF, 0, 0]);
    surfaces.map_to_window(1, (32, 32), (32, 32));
    surfaces.fill(1, &red(), &[rect(10, 10, 14, 14)]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 11, 11), [0, 0, 0]);
}

#[test]
fn surfaces_off_the_screen_and_odd_rectangles_are_harmless() {
    let mut canvas = Canvas::new(64, 64);
    let mut surfaces = Surfaces::default();
    surfaces.create(1, 16, 16);
    surfaces.map(1, u32::MAX - 4, 60, None);
    surfaces.fill(1, &red(), &[rect(9, 9, 3, 3), rect(0, 0, 60_000, 60_000)]);
    surfaces.put(1, &rect(0, 0, 16, 16), &[0xFF; 8], 16);
    surfaces.put(1, &rect(0, 0, 16, 16), &[0xFF; 64 * 16], 2);
    surfaces.copy(1, &rect(10, 10, 400, 400), 1, &[Point { x: 15, y: 15 }]);
    surfaces.copy(2, &rect(0, 0, 4, 4), 1, &[Point { x: 0, y: 0 }]);
    surfaces.end_frame();
    surfaces.show(&mut canvas);
    assert_eq!(at(&canvas, 0, 0), [0, 0, 0]);
}
