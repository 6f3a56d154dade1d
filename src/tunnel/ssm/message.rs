//! One Session Manager data-channel message: the binary "client message" both ends of the
//! stream exchange, as AWS's session-manager-plugin defines it (`clientmessage.go`; there is no
//! other specification). Pure: bytes in, bytes out.
//!
//! ```text
//! offset  field           size  (big-endian)
//!      0  HeaderLength    4     116: where PayloadLength starts
//!      4  MessageType     32    ASCII, padded with spaces
//!     36  SchemaVersion   4
//!     40  CreatedDate     8     milliseconds since the epoch
//!     48  SequenceNumber  8     signed
//!     56  Flags           8     bit 0 SYN, bit 1 FIN
//!     64  MessageId       16    a UUID's last 8 bytes, then its first 8
//!     80  PayloadDigest   32    SHA-256 of the payload
//!    112  PayloadType     4
//!    116  PayloadLength   4
//!    120  Payload
//! ```

use sha2::{Digest as _, Sha256};
use uuid::Uuid;

const HEADER_LENGTH: u32 = 116;
const TYPE_LENGTH: usize = 32;
/// Where the payload starts.
const PAYLOAD_OFFSET: usize = 120;
const SCHEMA_VERSION: u32 = 1;

/// The message types this client sends or understands (the service sends a few more, which are
/// read and ignored).
pub const INPUT: &str = "input_stream_data";
pub const OUTPUT: &str = "output_stream_data";
pub const ACKNOWLEDGE: &str = "acknowledge";
pub const CHANNEL_CLOSED: &str = "channel_closed";
pub const START_PUBLICATION: &str = "start_publication";
pub const PAUSE_PUBLICATION: &str = "pause_publication";

/// What a stream message's payload holds (`PayloadType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadType {
    Output,
    Error,
    HandshakeRequest,
    HandshakeResponse,
    HandshakeComplete,
    EncryptionChallengeRequest,
    EncryptionChallengeResponse,
    Flag,
    /// One this client has no use for, kept so that it can be acknowledged.
    Other(u32),
}

impl PayloadType {
    fn from_wire(value: u32) -> Self {
        match value {
            1 => Self::Output,
            2 => Self::Error,
            5 => Self::HandshakeRequest,
            6 => Self::HandshakeResponse,
            7 => Self::HandshakeComplete,
            8 => Self::EncryptionChallengeRequest,
            9 => Self::EncryptionChallengeResponse,
            10 => Self::Flag,
            other => Self::Other(other),
        }
    }

    fn to_wire(self) -> u32 {
        match self {
            Self::Output => 1,
            Self::Error => 2,
            Self::HandshakeRequest => 5,
            Self::HandshakeResponse => 6,
            Self::HandshakeComplete => 7,
            Self::EncryptionChallengeRequest => 8,
            Self::EncryptionChallengeResponse => 9,
            Self::Flag => 10,
            Self::Other(value) => value,
        }
    }
}

/// A message, decoded and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub message_type: String,
    pub created_ms: u64,
    pub sequence: i64,
    pub flags: u64,
    pub id: Uuid,
    pub payload_type: PayloadType,
    pub payload: Vec<u8>,
}

/// Why bytes from the service are not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("a message of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("a message's header length is {0}, not 116")]
    HeaderLength(u32),
    #[error("a message says its payload is {said} bytes, but {found} follow")]
    PayloadLength { said: u32, found: usize },
    #[error("a message's payload does not match its SHA-256 digest")]
    Digest,
    #[error("a message's type is not ASCII text")]
    Type,
}

impl Message {
    /// A new message of `message_type` with a fresh ID, stamped now.
    pub fn new(
        message_type: &str,
        sequence: i64,
        flags: u64,
        payload_type: PayloadType,
        payload: Vec<u8>,
    ) -> Self {
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            message_type: message_type.to_owned(),
            created_ms,
            sequence,
            flags,
            id: Uuid::new_v4(),
            payload_type,
            payload,
        }
    }

    /// The message on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAYLOAD_OFFSET + self.payload.len());
        out.extend_from_slice(&HEADER_LENGTH.to_be_bytes());
        let mut kind = [b' '; TYPE_LENGTH];
        let name = self.message_type.as_bytes();
        let n = name.len().min(TYPE_LENGTH);
        kind[..n].copy_from_slice(&name[..n]);
        out.extend_from_slice(&kind);
        out.extend_from_slice(&SCHEMA_VERSION.to_be_bytes());
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        // The plugin writes the UUID's least significant half first.
        let id = self.id.as_bytes();
        out.extend_from_slice(&id[8..]);
        out.extend_from_slice(&id[..8]);
        out.extend_from_slice(&Sha256::digest(&self.payload));
        out.extend_from_slice(&self.payload_type.to_wire().to_be_bytes());
        // INVARIANT: payloads are built here from chunks of at most a few KiB.
        let length = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Reads a message the service sent, refusing any whose lengths or digest do not hold.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let header = bytes
            .get(..PAYLOAD_OFFSET)
            .ok_or(MessageError::Short(bytes.len()))?;
        let u32_at = |at: usize| u32::from_be_bytes(fixed(&header[at..at + 4]));
        let u64_at = |at: usize| u64::from_be_bytes(fixed(&header[at..at + 8]));
        let header_length = u32_at(0);
        if header_length != HEADER_LENGTH {
            return Err(MessageError::HeaderLength(header_length));
        }
        let message_type = std::str::from_utf8(&header[4..36])
            .ok()
            .filter(|name| name.is_ascii())
            .ok_or(MessageError::Type)?
            .trim_end_matches([' ', '\0'])
            .to_owned();
        let payload = &bytes[PAYLOAD_OFFSET..];
        let said = u32_at(116);
        if usize::try_from(said).ok() != Some(payload.len()) {
            return Err(MessageError::PayloadLength {
                said,
                found: payload.len(),
            });
        }
        if Sha256::digest(payload).as_slice() != &header[80..112] {
            return Err(MessageError::Digest);
        }
        let mut id = [0; 16];
        id[..8].copy_from_slice(&header[72..80]);
        id[8..].copy_from_slice(&header[64..72]);
        Ok(Self {
            message_type,
            created_ms: u64_at(40),
            sequence: i64::from_be_bytes(fixed(&header[48..56])),
            flags: u64_at(56),
            id: Uuid::from_bytes(id),
            payload_type: PayloadType::from_wire(u32_at(112)),
            payload: payload.to_vec(),
        })
    }
}

/// A slice of known length as an array (the header's offsets are constants).
fn fixed<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(slice);
    out
}

/// The acknowledgement of a received stream message: the plugin's `AcknowledgeContent`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Acknowledgement {
    pub acknowledged_message_type: String,
    pub acknowledged_message_id: String,
    pub acknowledged_message_sequence_number: i64,
    pub is_sequential_message: bool,
}

/// The acknowledge message for `message`: not sequenced, with SYN and FIN set as the plugin does.
pub fn acknowledgement(message: &Message) -> Message {
    let content = Acknowledgement {
        acknowledged_message_type: message.message_type.clone(),
        acknowledged_message_id: message.id.to_string(),
        acknowledged_message_sequence_number: message.sequence,
        is_sequential_message: true,
    };
    let payload = serde_json::to_vec(&content).unwrap_or_default();
    Message::new(ACKNOWLEDGE, 0, 3, PayloadType::Output, payload)
}

/// The sequence number an acknowledge message acknowledges, if it is one.
pub fn acknowledged(message: &Message) -> Option<i64> {
    serde_json::from_slice::<Acknowledgement>(&message.payload)
        .ok()
        .map(|a| a.acknowledged_message_sequence_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_its_wire_form_and_puts_the_uuid_halves_swapped() {
        let mut message = Message::new(INPUT, 7, 0, PayloadType::Output, b"hi".to_vec());
        message.id = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        let wire = message.encode();
        assert_eq!(wire.len(), 122);
        assert_eq!(
            hex::encode(&wire[64..80]),
            "8899aabbccddeeff0011223344556677"
        );
        assert_eq!(
            hex::encode(&wire[80..84]),
            "8f434346",
            "SHA-256 of the payload"
        );
        assert_eq!(Message::decode(&wire), Ok(message));
    }

    #[test]
    fn a_damaged_message_is_refused() {
        let wire = Message::new(OUTPUT, 1, 0, PayloadType::Output, b"data".to_vec()).encode();
        let mut flipped = wire.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(Message::decode(&flipped), Err(MessageError::Digest));
        assert_eq!(
            Message::decode(&wire[..wire.len() - 1]),
            Err(MessageError::PayloadLength { said: 4, found: 3 })
        );
        assert_eq!(Message::decode(&wire[..50]), Err(MessageError::Short(50)));
        let mut long = wire;
        long[3] = 117;
        assert_eq!(Message::decode(&long), Err(MessageError::HeaderLength(117)));
    }

    #[test]
    fn an_acknowledgement_names_the_sequence_number() {
        let message = Message::new(OUTPUT, 42, 0, PayloadType::Output, vec![1]);
        let ack = acknowledgement(&message);
        assert_eq!((ack.message_type.as_str(), ack.flags), (ACKNOWLEDGE, 3));
        assert_eq!(acknowledged(&ack), Some(42));
    }

    proptest::proptest! {
        /// A message damaged anywhere is refused or read as exactly what the bytes say (the
        /// schema version and the type's padding aside, which are not kept); never a panic.
        #[test]
        fn damaged_messages_never_panic(at in 0usize..130, value: u8, cut in 0usize..140) {
            let mut wire = Message::new(OUTPUT, 3, 0, PayloadType::Output, vec![7; 10]).encode();
            if let Some(byte) = wire.get_mut(at) {
                *byte = value;
            }
            wire.truncate(cut);
            if let Ok(message) = Message::decode(&wire) {
                proptest::prop_assert_eq!(&message.payload[..], &wire[120..]);
                proptest::prop_assert_eq!(&message.sequence.to_be_bytes()[..], &wire[48..56]);
                proptest::prop_assert_eq!(&message.encode()[40..], &wire[40..]);
            }
        }
    }
}
