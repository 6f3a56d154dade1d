//! Pixels between the session and whoever shows them: the shared [`frame`] the session decodes
//! into, and the [`blit`] that copies its damaged parts into a window buffer.
//!
//! Pure: no IO, no async, no AWS, no window system.

pub mod blit;
pub mod frame;

pub use self::blit::{blit, blit_all, DamageTracker, Layout, Pixels, Placement, BACKGROUND};
pub use self::frame::{Damage, Frame, Rect, SharedFrame, PIXEL_FORMAT};
