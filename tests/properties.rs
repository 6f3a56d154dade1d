//! Properties of the window's drawing, over random desktops, windows and damage: whatever the
//! damage merging keeps, however the rects are clipped and scaled, drawing only the damage
//! leaves the window exactly as redrawing everything would.

use ecsrdp::render::{blit, blit_all, Damage, DamageTracker, Layout, Pixels, Placement, Rect};
use proptest::prelude::*;

/// An RGBX desktop whose pixels the test writes.
#[derive(Clone, Debug)]
struct Desktop {
    width: u16,
    height: u16,
    data: Vec<u8>,
}

impl Desktop {
    fn new(width: u16, height: u16, seed: u32) -> Desktop {
        let mut desktop = Desktop {
            width,
            height,
            data: vec![0; usize::from(width) * usize::from(height) * 4],
        };
        desktop.paint(Rect::new(0, 0, width.into(), height.into()), seed);
        desktop
    }

    /// Fills the part of `rect` inside the desktop with a pattern no other seed repeats.
    fn paint(&mut self, rect: Rect, seed: u32) {
        let rect = rect.clip(self.width.into(), self.height.into());
        for y in rect.y..rect.bottom() {
            for x in rect.x..rect.right() {
                let at = (y as usize * usize::from(self.width) + x as usize) * 4;
                let value = (x * 7 + y * 13).wrapping_mul(seed | 1) ^ seed;
                self.data[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
    }

    fn pixels(&self) -> Pixels<'_> {
        Pixels {
            data: &self.data,
            width: self.width,
            height: self.height,
        }
    }
}

/// A rect that may stick out of a desktop of up to 96 pixels a side, or be empty.
fn any_rect() -> impl Strategy<Value = Rect> {
    (0u32..110, 0u32..110, 0u32..60, 0u32..60).prop_map(|(x, y, w, h)| Rect::new(x, y, w, h))
}

fn contains(rect: &Rect, x: u32, y: u32) -> bool {
    x >= rect.x && x < rect.right() && y >= rect.y && y < rect.bottom()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The window after drawing only the damage of a burst of updates equals the window redrawn
    /// whole, scaled or not, window larger or smaller than the desktop.
    #[test]
    fn drawing_the_damage_equals_drawing_everything(
        desktop in (1u16..96, 1u16..96),
        window in (1u32..120, 1u32..120),
        scaled in any::<bool>(),
        updates in prop::collection::vec(any_rect(), 0..40),
    ) {
        let mut image = Desktop::new(desktop.0, desktop.1, 1);
        let size = (u32::from(desktop.0), u32::from(desktop.1));
        let layout = if scaled { Layout::fit(size, window) } else { Layout::unscaled(size, window) };
        let placement = Placement::new(layout);
        let mut shown = vec![0u32; (window.0 * window.1) as usize];
        blit_all(image.pixels(), &placement, &mut shown);

        let mut damage = Damage::default();
        for (n, rect) in updates.iter().enumerate() {
            image.paint(*rect, n as u32 + 2);
            damage.add(rect.clip(size.0, size.1));
        }
        for rect in damage.rects() {
            blit(image.pixels(), &placement, *rect, &mut shown);
        }
        let mut redrawn = vec![0u32; shown.len()];
        blit_all(image.pixels(), &placement, &mut redrawn);
        let wrong = shown.iter().zip(&redrawn).filter(|(a, b)| a != b).count();
        prop_assert_eq!(wrong, 0, "{} of {} window pixels differ", wrong, shown.len());
    }

    /// Merging loses no damaged pixel, keeps at most 16 rects, and leaves no two of them
    /// touching (they would have been one).
    #[test]
    fn damage_covers_every_update_in_few_separate_rects(
        updates in prop::collection::vec(any_rect(), 0..60),
    ) {
        let mut damage = Damage::default();
        for rect in &updates {
            damage.add(*rect);
        }
        let rects = damage.rects();
        prop_assert!(rects.len() <= 16);
        for (i, a) in rects.iter().enumerate() {
            prop_assert!(!a.is_empty());
            for b in &rects[i + 1..] {
                prop_assert!(!a.touches(b), "{:?} and {:?} touch", a, b);
            }
        }
        for rect in &updates {
            for y in rect.y..rect.bottom() {
                for x in rect.x..rect.right() {
                    prop_assert!(rects.iter().any(|r| contains(r, x, y)), "({}, {}) lost", x, y);
                }
            }
        }
    }

    /// Clipping keeps exactly the pixels inside the area.
    #[test]
    fn clipping_is_intersection(rect in any_rect(), width in 0u32..100, height in 0u32..100) {
        let clipped = rect.clip(width, height);
        for y in 0..120 {
            for x in 0..120 {
                let inside = contains(&rect, x, y) && x < width && y < height;
                prop_assert_eq!(contains(&clipped, x, y), inside, "({}, {})", x, y);
            }
        }
    }

    /// A fitted desktop lies inside the window, centred, with its aspect kept to the pixel,
    /// and every window position maps back to a pixel of the desktop.
    #[test]
    fn fitting_keeps_aspect_and_maps_back_inside(
        desktop in (1u32..9000, 1u32..9000),
        window in (1u32..5000, 1u32..5000),
        at in (-50.0f64..5050.0, -50.0f64..5050.0),
    ) {
        let layout = Layout::fit(desktop, window);
        let view = layout.view;
        prop_assert!(view.right() <= window.0 && view.bottom() <= window.1);
        prop_assert!(view.w == window.0 || view.h == window.1, "fills neither the width nor the height: {:?}", view);
        prop_assert!(window.0 - view.right() - view.x <= 1 && window.1 - view.bottom() - view.y <= 1);
        // w/h against desktop.0/desktop.1, off by less than one pixel of the shorter side.
        let (w, h) = (f64::from(view.w), f64::from(view.h));
        let (dw, dh) = (f64::from(desktop.0), f64::from(desktop.1));
        prop_assert!((w - h * dw / dh).abs() < 1.0 || (h - w * dh / dw).abs() < 1.0);
        let (x, y) = layout.to_desktop(at.0, at.1);
        prop_assert!(u32::from(x) < desktop.0 && u32::from(y) < desktop.1);
    }

    /// A buffer of age n gets every change of the last n presents (or "redraw everything").
    #[test]
    fn an_old_buffer_gets_every_change_since_it_was_shown(
        presents in prop::collection::vec(any_rect(), 1..8),
        age in 0u8..8,
    ) {
        let mut tracker = DamageTracker::default();
        let mut last = None;
        for rect in &presents {
            let mut damage = Damage::default();
            damage.add(*rect);
            last = Some(tracker.next(damage, age));
        }
        let Some(Some(region)) = last else { return Ok(()) };
        let missed = &presents[presents.len().saturating_sub(usize::from(age))..];
        for rect in missed {
            for y in rect.y..rect.bottom() {
                for x in rect.x..rect.right() {
                    prop_assert!(region.rects().iter().any(|r| contains(r, x, y)));
                }
            }
        }
    }
}
