//! ecsrdp's own X11 clipboard backend: one thread that sleeps in `poll` on the display's socket
//! and a wake-up socket, so an idle session costs no wake-ups at all.
//!
//! Why not IronRDP's X11 backend: its thread looks for X events every 10 ms and its worker
//! every 100 ms, whether anything was copied or not, about 50 wake-ups a second between them
//! (docs/performance.md). The [`selection`] logic here is event-driven instead: XFixes reports
//! a new owner, the display's answers come back as events, and the only timers are the
//! give-up deadlines of a transfer in progress. It needs its own connection because winit does
//! not hand its event stream out.

mod formats;
mod selection;

use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use ironrdp_cliprdr::backend::{ClipboardMessage, CliprdrBackend};
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardGeneralCapabilityFlags, FileContentsRequest, FileContentsResponse,
    FormatDataRequest, FormatDataResponse, LockDataId,
};
use ironrdp_core::impl_as_any;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

use self::selection::{Command, Selection, XResult};
use crate::rdp::LocalClipboard;

/// The display's clipboard, shared while this lives: dropping it stops the thread.
struct X11Clipboard {
    commands: Commands,
    thread: Option<JoinHandle<()>>,
}

/// Opens the display's clipboard and starts its thread. The error says why there is none.
pub fn open(
    to_session: UnboundedSender<ClipboardMessage>,
) -> Result<Box<dyn LocalClipboard>, String> {
    let selection =
        Selection::open(to_session).map_err(|e| format!("cannot open the X11 clipboard: {e}"))?;
    let (wake, woken) = UnixStream::pair().map_err(|e| e.to_string())?;
    for socket in [&wake, &woken] {
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("clipboard-x11".into())
        .spawn(move || {
            if let Err(error) = run(selection, &receiver, &woken) {
                warn!(%error, "the clipboard stopped: the display's connection failed");
            }
        })
        .map_err(|e| format!("cannot start the clipboard's thread: {e}"))?;
    Ok(Box::new(X11Clipboard {
        commands: Commands {
            sender,
            wake: Arc::new(wake),
        },
        thread: Some(thread),
    }))
}

impl LocalClipboard for X11Clipboard {
    fn backend(&self) -> Box<dyn CliprdrBackend> {
        self.commands.send(Some(Command::Reset));
        Box::new(Backend(self.commands.clone()))
    }
}

impl Drop for X11Clipboard {
    fn drop(&mut self) {
        self.commands.send(None);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Commands for the thread (`None`: stop), each followed by a byte that wakes it.
#[derive(Debug, Clone)]
struct Commands {
    sender: Sender<Option<Command>>,
    wake: Arc<UnixStream>,
}

impl Commands {
    fn send(&self, command: Option<Command>) {
        if self.sender.send(command).is_err() {
            debug!("the clipboard's thread is gone");
            return;
        }
        // A full socket already holds a wake-up the thread has not read: nothing is lost.
        let _ = (&*self.wake).write(&[1]);
    }
}

fn run(
    mut selection: Selection,
    commands: &Receiver<Option<Command>>,
    woken: &UnixStream,
) -> XResult<()> {
    loop {
        let mut drained = [0; 64];
        while matches!((&*woken).read(&mut drained), Ok(n) if n > 0) {}
        loop {
            match commands.try_recv() {
                Ok(Some(command)) => selection.command(command)?,
                Ok(None) | Err(TryRecvError::Disconnected) => return Ok(()),
                Err(TryRecvError::Empty) => break,
            }
        }
        // Events first: one waiting may be what moves a transfer on before its deadline.
        selection.drain_events()?;
        selection.expire(Instant::now())?;
        selection.drain_events()?;
        let timeout = match selection.deadline() {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Rounded up, so a deadline is never woken for a millisecond early.
                let millis = u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX);
                PollTimeout::from(millis)
            }
        };
        let mut fds = [
            PollFd::new(selection.connection().stream().as_fd(), PollFlags::POLLIN),
            PollFd::new(woken.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(error) => return Err(error.into()),
        }
        let hung_up = fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
        if hung_up {
            // Read what is left; the next request then fails with the connection's error.
            selection.drain_events()?;
            return Err("the display closed the connection".into());
        }
    }
}

/// The CLIPRDR channel's side: forwards the session's requests to the thread.
#[derive(Debug)]
struct Backend(Commands);

impl_as_any!(Backend);

impl CliprdrBackend for Backend {
    fn temporary_directory(&self) -> &str {
        // Never used: files are not shared through the clipboard.
        ".cliprdr"
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {}

    fn on_request_format_list(&mut self) {
        self.0.send(Some(Command::AdvertiseLocal));
    }

    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        let formats = available_formats.iter().map(|f| f.id()).collect();
        self.0.send(Some(Command::RemoteCopy(formats)));
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.0.send(Some(Command::RenderLocal(request.format)));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let data = (!response.is_error()).then(|| response.data().to_vec());
        self.0.send(Some(Command::RemoteData(data)));
    }

    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: LockDataId) {}

    fn on_unlock(&mut self, _: LockDataId) {}
}
