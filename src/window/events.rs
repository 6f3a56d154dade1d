//! The session's news for the event loop: a wake-up when pixels are ready (at most one pending
//! at a time, so the loop is never flooded), pointer shapes, resize and reconnection notices, and
//! the session's end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::info;
use winit::event_loop::EventLoopProxy;

use crate::rdp::{FrameSink, Outcome, PointerShape, RdpError};

/// What the session tells the event loop.
#[derive(Debug)]
pub(super) enum UserEvent {
    FrameReady,
    Pointer(PointerShape),
    ResizeRefused,
    ResizeResumed,
    Reconnecting(Option<(u32, u32)>),
    Ended(Result<Outcome, RdpError>),
}

/// Wakes the event loop, at most once until the window has drawn.
pub(super) struct ProxySink {
    pub(super) proxy: EventLoopProxy<UserEvent>,
    pub(super) pending: Arc<AtomicBool>,
    pub(super) first: AtomicBool,
    pub(super) started: Instant,
}

impl FrameSink for ProxySink {
    fn frame_ready(&self) {
        if self.first.swap(false, Ordering::Relaxed) {
            info!(
                ms = self.started.elapsed().as_millis() as u64,
                "first frame"
            );
        }
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A closed event loop means the window is gone; the session ends on its own.
            let _ = self.proxy.send_event(UserEvent::FrameReady);
        }
    }

    fn pointer(&self, shape: PointerShape) {
        let _ = self.proxy.send_event(UserEvent::Pointer(shape));
    }

    fn resize_refused(&self) {
        let _ = self.proxy.send_event(UserEvent::ResizeRefused);
    }

    fn resize_resumed(&self) {
        let _ = self.proxy.send_event(UserEvent::ResizeResumed);
    }

    fn reconnecting(&self, attempt: Option<(u32, u32)>) {
        let _ = self.proxy.send_event(UserEvent::Reconnecting(attempt));
    }
}
