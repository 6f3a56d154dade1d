//! `--drive NAME=PATH`: a local folder the session sees as a drive (MS-RDPEFS), served by
//! IronRDP's Unix backend, which resolves every path one component at a time below the folder,
//! refuses `.` and `..`, and follows no symbolic link out of it.
//!
//! Two things are added here, in front of the backend:
//! - Paths written with `/`. Windows servers separate path components with `\`; xrdp's chansrv
//!   sends `/hello.txt`, which the backend would refuse as invalid. A Windows file name cannot
//!   contain `/`, so reading it as `\` changes nothing else, and the backend's own checks still
//!   run on the result.
//! - Read-only sharing (`--drive-read-only`): every request that could change the folder is
//!   answered "write protected" before the backend sees it (an open for writing or deleting,
//!   a create, a write, a rename, a truncation, a delete).

use ironrdp_core::impl_as_any;
use ironrdp_pdu::PduResult;
use ironrdp_rdpdr::backend::RdpdrBackend;
use ironrdp_rdpdr::pdu::efs::{
    ClientDriveSetInformationResponse, CreateDisposition, CreateOptions, DesiredAccess,
    DeviceControlRequest, DeviceCreateResponse, DeviceIoRequest, DeviceIoResponse,
    DeviceWriteResponse, Information, NtStatus, PrinterIoRequest, ServerDeviceAnnounceResponse,
    ServerDriveIoRequest,
};
use ironrdp_rdpdr::pdu::esc::{ScardCall, ScardIoCtlCode};
use ironrdp_rdpdr::pdu::RdpdrPdu;
use ironrdp_rdpdr::Rdpdr;
use ironrdp_rdpdr_native::backend::NixRdpdrBackend;
use ironrdp_svc::SvcMessage;

/// The device redirection channel with one drive: `path` served as `name` (device 1).
pub(super) fn shared(name: &str, path: &std::path::Path, read_only: bool) -> Rdpdr {
    let backend = Guarded {
        backend: NixRdpdrBackend::new(path.display().to_string()),
        read_only,
    };
    Rdpdr::new(Box::new(backend), "ecsrdp".to_owned()).with_drives(Some(vec![(1, name.to_owned())]))
}

/// The Unix backend, with `/` in the paths of create requests read as `\`, and changes
/// refused when the drive is read-only.
#[derive(Debug)]
struct Guarded {
    backend: NixRdpdrBackend,
    read_only: bool,
}

impl_as_any!(Guarded);

/// Access that changes a file or a folder (MS-SMB2 2.2.13.1).
fn changes() -> DesiredAccess {
    DesiredAccess::FILE_WRITE_DATA_OR_FILE_ADD_FILE
        | DesiredAccess::FILE_APPEND_DATA_OR_FILE_ADD_SUBDIRECTORY
        | DesiredAccess::FILE_WRITE_EA
        | DesiredAccess::FILE_WRITE_ATTRIBUTES
        | DesiredAccess::FILE_DELETE_CHILD
        | DesiredAccess::DELETE
        | DesiredAccess::WRITE_DAC
        | DesiredAccess::WRITE_OWNER
        | DesiredAccess::GENERIC_WRITE
        | DesiredAccess::GENERIC_ALL
        | DesiredAccess::MAXIMUM_ALLOWED
}

/// The answer to a request a read-only drive refuses, or `None` for one it lets through.
fn refusal(req: &ServerDriveIoRequest) -> Option<PduResult<Vec<SvcMessage>>> {
    const PROTECTED: NtStatus = NtStatus::MEDIA_WRITE_PROTECTED;
    let pdu = match req {
        ServerDriveIoRequest::ServerCreateDriveRequest(create)
            if create.create_disposition != CreateDisposition::FILE_OPEN
                || create.desired_access.intersects(changes())
                || create
                    .create_options
                    .contains(CreateOptions::FILE_DELETE_ON_CLOSE) =>
        {
            RdpdrPdu::DeviceCreateResponse(DeviceCreateResponse {
                device_io_reply: DeviceIoResponse::new(create.device_io_request.clone(), PROTECTED),
                file_id: 0,
                information: Information::empty(),
            })
        }
        ServerDriveIoRequest::DeviceWriteRequest(write) => {
            RdpdrPdu::DeviceWriteResponse(DeviceWriteResponse {
                device_io_reply: DeviceIoResponse::new(write.device_io_request.clone(), PROTECTED),
                length: 0,
            })
        }
        ServerDriveIoRequest::ServerDriveSetInformationRequest(set) => {
            match ClientDriveSetInformationResponse::new(set, PROTECTED) {
                Ok(response) => RdpdrPdu::ClientDriveSetInformationResponse(response),
                Err(e) => {
                    return Some(Err(
                        ironrdp_pdu::pdu_other_err!("read-only drive", source: e),
                    ))
                }
            }
        }
        _ => return None,
    };
    Some(Ok(vec![SvcMessage::from(pdu)]))
}

impl RdpdrBackend for Guarded {
    fn reset(&mut self) -> PduResult<()> {
        self.backend.reset()
    }

    fn handle_server_device_announce_response(
        &mut self,
        pdu: ServerDeviceAnnounceResponse,
    ) -> PduResult<()> {
        self.backend.handle_server_device_announce_response(pdu)
    }

    fn handle_scard_call(
        &mut self,
        req: DeviceControlRequest<ScardIoCtlCode>,
        call: ScardCall,
    ) -> PduResult<Vec<SvcMessage>> {
        self.backend.handle_scard_call(req, call)
    }

    fn handle_drive_io_request(&mut self, req: ServerDriveIoRequest) -> PduResult<Vec<SvcMessage>> {
        let req = match req {
            ServerDriveIoRequest::ServerCreateDriveRequest(mut create) => {
                create.path = create.path.replace('/', "\\");
                ServerDriveIoRequest::ServerCreateDriveRequest(create)
            }
            other => other,
        };
        if self.read_only {
            if let Some(refused) = refusal(&req) {
                return refused;
            }
        }
        self.backend.handle_drive_io_request(req)
    }

    fn handle_printer_io_request(&mut self, req: PrinterIoRequest) -> PduResult<Vec<SvcMessage>> {
        self.backend.handle_printer_io_request(req)
    }

    fn reject_printer_write(&mut self, req: DeviceIoRequest) -> PduResult<Vec<SvcMessage>> {
        self.backend.reject_printer_write(req)
    }
}
