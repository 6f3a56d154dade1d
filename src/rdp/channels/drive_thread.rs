//! The shared drive's file I/O on a thread of its own: a server may ask for reads of up to
//! 1 MiB at a time from a slow disk or a network folder, and the session task that decodes the
//! desktop and sends the user's input must not wait on any of it.
//!
//! IronRDP's device redirection calls its backend synchronously and lets a backend answer
//! later (`poll_deferred_messages`). The session's side forwards every request that touches
//! files, in order, and answers nothing at once; the thread serves them one after another (the
//! backend's open files are its state) and wakes the session, which drains the answers through
//! IronRDP and sends them (MS-RDPEFS lets completions come whenever they are ready).

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

use ironrdp_core::impl_as_any;
use ironrdp_pdu::{pdu_other_err, PduResult};
use ironrdp_rdpdr::backend::RdpdrBackend;
use ironrdp_rdpdr::pdu::efs::{
    DeviceControlRequest, ServerDeviceAnnounceResponse, ServerDriveIoRequest,
};
use ironrdp_rdpdr::pdu::esc::{ScardCall, ScardIoCtlCode};
use ironrdp_svc::SvcMessage;
use tokio::sync::Notify;
use tracing::warn;

use crate::rdp::contain::contained;

/// How many requests may wait for the thread. Windows keeps a few outstanding; a server that
/// piles up more is refused, so that what waits (writes carry their data) stays bounded.
const QUEUE: usize = 256;

/// What the thread does for the session, in the order the server asked.
enum Job {
    Io(ServerDriveIoRequest),
    Reset,
    Announced(ServerDeviceAnnounceResponse),
}

/// The backend IronRDP calls on the session task: it hands each request to the thread.
#[derive(Debug)]
pub(in crate::rdp) struct Offloaded {
    jobs: SyncSender<Job>,
    answers: Receiver<PduResult<Vec<SvcMessage>>>,
}

impl_as_any!(Offloaded);

/// Wakes the session when the thread has answers; the session then drains them with
/// [`Rdpdr::poll_deferred_messages`](ironrdp_rdpdr::Rdpdr::poll_deferred_messages).
#[derive(Clone, Debug)]
pub struct DriveAnswers(Arc<Notify>);

impl DriveAnswers {
    pub async fn ready(&self) {
        self.0.notified().await;
    }
}

/// Serves `backend` on a thread of its own. The thread ends once the session drops the
/// returned backend and the request in hand (if any) is done; nothing waits for it.
pub(in crate::rdp) fn offload(
    mut backend: impl RdpdrBackend + 'static,
) -> std::io::Result<(Offloaded, DriveAnswers)> {
    let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
    let (done, answers) = mpsc::channel();
    let wake = Arc::new(Notify::new());
    let waker = Arc::clone(&wake);
    std::thread::Builder::new()
        .name("drive".to_owned())
        .spawn(move || {
            for job in queue {
                let answer = contained(|| match job {
                    Job::Io(request) => backend.handle_drive_io_request(request),
                    Job::Reset => backend.reset().map(|()| Vec::new()),
                    Job::Announced(pdu) => backend
                        .handle_server_device_announce_response(pdu)
                        .map(|()| Vec::new()),
                })
                .unwrap_or_else(|panic| {
                    warn!(%panic, "the shared drive's backend failed");
                    Err(pdu_other_err!("the shared drive's backend failed"))
                });
                if answer.as_ref().is_ok_and(Vec::is_empty) {
                    continue;
                }
                if done.send(answer).is_err() {
                    return;
                }
                waker.notify_one();
            }
        })?;
    Ok((Offloaded { jobs, answers }, DriveAnswers(wake)))
}

impl Offloaded {
    fn forward(&self, job: Job) -> PduResult<Vec<SvcMessage>> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(Vec::new()),
            Err(TrySendError::Full(_)) => Err(pdu_other_err!(
                "the server has more drive requests waiting than a client serves"
            )),
            Err(TrySendError::Disconnected(_)) => Err(pdu_other_err!("the drive thread ended")),
        }
    }
}

impl RdpdrBackend for Offloaded {
    fn reset(&mut self) -> PduResult<()> {
        self.forward(Job::Reset).map(drop)
    }

    fn handle_server_device_announce_response(
        &mut self,
        pdu: ServerDeviceAnnounceResponse,
    ) -> PduResult<()> {
        self.forward(Job::Announced(pdu)).map(drop)
    }

    /// No smart card is announced: nothing to answer, as IronRDP's own backend does.
    fn handle_scard_call(
        &mut self,
        _req: DeviceControlRequest<ScardIoCtlCode>,
        _call: ScardCall,
    ) -> PduResult<Vec<SvcMessage>> {
        Ok(Vec::new())
    }

    fn handle_drive_io_request(&mut self, req: ServerDriveIoRequest) -> PduResult<Vec<SvcMessage>> {
        self.forward(Job::Io(req))
    }

    /// Every answer the thread has ready, in order; its first error ends the session as an
    /// error from the backend would have on the session task.
    fn poll_deferred_messages(&mut self) -> PduResult<Vec<SvcMessage>> {
        let mut ready = Vec::new();
        loop {
            match self.answers.try_recv() {
                Ok(answer) => ready.extend(answer?),
                Err(TryRecvError::Empty) => return Ok(ready),
                Err(TryRecvError::Disconnected) => {
                    return Err(pdu_other_err!("the drive thread ended"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_rdpdr::pdu::efs::{
        DeviceCloseRequest, DeviceIoRequest, MajorFunction, MinorFunction,
    };
    use ironrdp_rdpdr::pdu::efs::{DeviceCloseResponse, DeviceIoResponse, NtStatus};
    use ironrdp_rdpdr::pdu::RdpdrPdu;
    use std::time::Duration;

    /// A backend whose every request waits until the test lets it go.
    #[derive(Debug)]
    struct Slow(std::sync::Mutex<Receiver<()>>);

    impl_as_any!(Slow);

    impl RdpdrBackend for Slow {
        fn handle_server_device_announce_response(
            &mut self,
            _: ServerDeviceAnnounceResponse,
        ) -> PduResult<()> {
            Ok(())
        }

        fn handle_scard_call(
            &mut self,
            _: DeviceControlRequest<ScardIoCtlCode>,
            _: ScardCall,
        ) -> PduResult<Vec<SvcMessage>> {
            Ok(Vec::new())
        }

        fn handle_drive_io_request(
            &mut self,
            req: ServerDriveIoRequest,
        ) -> PduResult<Vec<SvcMessage>> {
            // Let go, or the test is over.
            let _ = self.0.lock().unwrap().recv();
            let ServerDriveIoRequest::DeviceCloseRequest(close) = req else {
                return Err(pdu_other_err!("only closes here"));
            };
            Ok(vec![SvcMessage::from(RdpdrPdu::DeviceCloseResponse(
                DeviceCloseResponse {
                    device_io_response: DeviceIoResponse::new(
                        close.device_io_request,
                        NtStatus::SUCCESS,
                    ),
                },
            ))])
        }
    }

    fn close(completion_id: u32) -> ServerDriveIoRequest {
        ServerDriveIoRequest::DeviceCloseRequest(DeviceCloseRequest {
            device_io_request: DeviceIoRequest {
                device_id: 1,
                file_id: 7,
                completion_id,
                major_function: MajorFunction::Close,
                minor_function: MinorFunction::from(0),
            },
        })
    }

    #[tokio::test]
    async fn a_slow_request_leaves_the_session_free_and_answers_come_in_order() {
        let (release, held) = mpsc::channel();
        let (mut backend, answers) = offload(Slow(std::sync::Mutex::new(held))).unwrap();
        // The session's side returns at once, though the thread is stuck on the first.
        assert!(backend
            .handle_drive_io_request(close(1))
            .unwrap()
            .is_empty());
        assert!(backend
            .handle_drive_io_request(close(2))
            .unwrap()
            .is_empty());
        assert!(backend.poll_deferred_messages().unwrap().is_empty());
        release.send(()).unwrap();
        release.send(()).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            tokio::time::timeout(Duration::from_secs(5), answers.ready())
                .await
                .expect("the thread woke the session");
            got.extend(backend.poll_deferred_messages().unwrap());
        }
        let ids: Vec<u32> = got
            .iter()
            .map(|m| {
                let bytes = m.encode_unframed_pdu().unwrap();
                // RDPDR_HEADER (4), then DeviceId (4), CompletionId (4).
                u32::from_le_bytes(bytes[8..12].try_into().unwrap())
            })
            .collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn a_server_that_piles_up_requests_is_refused() {
        let (_release, held) = mpsc::channel();
        let (mut backend, _answers) = offload(Slow(std::sync::Mutex::new(held))).unwrap();
        let refused = (0..=QUEUE as u32 + 1)
            .map(|id| backend.handle_drive_io_request(close(id)))
            .find(Result::is_err);
        assert!(refused.is_some(), "more than the queue holds was taken");
    }
}
