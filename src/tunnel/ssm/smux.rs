//! smux version 1 frames (github.com/xtaci/smux), which current agents use to multiplex port
//! sessions inside the data stream: one stream per TCP connection. Pure: bytes in, bytes out.
//!
//! A frame: version (1), command (SYN 0, FIN 1, PSH 2, NOP 3), data length (2 bytes,
//! little-endian), stream ID (4 bytes, little-endian), data. The stream is a byte stream, so a
//! frame may span data messages and a message may hold several frames.

/// The most data one frame carries (the length field's limit is 65,535; smux's own default
/// frame size is 32 KiB).
pub const MAX_FRAME_DATA: usize = 32 * 1024;

const VERSION: u8 = 1;
const HEADER: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Syn,
    Fin,
    Psh,
    Nop,
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub stream: u32,
    pub data: Vec<u8>,
}

impl Frame {
    /// Appends the frame to `out`. INVARIANT: `data` is at most [`MAX_FRAME_DATA`] bytes.
    pub fn encode_into(command: Command, stream: u32, data: &[u8], out: &mut Vec<u8>) {
        let code = match command {
            Command::Syn => 0,
            Command::Fin => 1,
            Command::Psh => 2,
            Command::Nop => 3,
        };
        let length = u16::try_from(data.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&[VERSION, code]);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&stream.to_le_bytes());
        out.extend_from_slice(&data[..usize::from(length)]);
    }
}

/// The agent broke smux's framing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the agent sent an smux frame of version {version} and command {command}")]
pub struct SmuxError {
    pub version: u8,
    pub command: u8,
}

/// Reassembles frames from the data stream's bytes.
#[derive(Default)]
pub struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    /// Takes the next bytes of the stream and returns the frames they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, SmuxError> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some(header) = self.buffer.get(at..at + HEADER) {
            let (version, code) = (header[0], header[1]);
            let command = match (version, code) {
                (VERSION, 0) => Command::Syn,
                (VERSION, 1) => Command::Fin,
                (VERSION, 2) => Command::Psh,
                (VERSION, 3) => Command::Nop,
                _ => {
                    return Err(SmuxError {
                        version,
                        command: code,
                    })
                }
            };
            let length = usize::from(u16::from_le_bytes([header[2], header[3]]));
            let stream = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let Some(data) = self.buffer.get(at + HEADER..at + HEADER + length) else {
                break;
            };
            frames.push(Frame {
                command,
                stream,
                data: data.to_vec(),
            });
            at += HEADER + length;
        }
        self.buffer.drain(..at);
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let mut wire = Vec::new();
        Frame::encode_into(Command::Syn, 1, &[], &mut wire);
        Frame::encode_into(Command::Psh, 1, b"hello", &mut wire);
        Frame::encode_into(Command::Fin, 1, &[], &mut wire);
        assert_eq!(&wire[8..16], &[1, 2, 5, 0, 1, 0, 0, 0]);
        for cut in 0..wire.len() {
            let mut reader = Reader::default();
            let mut frames = reader.push(&wire[..cut]).unwrap();
            frames.extend(reader.push(&wire[cut..]).unwrap());
            let commands: Vec<_> = frames.iter().map(|f| f.command).collect();
            assert_eq!(
                commands,
                [Command::Syn, Command::Psh, Command::Fin],
                "cut at {cut}"
            );
            assert_eq!(frames[1].data, b"hello");
        }
    }

    #[test]
    fn a_frame_of_another_version_is_refused() {
        let mut reader = Reader::default();
        assert_eq!(
            reader.push(&[2, 2, 0, 0, 1, 0, 0, 0]),
            Err(SmuxError {
                version: 2,
                command: 2
            })
        );
    }
}
