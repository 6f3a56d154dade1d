//! The desktop window: winit on the main thread, pixels through softbuffer, input to the
//! session through a bounded channel.
//!
//! A consumer of [`Session`], like the headless runner: knows the session only through
//! `render`'s shared frame and `rdp`'s command and sink types; never AWS, `launch` or the
//! command line. The session wakes the window with at most one pending "frame ready" event, and a
//! redraw copies only the damaged rows (plus whatever an older back buffer missed).

mod input;
pub mod keymap;
mod overlay;

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::window::{CursorIcon, CustomCursor, Fullscreen, Window, WindowId};

use crate::error::Error;
use crate::rdp::{Command, FrameSink, Outcome, PointerShape, RdpError, Session};
use crate::render::{blit, blit_all, DamageTracker, Layout, Placement, Rect, SharedFrame};
use crate::snapshot::write_png;

/// How soon to retry sending input the session's queue had no room for.
const BACKLOG_RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a closed window waits for the session to say goodbye to the server.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What the session tells the event loop.
#[derive(Debug)]
enum UserEvent {
    FrameReady,
    Pointer(PointerShape),
    ResizeRefused,
    ResizeResumed,
    Reconnecting(Option<(u32, u32)>),
    Ended(Result<Outcome, RdpError>),
}

/// How the desktop fits the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Scaled into the window, keeping its aspect.
    Fit,
    /// 1:1, the server asked to follow the window's size (scaled if it cannot).
    None,
}

/// What the window needs besides the session.
#[derive(Clone, Debug)]
pub struct WindowOptions {
    pub title: String,
    pub scale: Scale,
    /// The size the window opens at.
    pub desktop: (u16, u16),
    /// Write the desktop here when the session ends.
    pub snapshot: Option<std::path::PathBuf>,
    /// When the command started, for the time-to-first-frame log.
    pub started: Instant,
}

/// A connection to the display, opened before the session so that a machine without one fails
/// before anything is asked of the server.
pub struct Display(EventLoop<UserEvent>);

impl Display {
    pub fn open() -> Result<Display, Error> {
        // winit's own error names its source file; say plainly what is missing instead.
        #[cfg(all(unix, not(target_os = "macos")))]
        if ["DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET"]
            .iter()
            .all(|name| std::env::var_os(name).is_none())
        {
            return Err(Error::NoWindow(
                "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)".into(),
            ));
        }
        EventLoop::<UserEvent>::with_user_event()
            .build()
            .map(Display)
            .map_err(|e| Error::NoWindow(e.to_string()))
    }
}

/// Opens the window and runs until the session ends.
pub fn run(
    runtime: tokio::runtime::Runtime,
    display: Display,
    session: Session,
    options: WindowOptions,
) -> Result<Outcome, Error> {
    let event_loop = display.0;
    // Decoding is many times slower unoptimised: nobody should judge ecsrdp by this build.
    #[cfg(debug_assertions)]
    tracing::warn!(
        "this is a debug build of ecsrdp: decoding runs several times slower than in a release \
         build (cargo install --path . or cargo build --release)"
    );
    let frame = session.frame();
    let commands = session.commands();
    let proxy = event_loop.create_proxy();
    let sink = ProxySink {
        proxy: proxy.clone(),
        pending: Arc::new(AtomicBool::new(false)),
        first: AtomicBool::new(true),
        started: options.started,
    };
    let pending = Arc::clone(&sink.pending);
    runtime.spawn(async move {
        let outcome = session.run(sink).await;
        // The event loop is gone only if the window already closed: nobody left to tell.
        let _ = proxy.send_event(UserEvent::Ended(outcome));
    });

    let mut app = App {
        title: options.title,
        scale: options.scale,
        chosen_scale: options.scale,
        desktop: options.desktop,
        frame,
        pending,
        commands,
        view: None,
        input: input::InputState::default(),
        outcome: None,
        window_error: None,
        backlog: VecDeque::new(),
        closing: None,
        away: None,
    };
    event_loop
        .run_app(&mut app)
        .map_err(|e| Error::NoWindow(e.to_string()))?;
    // A session stuck on a dead network must not keep the process alive after the window.
    runtime.shutdown_timeout(CLOSE_GRACE);
    // Write what was seen even when the session failed, but report the failure first.
    let snapshot = match &options.snapshot {
        Some(path) => write_png(&app.frame.lock(), path),
        None => Ok(()),
    };
    if let Some(error) = app.window_error {
        return Err(Error::NoWindow(error));
    }
    let outcome = match app.outcome {
        Some(outcome) => outcome?,
        None => Outcome::Closed,
    };
    snapshot?;
    Ok(outcome)
}

fn window_scale(view: &Option<View>) -> f64 {
    view.as_ref().map_or(1.0, |v| v.window.scale_factor())
}

/// Wakes the event loop, at most once until the window has drawn.
struct ProxySink {
    proxy: EventLoopProxy<UserEvent>,
    pending: Arc<AtomicBool>,
    first: AtomicBool,
    started: Instant,
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

/// The window, its surface, and what it last showed.
struct View {
    window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
    placement: Placement,
    generation: u64,
    tracker: DamageTracker,
    /// The next present must repaint everything (expose, resize, layout change).
    full: bool,
    /// We asked for the coming redraw; one we did not ask for is an expose: repaint it all.
    requested: bool,
}

struct App {
    title: String,
    /// How the desktop fits the window now.
    scale: Scale,
    /// What the user asked for; `scale` returns to it when the server can resize again.
    chosen_scale: Scale,
    desktop: (u16, u16),
    frame: Arc<SharedFrame>,
    pending: Arc<AtomicBool>,
    commands: mpsc::Sender<Command>,
    view: Option<View>,
    input: input::InputState,
    outcome: Option<Result<Outcome, RdpError>>,
    /// The window could not be opened or drawn into.
    window_error: Option<String>,
    /// Commands the queue had no room for, oldest first, sent as room appears. Only mouse
    /// moves coalesce here: a dropped key or button release would leave it stuck down.
    backlog: VecDeque<Command>,
    /// When the window was closed: leave by then even if the session does not answer.
    closing: Option<Instant>,
    /// What the window says over the last frame while the session is away (reconnecting).
    away: Option<String>,
}

impl App {
    /// Sends a command in order after any backlog; the window never blocks on the session.
    fn send(&mut self, command: Command) {
        self.flush_backlog();
        if !self.backlog.is_empty() {
            self.backlog.push_back(command);
            return;
        }
        match self.commands.try_send(command) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(command)) => self.backlog.push_back(command),
            // The session is gone; `Ended` is on its way.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Mouse moves coalesce: a move still waiting in the backlog is replaced by the newer one.
    fn send_move(&mut self, op: ironrdp_input::Operation) {
        if let Some(Command::Input(last)) = self.backlog.back_mut() {
            if let [ironrdp_input::Operation::MouseMove(_)] = last.as_slice() {
                *last = vec![op];
                return;
            }
        }
        self.send(Command::Input(vec![op]));
    }

    /// Moves what waits in the backlog into the queue, as far as there is room.
    fn flush_backlog(&mut self) {
        while let Some(command) = self.backlog.pop_front() {
            match self.commands.try_send(command) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(command)) => {
                    self.backlog.push_front(command);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    fn redraw(&mut self) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
        let size = view.window.inner_size();
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
        let mut age = if view.full || !view.requested || self.away.is_some() {
            0
        } else {
            buffer.age()
        };
        view.requested = false;
        let damaged: Vec<Rect> = {
            // Hold the lock only while copying; present after it is released.
            let mut frame = self.frame.lock();
            let layout = match self.scale {
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
                    blit_all(&frame.image, &view.placement, &mut buffer);
                    vec![Rect::new(0, 0, size.width, size.height)]
                }
                Some(region) => {
                    for rect in region.rects() {
                        blit(&frame.image, &view.placement, *rect, &mut buffer);
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
        let damaged = match &self.away {
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
        tracing::trace!(rects = rects.len(), "present");
        if let Err(e) = buffer.present_with_damage(&rects) {
            warn!(error = %e, "cannot present");
        }
    }

    /// Everything must be drawn again (the layout changed).
    fn repaint(&mut self) {
        if let Some(view) = self.view.as_mut() {
            view.full = true;
            view.requested = true;
            view.window.request_redraw();
        }
    }

    fn set_pointer(&self, event_loop: &ActiveEventLoop, shape: PointerShape) {
        let Some(view) = &self.view else { return };
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

    fn toggle_fullscreen(&self) {
        if let Some(view) = &self.view {
            let next = match view.window.fullscreen() {
                Some(_) => None,
                None => Some(Fullscreen::Borderless(None)),
            };
            view.window.set_fullscreen(next);
        }
    }

    /// After a resize, ask the server to follow (1:1 mode) — it may refuse, then we letterbox.
    fn follow_size(&mut self, size: PhysicalSize<u32>) {
        let Some(view) = self.view.as_mut() else {
            return;
        };
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
        self.flush_backlog();
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
            ));
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
                let size = window.inner_size();
                self.view = Some(View {
                    placement: Placement::new(Layout::unscaled((0, 0), (size.width, size.height))),
                    window,
                    surface,
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
                    view.window.request_redraw();
                }
            }
            UserEvent::Pointer(shape) => self.set_pointer(event_loop, shape),
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
            WindowEvent::RedrawRequested => self.redraw(),
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
                self.input.clear();
                self.send(Command::ReleaseAll);
            }
            WindowEvent::Focused(true) => {
                if let Some(locks) = crate::keyboard::locks() {
                    self.send(Command::SyncLocks(locks));
                }
            }
            WindowEvent::KeyboardInput { event, .. } => {
                if event.physical_key == PhysicalKey::Code(KeyCode::F11) {
                    if event.state.is_pressed() && !event.repeat {
                        self.toggle_fullscreen();
                    }
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
