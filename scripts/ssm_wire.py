"""Session Manager's data-channel wire format, the agent's side, written for the emulator from
the protocol's description (AWS's open-source session-manager-plugin and amazon-ssm-agent
document it in their sources), not from ecsrdp's Rust: two independent implementations that
must meet.

A message: a big-endian header, then the payload.

    offset  field            size
         0  HeaderLength     4    (116: the offset of PayloadLength)
         4  MessageType      32   ASCII, space-padded
        36  SchemaVersion    4
        40  CreatedDate      8    milliseconds since the epoch
        48  SequenceNumber   8    signed
        56  Flags            8    bit 0 SYN, bit 1 FIN
        64  MessageId        16   a UUID's bytes 8..16, then 0..8
        80  PayloadDigest    32   SHA-256 of the payload
       112  PayloadType      4
       116  PayloadLength    4
       120  Payload

smux v1 frames (github.com/xtaci/smux), inside Output payloads: version (1), command (0 SYN,
1 FIN, 2 PSH, 3 NOP), length (2 bytes, little-endian), stream ID (4 bytes, little-endian), data.

`python3 scripts/ssm_wire.py decode FILE` prints a message's fields as JSON (the payload in
hex); `python3 scripts/ssm_wire.py encode JSON FILE` writes one: what tests/ssm.rs holds the two
implementations to.
"""

import hashlib
import json
import struct
import sys
import time
import uuid

HEADER_LENGTH = 116
TYPE_LENGTH = 32

OUTPUT = 1
HANDSHAKE_REQUEST = 5
HANDSHAKE_RESPONSE = 6
HANDSHAKE_COMPLETE = 7
FLAG = 10

SMUX_SYN, SMUX_FIN, SMUX_PSH, SMUX_NOP = 0, 1, 2, 3


class WireError(Exception):
    """A message that breaks the format: the emulator refuses it, as the agent does."""


def encode(message_type, sequence, payload_type, payload, flags=0, message_id=None,
           created_ms=None):
    if len(message_type) > TYPE_LENGTH:
        raise WireError("message type too long")
    message_id = message_id or uuid.uuid4()
    raw = message_id.bytes
    created_ms = int(time.time() * 1000) if created_ms is None else created_ms
    header = struct.pack(
        ">I32sIQqQ16s32sII",
        HEADER_LENGTH,
        message_type.encode("ascii").ljust(TYPE_LENGTH, b" "),
        1,
        created_ms,
        sequence,
        flags,
        raw[8:] + raw[:8],
        hashlib.sha256(payload).digest(),
        payload_type,
        len(payload),
    )
    return header + payload


def decode(data):
    """The message's fields; raises WireError for anything the agent would not accept."""
    if len(data) < HEADER_LENGTH + 4:
        raise WireError(f"{len(data)} bytes: shorter than a header")
    (header_length,) = struct.unpack_from(">I", data, 0)
    if header_length != HEADER_LENGTH:
        raise WireError(f"header length {header_length}")
    kind, schema, created, sequence, flags, raw_id, digest, payload_type, length = \
        struct.unpack_from(">32sIQqQ16s32sII", data, 4)
    payload = data[HEADER_LENGTH + 4:]
    if len(payload) != length:
        raise WireError(f"payload length {length}, {len(payload)} bytes follow")
    if hashlib.sha256(payload).digest() != digest:
        raise WireError("payload digest does not match")
    try:
        name = kind.decode("ascii").rstrip(" \0")
    except UnicodeDecodeError as error:
        raise WireError("message type not ASCII") from error
    return {
        "message_type": name,
        "schema_version": schema,
        "created_ms": created,
        "sequence": sequence,
        "flags": flags,
        "message_id": str(uuid.UUID(bytes=raw_id[8:] + raw_id[:8])),
        "payload_type": payload_type,
        "payload": payload,
    }


def acknowledgement(message):
    """The agent's acknowledgement of a decoded message of the client's."""
    body = json.dumps({
        "AcknowledgedMessageType": message["message_type"],
        "AcknowledgedMessageId": message["message_id"],
        "AcknowledgedMessageSequenceNumber": message["sequence"],
        "IsSequentialMessage": True,
    }).encode()
    return encode("acknowledge", 0, 0, body, flags=3)


def smux_frame(command, stream, data=b""):
    return struct.pack("<BBHI", 1, command, len(data), stream) + data


def smux_frames(buffer):
    """Whole frames at the start of `buffer` (a bytearray, consumed), as (command, stream,
    data)."""
    frames = []
    while len(buffer) >= 8:
        version, command, length, stream = struct.unpack_from("<BBHI", buffer, 0)
        if version != 1 or command > SMUX_NOP:
            raise WireError(f"smux version {version}, command {command}")
        if len(buffer) < 8 + length:
            break
        frames.append((command, stream, bytes(buffer[8:8 + length])))
        del buffer[:8 + length]
    return frames


def main(argv):
    if argv[1:2] == ["decode"]:
        with open(argv[2], "rb") as file:
            message = decode(file.read())
        message["payload"] = message["payload"].hex()
        print(json.dumps(message, sort_keys=True))
    elif argv[1:2] == ["encode"]:
        fields = json.loads(argv[2])
        data = encode(fields["message_type"], fields["sequence"], fields["payload_type"],
                      bytes.fromhex(fields["payload"]), fields.get("flags", 0),
                      uuid.UUID(fields["message_id"]), fields.get("created_ms"))
        with open(argv[3], "wb") as file:
            file.write(data)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
