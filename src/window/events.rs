//! The session's news for the event loop: a wake-up when pixels are ready and one when the
//! pointer's shape changed (each at most one pending at a time, so the loop is never flooded),
//! resize and reconnection notices, and the session's end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tracing::info;
use winit::event_loop::EventLoopProxy;

use crate::rdp::{FrameSink, Outcome, PointerShape, RdpError};

/// What the session tells the event loop.
#[derive(Debug)]
pub(super) enum UserEvent {
    FrameReady,
    /// The newest shape is in the [`PointerSlot`].
    Pointer,
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
    pub(super) pointer: Arc<PointerSlot>,
}

/// The newest pointer shape until the event loop takes it: a server that sends shapes faster
/// than the window can set them (an animated cursor, a hostile server) wakes the loop once,
/// and only the last shape is made into a cursor.
#[derive(Default)]
pub(super) struct PointerSlot(Mutex<Option<PointerShape>>);

impl PointerSlot {
    /// Keeps `shape`; true when the slot was empty, so the loop must be woken.
    fn put(&self, shape: PointerShape) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.replace(shape).is_none()
    }

    pub(super) fn take(&self) -> Option<PointerShape> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
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
        if self.pointer.put(shape) {
            let _ = self.proxy.send_event(UserEvent::Pointer);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_shapes_wakes_once_and_leaves_the_last() {
        let slot = PointerSlot::default();
        assert!(slot.put(PointerShape::Hidden), "the first wakes the loop");
        assert!(!slot.put(PointerShape::Default), "later ones wait for it");
        assert!(matches!(slot.take(), Some(PointerShape::Default)));
        assert!(slot.take().is_none());
        assert!(
            slot.put(PointerShape::Hidden),
            "taken: the next wakes again"
        );
    }
}
