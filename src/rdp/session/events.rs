//! What crosses between a session and its consumer (the window or the headless runner):
//! commands in, wake-ups and pointer shapes out, and how the session ended. Pixels never travel
//! here; they stay in the shared frame.

use std::sync::Arc;

use ironrdp_graphics::pointer::DecodedPointer;
use ironrdp_input::Operation;

use crate::rdp::keyboard::Locks;

/// What the window asks of the session.
#[derive(Clone, Debug)]
pub enum Command {
    Input(Vec<Operation>),
    /// Release every held key and button (the window lost focus).
    ReleaseAll,
    /// The lock keys as they are now (the window gained focus): MS-RDPBCGR 2.2.8.1.1.3.1.1.5.
    SyncLocks(Locks),
    /// Ask the server for a new desktop size (debounced here: resizes come in bursts).
    Resize {
        width: u32,
        height: u32,
        scale_percent: u32,
    },
    Close,
}

/// The pointer the server wants shown.
#[derive(Clone, Debug)]
pub enum PointerShape {
    Default,
    Hidden,
    Bitmap(Arc<DecodedPointer>),
}

/// Where the session's news goes: a wake-up per batch of pixels, pointer changes.
pub trait FrameSink: Send + Sync + 'static {
    /// New damage is in the shared frame. Called once per PDU at most; coalescing is the
    /// sink's job.
    fn frame_ready(&self);
    fn pointer(&self, shape: PointerShape);
    /// The server cannot follow a resize (no Display Control channel, or not yet): scale
    /// instead.
    fn resize_refused(&self) {}
    /// Display Control opened after all: follow the window's size again.
    fn resize_resumed(&self) {}
    /// The connection was lost and ecsrdp is getting it back: `Some((attempt, of))` while it
    /// tries, `None` once the session is back.
    fn reconnecting(&self, _attempt: Option<(u32, u32)>) {}
}

/// How a session ended, when it ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server ended it (log off, admin disconnect...) with this reason.
    ServerEnded(String),
    /// The window was closed.
    Closed,
    /// `--exit-after` ran out.
    TimeUp,
}
