//! Pixels between the session and whoever shows them: the session's canvas and the shared
//! [`frame`] it copies what changed to, and the [`blit`] that copies the frame's damaged parts
//! into a window buffer.
//!
//! Pure: no IO, no async, no AWS, no window system.

pub mod blit;
pub mod frame;

pub use self::blit::{blit, blit_all, DamageTracker, Layout, Placement, BACKGROUND};
pub use self::frame::{Canvas, Damage, Frame, Pixels, Rect, SharedFrame, PIXEL_FORMAT};
