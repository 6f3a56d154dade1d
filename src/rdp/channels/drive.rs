//! `--drive NAME=PATH`: a local folder the session sees as a drive (MS-RDPEFS), served by
//! IronRDP's Unix backend, which resolves every path one component at a time below the folder,
//! refuses `.` and `..`, and follows no symbolic link out of it.
//!
//! What is added here, in front of the backend:
//! - Paths written with `/`. Windows servers separate path components with `\`; xrdp's chansrv
//!   sends `/hello.txt`, which the backend would refuse as invalid. A Windows file name cannot
//!   contain `/`, so reading it as `\` changes nothing else, and the backend's own checks still
//!   run on the result.
//! - Read-only sharing (the default; `--drive-writable` lifts it): every request that could change the folder is
//!   answered "write protected" before the backend sees it (an open for writing or deleting,
//!   a create, a write, a rename, a truncation, a delete).
//! - Deleting from xrdp. Its chansrv opens a file to delete without asking for DELETE access
//!   (as Windows' own client, it says, accepts), and the backend then refuses to mark it for
//!   deletion. That one open, exactly as chansrv sends it, is given DELETE on a drive shared
//!   read-write: the server could ask for it anyway, so nothing more is allowed than before.
//! - Listings in every class MS-RDPEFS allows. The backend answers a directory query only in
//!   FileBothDirectoryInformation, what Explorer asks for; xrdp's chansrv asks for
//!   FileDirectoryInformation, and Windows programs may ask for the full or the names-only
//!   class. Those are asked of the backend in its class and its answer restated.

use ironrdp_core::{impl_as_any, ReadCursor};
use ironrdp_pdu::{pdu_other_err, PduResult};
use ironrdp_rdpdr::backend::RdpdrBackend;
use ironrdp_rdpdr::pdu::efs::{
    ClientDriveQueryDirectoryResponse, ClientDriveSetInformationResponse, CreateDisposition,
    CreateOptions, DesiredAccess, DeviceControlRequest, DeviceCreateRequest, DeviceCreateResponse,
    DeviceIoRequest, DeviceIoResponse, DeviceWriteResponse, FileBothDirectoryInformation,
    FileDirectoryInformation, FileFullDirectoryInformation, FileInformationClass,
    FileInformationClassLevel, FileNamesInformation, Information, NtStatus, PrinterIoRequest,
    ServerDeviceAnnounceResponse, ServerDriveIoRequest, ServerDriveQueryDirectoryRequest,
};
use ironrdp_rdpdr::pdu::esc::{ScardCall, ScardIoCtlCode};
use ironrdp_rdpdr::pdu::{RdpdrPdu, SharedHeader};
use ironrdp_rdpdr::Rdpdr;
use ironrdp_rdpdr_native::backend::NixRdpdrBackend;
use ironrdp_session::ActiveStage;
use ironrdp_svc::{SvcMessage, SvcProcessorMessages};

use super::drive_thread::{offload, DriveAnswers};

/// The device redirection channel with one drive: `path` served as `name` (device 1), on a
/// thread of its own (see [`drive_thread`](super::drive_thread)), whose answers are waited for
/// with the returned [`DriveAnswers`].
pub(in crate::rdp) fn shared(
    name: &str,
    path: &std::path::Path,
    read_only: bool,
) -> std::io::Result<(Rdpdr, DriveAnswers)> {
    let backend = Guarded {
        backend: NixRdpdrBackend::new(path.display().to_string()),
        read_only,
    };
    let (offloaded, answers) = offload(backend)?;
    let channel = Rdpdr::new(Box::new(offloaded), "ecsrdp".to_owned())
        .with_drives(Some(vec![(1, name.to_owned())]));
    Ok((channel, answers))
}

/// The encoded answers the drive's thread has ready, to send on the session's connection.
pub(in crate::rdp) fn answers(stage: &mut ActiveStage) -> PduResult<Vec<u8>> {
    let Some(rdpdr) = stage.get_svc_processor_mut::<Rdpdr>() else {
        return Ok(Vec::new());
    };
    let ready = rdpdr.poll_deferred_messages()?;
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    stage
        .process_svc_processor_messages(SvcProcessorMessages::<Rdpdr>::new(ready))
        .map_err(|e| pdu_other_err!("the shared drive's answers", source: e))
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

/// xrdp's open before a delete (chansrv's `devredir_rmdir_or_file`): read attributes and
/// synchronise, synchronous I/O, an existing file. Its lookups ask the same access with no
/// options, so they are told apart and keep what they asked for.
fn opens_to_delete_without_asking(create: &DeviceCreateRequest) -> bool {
    create.desired_access == DesiredAccess::FILE_READ_ATTRIBUTES | DesiredAccess::SYNCHRONIZE
        && create.create_options == CreateOptions::FILE_SYNCHRONOUS_IO_NONALERT
        && create.create_disposition == CreateDisposition::FILE_OPEN
}

/// The listing classes the backend does not answer itself.
fn restated_class(class: &FileInformationClassLevel) -> bool {
    [
        FileInformationClassLevel::FILE_DIRECTORY_INFORMATION,
        FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION,
        FileInformationClassLevel::FILE_NAMES_INFORMATION,
    ]
    .contains(class)
}

/// One listing entry in the class the server asked for (MS-FSCC 2.4: the other classes are
/// the both-names class without its short name, or without its extended-attribute size too,
/// or the name alone).
fn restate(
    both: FileBothDirectoryInformation,
    class: FileInformationClassLevel,
) -> FileInformationClass {
    let FileBothDirectoryInformation {
        next_entry_offset,
        file_index,
        creation_time,
        last_access_time,
        last_write_time,
        change_time,
        end_of_file,
        allocation_size,
        file_attributes,
        ea_size,
        file_name,
        ..
    } = both;
    match class {
        FileInformationClassLevel::FILE_NAMES_INFORMATION => {
            FileInformationClass::Names(FileNamesInformation {
                next_entry_offset,
                file_index,
                file_name,
            })
        }
        FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION => {
            FileInformationClass::FullDirectory(FileFullDirectoryInformation {
                next_entry_offset,
                file_index,
                creation_time,
                last_access_time,
                last_write_time,
                change_time,
                end_of_file,
                allocation_size,
                file_attributes,
                ea_size,
                file_name,
            })
        }
        _ => FileInformationClass::Directory(FileDirectoryInformation {
            next_entry_offset,
            file_index,
            creation_time,
            last_access_time,
            last_write_time,
            change_time,
            end_of_file,
            allocation_size,
            file_attributes,
            file_name,
        }),
    }
}

impl Guarded {
    /// A directory query in a class the backend does not serve: asked of the backend in the
    /// class it does, then answered in the one wanted. The backend's answer comes encoded (its
    /// PDUs are opaque once made), so it is decoded again here: one entry, a few hundred bytes.
    fn query_directory_as(
        &mut self,
        mut query: ServerDriveQueryDirectoryRequest,
    ) -> PduResult<Vec<SvcMessage>> {
        let wanted = query.file_info_class_lvl;
        let request = query.device_io_request.clone();
        query.file_info_class_lvl = FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION;
        let answers = self.backend.handle_drive_io_request(
            ServerDriveIoRequest::ServerDriveQueryDirectoryRequest(query),
        )?;
        let [answer] = answers.as_slice() else {
            return Err(pdu_other_err!(
                "the drive backend answered a listing with several PDUs"
            ));
        };
        let bytes = answer
            .encode_unframed_pdu()
            .map_err(|e| pdu_other_err!("the drive backend's listing", source: e))?;
        let mut src = ReadCursor::new(&bytes);
        let decoded = SharedHeader::decode(&mut src)
            .and_then(|_| DeviceIoResponse::decode(&mut src))
            .and_then(|reply| {
                ClientDriveQueryDirectoryResponse::decode_for_class(
                    FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION,
                    reply,
                    &mut src,
                )
            })
            .map_err(|e| pdu_other_err!("the drive backend's listing", source: e))?;
        let buffer = match decoded.buffer {
            Some(FileInformationClass::BothDirectory(both)) => Some(restate(both, wanted)),
            _ => None,
        };
        let response = ClientDriveQueryDirectoryResponse {
            device_io_reply: DeviceIoResponse::new(request, decoded.device_io_reply.io_status),
            buffer,
        };
        Ok(vec![SvcMessage::from(
            RdpdrPdu::ClientDriveQueryDirectoryResponse(response),
        )])
    }
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
                if !self.read_only && opens_to_delete_without_asking(&create) {
                    create.desired_access |= DesiredAccess::DELETE;
                }
                ServerDriveIoRequest::ServerCreateDriveRequest(create)
            }
            other => other,
        };
        if self.read_only {
            if let Some(refused) = refusal(&req) {
                return refused;
            }
        }
        match req {
            ServerDriveIoRequest::ServerDriveQueryDirectoryRequest(query)
                if restated_class(&query.file_info_class_lvl) =>
            {
                self.query_directory_as(query)
            }
            other => self.backend.handle_drive_io_request(other),
        }
    }

    fn handle_printer_io_request(&mut self, req: PrinterIoRequest) -> PduResult<Vec<SvcMessage>> {
        self.backend.handle_printer_io_request(req)
    }

    fn reject_printer_write(&mut self, req: DeviceIoRequest) -> PduResult<Vec<SvcMessage>> {
        self.backend.reject_printer_write(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_rdpdr::pdu::efs::FileAttributes;

    fn entry() -> FileBothDirectoryInformation {
        FileBothDirectoryInformation::new(
            1,
            2,
            3,
            4,
            5,
            FileAttributes::FILE_ATTRIBUTE_ARCHIVE,
            "hello.txt".into(),
        )
    }

    /// A create request as chansrv sends it, with the given access and options.
    fn open(access: DesiredAccess, options: CreateOptions) -> DeviceCreateRequest {
        DeviceCreateRequest {
            device_io_request: DeviceIoRequest {
                device_id: 1,
                file_id: 0,
                completion_id: 7,
                major_function: ironrdp_rdpdr::pdu::efs::MajorFunction::Create,
                minor_function: 0.into(),
            },
            desired_access: access,
            allocation_size: 0,
            file_attributes: FileAttributes::empty(),
            shared_access: ironrdp_rdpdr::pdu::efs::SharedAccess::all(),
            create_disposition: CreateDisposition::FILE_OPEN,
            create_options: options,
            path: "/doomed.txt".into(),
        }
    }

    #[test]
    fn only_xrdps_open_before_a_delete_is_given_delete_access() {
        let read_attributes = || DesiredAccess::FILE_READ_ATTRIBUTES | DesiredAccess::SYNCHRONIZE;
        let synchronous = || CreateOptions::FILE_SYNCHRONOUS_IO_NONALERT;
        assert!(opens_to_delete_without_asking(&open(
            read_attributes(),
            synchronous()
        )));
        // chansrv's lookup: the same access, no options.
        let lookup = open(read_attributes(), CreateOptions::empty());
        assert!(!opens_to_delete_without_asking(&lookup));
        // An open that reads data is not a delete.
        let reading = read_attributes() | DesiredAccess::FILE_READ_DATA_OR_FILE_LIST_DIRECTORY;
        assert!(!opens_to_delete_without_asking(&open(
            reading,
            synchronous()
        )));
        // Nor is one that creates.
        let mut creating = open(read_attributes(), synchronous());
        creating.create_disposition = CreateDisposition::FILE_CREATE;
        assert!(!opens_to_delete_without_asking(&creating));
    }

    #[test]
    fn each_listing_class_keeps_what_it_has_of_the_entry() {
        let FileInformationClass::Directory(d) = restate(
            entry(),
            FileInformationClassLevel::FILE_DIRECTORY_INFORMATION,
        ) else {
            panic!("not the directory class")
        };
        assert_eq!(
            (
                d.creation_time,
                d.last_access_time,
                d.last_write_time,
                d.change_time,
                d.end_of_file
            ),
            (1, 2, 3, 4, 5)
        );
        assert_eq!(
            (d.file_name.as_str(), d.file_attributes),
            ("hello.txt", FileAttributes::FILE_ATTRIBUTE_ARCHIVE)
        );
        let FileInformationClass::FullDirectory(f) = restate(
            entry(),
            FileInformationClassLevel::FILE_FULL_DIRECTORY_INFORMATION,
        ) else {
            panic!("not the full class")
        };
        assert_eq!((f.last_write_time, f.file_name.as_str()), (3, "hello.txt"));
        let FileInformationClass::Names(n) =
            restate(entry(), FileInformationClassLevel::FILE_NAMES_INFORMATION)
        else {
            panic!("not the names class")
        };
        assert_eq!(n.file_name, "hello.txt");
    }

    #[test]
    fn only_the_classes_the_backend_lacks_are_restated() {
        assert!(restated_class(
            &FileInformationClassLevel::FILE_DIRECTORY_INFORMATION
        ));
        assert!(!restated_class(
            &FileInformationClassLevel::FILE_BOTH_DIRECTORY_INFORMATION
        ));
        assert!(!restated_class(
            &FileInformationClassLevel::FILE_BASIC_INFORMATION
        ));
    }
}
