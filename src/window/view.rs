//! The window's drawing: its surface, where the desktop sits in it, and the redraw that copies
//! only the damaged rows (plus whatever an older back buffer missed) and presents them.

use std::num::NonZeroU32;
use std::rc::Rc;

use tracing::{debug, warn};
use winit::dpi::PhysicalSize;
use winit::event_loop::ActiveEventLoop;
use winit::window::{CursorIcon, CustomCursor, Fullscreen, Window};

use super::options::Scale;
use super::overlay;
use crate::rdp::PointerShape;
use crate::render::{blit, blit_all, DamageTracker, Layout, Placement, Rect, SharedFrame};

/// The window, its surface, and what it last showed.
pub(super) struct View {
    pub(super) window: Rc<Window>,
    pub(super) surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
    /// The window's inner size as winit last reported it (at creation, then `Resized`), which
    /// an X11 window draws at: asking X11 for it is a round trip to the server, which each
    /// frame would wait on. Elsewhere asking costs nothing, and on Wayland winit knows a size
    /// the compositor gave before it reports it, in time for a frame drawn in between.
    pub(super) size: PhysicalSize<u32>,
    pub(super) x11: bool,
    pub(super) placement: Placement,
    pub(super) generation: u64,
    pub(super) tracker: DamageTracker,
    /// The next present must repaint everything (expose, resize, layout change).
    pub(super) full: bool,
    /// We asked for the coming redraw; one we did not ask for is an expose: repaint it all.
    pub(super) requested: bool,
}

impl View {
    /// Whether `window` is an X11 window (Xlib or XCB).
    pub(super) fn is_x11(window: &Window) -> bool {
        use winit::raw_window_handle::{HasWindowHandle, RawWindowHandle};
        window.window_handle().is_ok_and(|handle| {
            matches!(
                handle.as_raw(),
                RawWindowHandle::Xlib(_) | RawWindowHandle::Xcb(_)
            )
        })
    }

    /// Copies what changed since this back buffer was last shown (under the frame's lock, and
    /// only that), draws `away` over it, and presents the damage.
    pub(super) fn redraw(&mut self, frame: &SharedFrame, scale: Scale, away: Option<&str>) {
        let view = self;
        let size = if view.x11 {
            view.size
        } else {
            view.window.inner_size()
        };
        let (Some(width), Some(height)) =
            (NonZeroU32::new(size.width), NonZeroU32::new(size.height))
        else {
            return;
        };
        if let Err(e) = view.surface.resize(width, height) {
            warn!(error = %e, "cannot resize the window surface");
            return;
        }
        let mut buffer = match view.surface.buffer_mut() {
            Ok(buffer) => buffer,
            Err(e) => {
                warn!(error = %e, "no window buffer");
                return;
            }
        };
        // Over a notice, the whole window is drawn again each time.
        let mut age = if view.full || !view.requested || away.is_some() {
            0
        } else {
            buffer.age()
        };
        view.requested = false;
        let damaged: Vec<Rect> = {
            // Hold the lock only while copying; present after it is released.
            let mut frame = frame.lock();
            let layout = match scale {
                Scale::Fit => Layout::fit(frame.size(), (size.width, size.height)),
                Scale::None => Layout::unscaled(frame.size(), (size.width, size.height)),
            };
            if layout != view.placement.layout || frame.generation() != view.generation {
                view.placement = Placement::new(layout);
                view.generation = frame.generation();
                view.tracker.reset();
                // A new size or layout: whatever the buffer holds is in the wrong place.
                age = 0;
            }
            let damage = frame.take_damage();
            if damage.is_empty() && age != 0 {
                // Nothing to show and nothing presented: the history must not move either.
                return;
            }
            match view.tracker.next(damage, age) {
                None => {
                    blit_all(frame.pixels(), &view.placement, &mut buffer);
                    vec![Rect::new(0, 0, size.width, size.height)]
                }
                Some(region) => {
                    for rect in region.rects() {
                        blit(frame.pixels(), &view.placement, *rect, &mut buffer);
                    }
                    region
                        .rects()
                        .iter()
                        .map(|r| layout.to_window(*r))
                        .collect()
                }
            }
        };
        view.full = false;
        let damaged = match away {
            Some(text) => {
                overlay::notice(&mut buffer, size.width, size.height, text);
                vec![Rect::new(0, 0, size.width, size.height)]
            }
            None => damaged,
        };
        let rects: Vec<softbuffer::Rect> = damaged
            .iter()
            .filter_map(|r| {
                Some(softbuffer::Rect {
                    x: r.x,
                    y: r.y,
                    width: NonZeroU32::new(r.w)?,
                    height: NonZeroU32::new(r.h)?,
                })
            })
            .collect();
        if rects.is_empty() {
            return;
        }
        tracing::trace!(
            rects = rects.len(),
            pixels = damaged.iter().map(Rect::area).sum::<u64>(),
            "present"
        );
        if let Err(e) = buffer.present_with_damage(&rects) {
            warn!(error = %e, "cannot present");
        }
    }

    /// Everything must be drawn again (the layout changed).
    pub(super) fn repaint(&mut self) {
        self.full = true;
        self.requested = true;
        self.window.request_redraw();
    }

    /// Shows the pointer the server asked for.
    pub(super) fn set_pointer(&self, event_loop: &ActiveEventLoop, shape: PointerShape) {
        let view = self;
        match shape {
            PointerShape::Default => {
                view.window.set_cursor_visible(true);
                view.window.set_cursor(CursorIcon::Default);
            }
            PointerShape::Hidden => view.window.set_cursor_visible(false),
            PointerShape::Bitmap(pointer) => {
                let source = CustomCursor::from_rgba(
                    pointer.bitmap_data.clone(),
                    pointer.width,
                    pointer.height,
                    pointer.hotspot_x,
                    pointer.hotspot_y,
                );
                match source {
                    Ok(source) => {
                        view.window.set_cursor_visible(true);
                        view.window
                            .set_cursor(event_loop.create_custom_cursor(source));
                    }
                    Err(e) => debug!(error = %e, "unusable pointer bitmap"),
                }
            }
        }
    }

    /// F11: borderless full screen, and back.
    pub(super) fn toggle_fullscreen(&self) {
        let next = match self.window.fullscreen() {
            Some(_) => None,
            None => Some(Fullscreen::Borderless(None)),
        };
        self.window.set_fullscreen(next);
    }
}
