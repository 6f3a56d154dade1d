//! What crosses between a session and its consumer (the window or the headless runner):
//! commands in, wake-ups and pointer shapes out, and how the session ended. Pixels never travel
//! here; they stay in the shared frame.

use std::sync::Arc;

use ironrdp_graphics::pointer::DecodedPointer;
use ironrdp_input::Operation;

use tokio::sync::mpsc;

use crate::rdp::keyboard::Locks;

/// What the window asks of the session.
#[derive(Clone, Debug)]
pub enum Command {
    Input(Vec<Operation>),
    /// A held key's auto-repeat: another press with no release between, as servers expect
    /// typematic keys (a release first would type the key twice and break held shortcuts).
    KeyRepeat(ironrdp_input::Scancode),
    /// Release every held key and button (the window lost focus).
    ReleaseAll,
    /// The lock keys as they are now (the window gained focus): MS-RDPBCGR 2.2.8.1.1.3.1.1.5.
    SyncLocks(Locks),
    /// The window gained (`true`) or lost focus, which decides what the clipboard shares.
    Focus(bool),
    /// Ask the server for a new desktop size (debounced here: resizes come in bursts).
    Resize {
        width: u32,
        height: u32,
        scale_percent: u32,
    },
    Close,
}

/// A desktop as the window asks for it: its size in pixels and its scale factor in percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    pub scale_percent: u32,
}

impl Layout {
    /// The desktop size to ask for when connecting: as Display Control would ask for it (an
    /// even width, each side within 200..=8192), and the scale factor within 100..=500.
    pub fn at_connection(self) -> ((u16, u16), u32) {
        use ironrdp_displaycontrol::pdu::MonitorLayoutEntry;
        let (width, height) = MonitorLayoutEntry::adjust_display_size(self.width, self.height);
        let side = |n: u32| u16::try_from(n).unwrap_or(crate::rdp::desktop::MAX_DESKTOP_SIDE);
        (
            (side(width), side(height)),
            self.scale_percent.clamp(100, 500),
        )
    }
}

/// What the user asked of the session that a new connection must keep after the network drops
/// it: the desktop last asked for, the lock keys last seen, the window's focus. Keys and buttons
/// need nothing: a new connection starts with none held, which is all a release-all asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub layout: Option<Layout>,
    pub locks: Option<Locks>,
    pub focused: bool,
}

impl Wanted {
    /// Takes in what `command` changes; true when it is worth keeping for a new connection.
    pub(super) fn note(&mut self, command: &Command) -> bool {
        match *command {
            Command::Resize {
                width,
                height,
                scale_percent,
            } => {
                self.layout = Some(Layout {
                    width,
                    height,
                    scale_percent,
                });
                true
            }
            Command::SyncLocks(locks) => {
                self.locks = Some(locks);
                true
            }
            Command::Focus(focused) => {
                self.focused = focused;
                true
            }
            _ => false,
        }
    }
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
    /// The user ended it from inside (signed out, disconnected), as the server says in these
    /// words.
    ServerEnded(String),
    /// The window was closed.
    Closed,
    /// `--exit-after` ran out.
    TimeUp,
}

/// Resolves when the window asks to close; meanwhile what a new connection must keep goes into
/// `wanted` and input is dropped.
pub(super) async fn close_requested(commands: &mut mpsc::Receiver<Command>, wanted: &mut Wanted) {
    loop {
        match commands.recv().await {
            Some(Command::Close) | None => return,
            Some(command) => {
                wanted.note(&command);
            }
        }
    }
}
