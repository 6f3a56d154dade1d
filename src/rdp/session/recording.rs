//! `ECSRDP_RECORD`: the server's PDUs written as they came (TPKT and fast-path frames, back to
//! back: what the fuzz target and replays read), in a file private to the user. For debugging
//! and benchmarks; the stream holds the session's pixels, never the password, which went before
//! it, nor the auto-reconnect cookie, which the session leaves out. Written on a thread of its
//! own, so that a slow disk never holds up the session.

use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc::{self, Sender};

use tracing::warn;

/// Where the PDUs go, when `ECSRDP_RECORD` names a file that could be created.
pub(super) struct Recording(Sender<Vec<u8>>);

impl Recording {
    pub(super) fn from_env() -> Option<Recording> {
        let path = std::env::var_os("ECSRDP_RECORD")?;
        let path = Path::new(&path);
        let started = crate::private_file::create(path).and_then(|mut file| {
            let (pdus, queue) = mpsc::channel::<Vec<u8>>();
            std::thread::Builder::new()
                .name("recording".to_owned())
                .spawn(move || {
                    for pdu in queue {
                        if let Err(error) = file.write_all(&pdu) {
                            warn!(%error, "recording stopped");
                            return;
                        }
                    }
                })?;
            Ok(Recording(pdus))
        });
        started
            .map_err(|error| warn!(%error, path = %path.display(), "cannot record the session"))
            .ok()
    }

    /// Queues one PDU; false once the file takes no more (the writer said why).
    pub(super) fn record(&self, pdu: &[u8]) -> bool {
        self.0.send(pdu.to_vec()).is_ok()
    }
}
