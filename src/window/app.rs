//! The event loop's side of the window: routes window events to the session as commands (never
//! blocking on it: a backlog holds what its queue has no room for) and the session's news to
//! the view.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::info;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::WindowEvent;
use winit::event_loop::ActiveEventLoop;
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::window::{Fullscreen, Window, WindowId};

use super::backlog::Backlog;
use super::events::{PointerSlot, UserEvent};
use super::input;
use super::keyboard;
use super::options::Scale;
use super::view::View;
use crate::rdp::{Command, Outcome, RdpError};
use crate::render::{DamageTracker, Layout, Placement, SharedFrame};

/// How soon to retry sending input the session's queue had no room for.
const BACKLOG_RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a closed window waits for the session to say goodbye to the server.
pub(super) const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) struct App {
    pub(super) title: String,
    /// How the desktop fits the window now.
    pub(super) scale: Scale,
    /// What the user asked for; `scale` returns to it when the server can resize again.
    pub(super) chosen_scale: Scale,
    pub(super) desktop: (u16, u16),
    /// Open full screen.
    pub(super) fullscreen: bool,
    pub(super) frame: Arc<SharedFrame>,
    pub(super) pending: Arc<AtomicBool>,
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) view: Option<View>,
    pub(super) input: input::InputState,
    pub(super) outcome: Option<Result<Outcome, RdpError>>,
    /// The window could not be opened or drawn into.
    pub(super) window_error: Option<String>,
    /// Commands the queue had no room for, sent as room appears.
    pub(super) backlog: Backlog,
    /// When the window was closed: leave by then even if the session does not answer.
    pub(super) closing: Option<Instant>,
    /// What the window says over the last frame while the session is away (reconnecting).
    pub(super) away: Option<String>,
    /// Where the lock keys are read at each focus-in; `None` where nobody says.
    pub(super) lock_keys: Option<keyboard::LockKeys>,
    /// The newest pointer shape from the session.
    pub(super) pointer: Arc<PointerSlot>,
}

impl App {
    /// Sends a command in order after any backlog; the window never blocks on the session.
    fn send(&mut self, command: Command) {
        self.backlog.send(&self.commands, command, Instant::now());
    }

    /// Mouse moves coalesce while they wait.
    fn send_move(&mut self, op: ironrdp_input::Operation) {
        self.backlog.send_move(&self.commands, op, Instant::now());
    }

    /// Everything must be drawn again (the layout changed).
    fn repaint(&mut self) {
        if let Some(view) = self.view.as_mut() {
            view.repaint();
        }
    }

    /// After a resize, ask the server to follow (1:1 mode) — it may refuse, then we letterbox.
    fn follow_size(&mut self, size: PhysicalSize<u32>) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        view.size = size;
        view.full = true;
        view.requested = true;
        view.window.request_redraw();
        let scale_percent = (view.window.scale_factor() * 100.0).round() as u32;
        let same = self.frame.lock().size() == (size.width, size.height);
        if self.chosen_scale == Scale::None && size.width > 0 && size.height > 0 && !same {
            self.send(Command::Resize {
                width: size.width,
                height: size.height,
                scale_percent,
            });
        }
    }
}

impl ApplicationHandler<UserEvent> for App {
    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        if self.closing.is_some_and(|by| Instant::now() >= by) {
            event_loop.exit();
        }
        self.backlog.flush(&self.commands, Instant::now());
        if self.closing.is_none() {
            // The session drains the queue without waking us: while input waits, look again
            // shortly; otherwise sleep until the next event.
            event_loop.set_control_flow(if self.backlog.is_empty() {
                winit::event_loop::ControlFlow::Wait
            } else {
                winit::event_loop::ControlFlow::WaitUntil(Instant::now() + BACKLOG_RETRY)
            });
        }
    }

    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.view.is_some() {
            return;
        }
        let attributes = Window::default_attributes()
            .with_title(self.title.clone())
            .with_inner_size(PhysicalSize::new(
                u32::from(self.desktop.0),
                u32::from(self.desktop.1),
            ))
            .with_fullscreen(self.fullscreen.then_some(Fullscreen::Borderless(None)));
        let opened = event_loop
            .create_window(attributes)
            .map_err(|e| e.to_string())
            .and_then(|window| {
                let window = Rc::new(window);
                let context =
                    softbuffer::Context::new(Rc::clone(&window)).map_err(|e| e.to_string())?;
                let surface = softbuffer::Surface::new(&context, Rc::clone(&window))
                    .map_err(|e| e.to_string())?;
                Ok((window, surface))
            });
        match opened {
            Ok((window, surface)) => {
                if self.fullscreen {
                    cover_the_monitor(event_loop, &window);
                }
                let size = window.inner_size();
                let x11 = View::is_x11(&window);
                self.view = Some(View {
                    placement: Placement::new(Layout::unscaled((0, 0), (size.width, size.height))),
                    window,
                    x11,
                    surface,
                    size,
                    generation: u64::MAX,
                    tracker: DamageTracker::default(),
                    full: true,
                    requested: false,
                });
                // The connection announced 100 %, before any window existed; on a HiDPI screen
                // tell the server the real factor so it sizes text for it.
                let scale_percent = (window_scale(&self.view) * 100.0).round() as u32;
                if scale_percent != 100 && self.chosen_scale == Scale::None {
                    self.send(Command::Resize {
                        width: size.width,
                        height: size.height,
                        scale_percent,
                    });
                }
            }
            Err(e) => {
                self.window_error = Some(e);
                event_loop.exit();
            }
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: UserEvent) {
        match event {
            UserEvent::FrameReady => {
                self.pending.store(false, Ordering::Release);
                if let Some(view) = self.view.as_mut() {
                    view.requested = true;
                    // Drawn at once but on macOS: on X11 and Wayland `request_redraw` only
                    // costs the event loop a second turn per frame (its wake-up and a dozen
                    // system calls); on macOS the redraw waits for the display's refresh.
                    if cfg!(target_os = "macos") {
                        view.window.request_redraw();
                    } else {
                        view.redraw(&self.frame, self.scale, self.away.as_deref());
                    }
                }
            }
            UserEvent::Pointer => {
                if let (Some(view), Some(shape)) = (&self.view, self.pointer.take()) {
                    view.set_pointer(event_loop, shape);
                }
            }
            // The last frame stays, dimmed, with a notice over it; the title says it too.
            UserEvent::Reconnecting(attempt) => {
                self.away = attempt.map(|(n, of)| format!("Reconnecting ({n} of {of})..."));
                if let Some(view) = &self.view {
                    view.window.set_title(&match attempt {
                        Some((n, of)) => format!("{} — reconnecting ({n} of {of})…", self.title),
                        None => self.title.clone(),
                    });
                }
                self.repaint();
            }
            UserEvent::ResizeRefused => {
                // The server keeps its size: letterbox it into the window instead of cutting.
                if self.scale != Scale::Fit {
                    info!("the server cannot resize its desktop; scaling it to the window");
                    self.scale = Scale::Fit;
                }
                self.repaint();
            }
            UserEvent::ResizeResumed => {
                info!("the server follows the window's size again");
                self.scale = self.chosen_scale;
                self.repaint();
            }
            UserEvent::Ended(outcome) => {
                self.outcome = Some(outcome);
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::RedrawRequested => {
                if let Some(view) = self.view.as_mut() {
                    view.redraw(&self.frame, self.scale, self.away.as_deref());
                }
            }
            // Closed by the user (CloseRequested) or destroyed under us (a window manager, or
            // `xdotool windowclose`): either way, say goodbye to the server and leave.
            WindowEvent::CloseRequested | WindowEvent::Destroyed => {
                if matches!(event, WindowEvent::Destroyed) {
                    self.view = None;
                }
                // The session answers with `Ended`; if it cannot hear us, leave now.
                if self.commands.try_send(Command::Close).is_err() {
                    event_loop.exit();
                }
                self.closing = Some(Instant::now() + CLOSE_GRACE);
                event_loop.set_control_flow(winit::event_loop::ControlFlow::WaitUntil(
                    Instant::now() + CLOSE_GRACE,
                ));
            }
            WindowEvent::Resized(size) => self.follow_size(size),
            WindowEvent::ScaleFactorChanged { .. } => {
                if let Some(view) = &self.view {
                    let size = view.window.inner_size();
                    self.follow_size(size);
                }
            }
            WindowEvent::Focused(false) => {
                self.input.reset_wheel();
                self.send(Command::ReleaseAll);
                self.send(Command::Focus(false));
            }
            WindowEvent::Focused(true) => {
                if let Some(locks) = self.lock_keys.as_ref().and_then(keyboard::LockKeys::read) {
                    self.send(Command::SyncLocks(locks));
                }
                self.send(Command::Focus(true));
            }
            // winit makes up a press for every key down when focus arrives, read from the
            // keyboard as it is by then: a key typed just after focus came would be pressed
            // twice. The real press still comes; a key held from elsewhere is not the session's.
            WindowEvent::KeyboardInput {
                is_synthetic: true,
                event,
                ..
            } if event.state.is_pressed() => {}
            WindowEvent::KeyboardInput { event, .. } => {
                if event.physical_key == PhysicalKey::Code(KeyCode::F11) {
                    if let Some(view) = &self.view {
                        if event.state.is_pressed() && !event.repeat {
                            view.toggle_fullscreen();
                        }
                    }
                    return;
                }
                if let Some(scancode) = input::repeat(&event) {
                    self.send(Command::KeyRepeat(scancode));
                    return;
                }
                let ops = input::key(&event);
                if !ops.is_empty() {
                    self.send(Command::Input(ops));
                }
            }
            WindowEvent::CursorMoved { position, .. } => {
                let Some(view) = &self.view else { return };
                let op = self
                    .input
                    .mouse_move(&view.placement.layout, position.x, position.y);
                if let Some(op) = op {
                    self.send_move(op);
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                if let Some(op) = input::button(state, button) {
                    self.send(Command::Input(vec![op]));
                }
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let ops = self.input.wheel(delta);
                if !ops.is_empty() {
                    self.send(Command::Input(ops));
                }
            }
            _ => {}
        }
    }
}

fn window_scale(view: &Option<View>) -> f64 {
    view.as_ref().map_or(1.0, |v| v.window.scale_factor())
}

/// Borderless full screen is the window manager's to grant; without one (a bare X server, a
/// kiosk) the window covers its monitor itself. With one, this asks for nothing more than full
/// screen already gives.
fn cover_the_monitor(event_loop: &ActiveEventLoop, window: &Window) {
    let Some(monitor) = window
        .current_monitor()
        .or_else(|| event_loop.primary_monitor())
        .or_else(|| event_loop.available_monitors().next())
    else {
        return;
    };
    // The size comes with a later Resized event when the display grants it at once or not.
    let _ = window.request_inner_size(monitor.size());
    window.set_outer_position(monitor.position());
}
