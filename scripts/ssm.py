"""Systems Manager Session Manager for the emulator: the four API actions moto lacks, and an
SSM agent's side of the data channel, forwarding port sessions to real RDP servers.

Written from the protocol's description (AWS's open-source session-manager-plugin and
amazon-ssm-agent define it in their sources), with the wire format in ssm_wire.py: never from
ecsrdp's Rust, so that two independent implementations meet.

API (JSON, as SSM answers): DescribeInstanceInformation (the instances the --ssm file names, with
their ping status and agent version), StartSession (only AWS-StartPortForwardingSession, only to
an online instance; TargetNotConnected otherwise), ResumeSession and TerminateSession (only the
caller's own sessions, whose IDs start with the caller's user name, as AWS's do).

The --ssm file, read on every call: {"i-...": {"ping": "Online", "agent": "3.3.40.0", ...}}, with
optional faults: "drop", "duplicate", "reorder" (each a probability, for every message either
way), "close_after" (seconds until the service closes the stream, as it does after about an
hour), "kms" (a key ARN the account's preferences demand), "port_error" (the agent cannot
reach the port), "chunk" (bytes of output per message, 1024 unless said).

Data channel: a WebSocket at /v1/data-channel/<session-id>. The client's first frame is a text
OpenDataChannelInput holding the session's token; then binary messages only. The agent sends
its handshake request, expects the client's response, completes the handshake, and carries the
port's bytes, in smux v1 frames when the agent version and the client version allow (agent
after 3.0.196.0 and client 1.1.70 on), else as they are. It checks every header, digest, sequence
number and acknowledgement; anything wrong is a violation: logged, and the stream is closed.
Every message is acknowledged and resent until acknowledged, in both directions.

Events (one JSON object per line) go to the --ssm-log file: started, opened, handshake,
resent, violation, terminated, closed, and bytes (the port's bytes each way and the seconds the
channel lasted); tests read them.
"""

import asyncio
import contextvars
import json
import random
import secrets
import threading
import time
import uuid
from urllib.parse import urlsplit

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.iam.access_control import IAMPolicyStatement
from moto.ssm.responses import SimpleSystemManagerResponse
from websockets.datastructures import Headers
from websockets.http11 import Response

import eice
import ssm_wire as wire
import strict

DOCUMENT = "AWS-StartPortForwardingSession"
SMUX_AGENT = (3, 0, 196, 0)  # agents after it multiplex (the plugin compares strictly)
SMUX_CLIENT = (1, 1, 70, 0)
# Multiplexing agents up to this one run smux with its keepalive on: a session that sent no
# frame for 30 s (the "smux_timeout" fault shortens it) is closed.
NO_KEEPALIVE_AGENT = (3, 1, 1511, 0)
RESEND_AFTER = 0.3
# Resends before a message counts as never acknowledged: with a tenth of the messages lost each
# way, ten losses in a row happen once in ten million.
GIVE_UP = 10
WINDOW = 256

SSM_FILE = None
LOG_FILE = None
STREAM_PORT = None
SESSIONS: dict[str, dict] = {}  # session id -> {instance, port, token, owner, terminated}
LOCK = threading.Lock()


def managed() -> dict:
    try:
        with open(SSM_FILE, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, TypeError):
        return {}


def log(event: str, **fields) -> None:
    if LOG_FILE is None:
        return
    with LOCK, open(LOG_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": event, **fields}) + "\n")


def version(text: str) -> tuple:
    parts = [int(p) if p.isdigit() else 0 for p in text.split(".")]
    return tuple((parts + [0, 0, 0, 0])[:4])


# ---- API ------------------------------------------------------------------------------------

class SsmError(JsonRESTError):
    code = 400


def caller_variables(response) -> dict[str, str]:
    """The caller's policy variables, `aws:username` and `aws:userid`, when it is an IAM user
    a test made; else none."""
    header = response.headers.get("Authorization", "")
    access_key = header.partition("Credential=")[2].split("/", 1)[0]
    key = eice.iam_user(access_key) if access_key else None
    if key is None:
        return {}
    name = key._owner_user_name
    return {"aws:username": name, "aws:userid": key.backend.get_user(name).id}


def caller(response) -> str:
    """The caller's IAM user name (its sessions are named after it, as AWS names them), or
    "ecsrdp"."""
    return caller_variables(response).get("aws:username", "ecsrdp")


# moto judges every call against the resource "*" and knows no policy variables, so a policy
# scoped as AWS's guide scopes Session Manager (instances, the document, the caller's own
# sessions) would be refused everything. The SSM calls are judged here against the resources
# AWS names for them, with the caller's variables substituted.
POLICY_VARIABLES = contextvars.ContextVar("policy_variables", default={})
_moto_match = IAMPolicyStatement._match


def _match_with_variables(pattern: str, string: str):
    for name, value in POLICY_VARIABLES.get().items():
        pattern = pattern.replace("${" + name + "}", value)
    return _moto_match(pattern, string)


def resources(response) -> list[str]:
    """The ARNs AWS authorizes an SSM call against."""
    action = response.headers.get("X-Amz-Target", "").rpartition(".")[2]
    region, account = response.region, response.current_account
    if action == "StartSession":
        document = response._get_param("DocumentName") or "SSM-SessionManagerRunShell"
        return [f"arn:aws:ec2:{region}:{account}:instance/{response._get_param('Target')}",
                f"arn:aws:ssm:{region}::document/{document}"]
    if action in ("TerminateSession", "ResumeSession"):
        return [f"arn:aws:ssm:{region}:{account}:session/{response._get_param('SessionId')}"]
    return ["*"]


def authorizing(original):
    def authorize(self, resource: str = "*") -> None:
        token = POLICY_VARIABLES.set(caller_variables(self))
        try:
            for arn in resources(self):
                original(self, arn)
        finally:
            POLICY_VARIABLES.reset(token)
    return authorize


def describe_instance_information(self) -> ActionResult:
    wanted = []
    for f in self._get_param("Filters") or []:
        if f.get("Key") == "InstanceIds":
            wanted.extend(f.get("Values", []))
    for f in self._get_param("InstanceInformationFilterList") or []:
        if f.get("key") == "InstanceIds":
            wanted.extend(f.get("valueSet", []))
    known = managed()
    items = []
    for instance_id, agent in known.items():
        if wanted and instance_id not in wanted:
            continue
        items.append({
            "InstanceId": instance_id,
            "PingStatus": agent.get("ping", "Online"),
            "AgentVersion": agent.get("agent", "3.3.40.0"),
            "IsLatestVersion": True,
            "PlatformType": "Windows",
            "PlatformName": "Microsoft Windows Server 2022 Datacenter",
            "ResourceType": "EC2Instance",
        })
    return ActionResult({"InstanceInformationList": items})


def start_session(self) -> ActionResult:
    target = self._get_param("Target")
    document = self._get_param("DocumentName") or "SSM-SessionManagerRunShell"
    parameters = self._get_param("Parameters") or {}
    if document != DOCUMENT:
        raise SsmError("InvalidDocument", f"document {document} is not served by this emulator")
    ports = parameters.get("portNumber", [])
    if len(ports) != 1 or not ports[0].isdigit():
        raise SsmError("InvalidParameters", "portNumber must be one port number")
    agent = managed().get(target)
    backend = ec2_backends[self.current_account][self.region]
    try:
        backend.get_instance(target)
    except Exception:
        agent = None
    if agent is None or agent.get("ping", "Online") != "Online":
        raise SsmError("TargetNotConnected", f"{target} is not connected.")
    session_id = f"{caller(self)}-{secrets.token_hex(8)}"
    token = secrets.token_urlsafe(48)
    with LOCK:
        SESSIONS[session_id] = {"instance": target, "port": int(ports[0]), "token": token,
                                "terminated": False, "region": self.region}
    log("started", session=session_id, instance=target)
    return ActionResult({"SessionId": session_id, "TokenValue": token,
                         "StreamUrl": stream_url(session_id)})


def stream_url(session_id: str) -> str:
    return f"ws://127.0.0.1:{STREAM_PORT}/v1/data-channel/{session_id}?role=publish_subscribe"


def own_session(self, session_id: str) -> dict:
    session = SESSIONS.get(session_id)
    if session is None or not session_id.startswith(caller(self) + "-"):
        raise SsmError("DoesNotExistException", f"session {session_id} does not exist")
    return session


def resume_session(self) -> ActionResult:
    session_id = self._get_param("SessionId")
    session = own_session(self, session_id)
    if session["terminated"]:
        raise SsmError("DoesNotExistException", f"session {session_id} was terminated")
    session["token"] = secrets.token_urlsafe(48)
    return ActionResult({"SessionId": session_id, "TokenValue": session["token"],
                         "StreamUrl": stream_url(session_id)})


def terminate_session(self) -> ActionResult:
    session_id = self._get_param("SessionId")
    session = own_session(self, session_id)
    session["terminated"] = True
    log("terminated", session=session_id)
    return ActionResult({"SessionId": session_id})


def install_api(ssm_file: str | None, log_file: str | None) -> None:
    global SSM_FILE, LOG_FILE
    SSM_FILE, LOG_FILE = ssm_file, log_file
    # SSM speaks JSON too: refusals as AccessDeniedException, as for ECS.
    SimpleSystemManagerResponse._authenticate_and_authorize_normal_action = \
        strict.json_access_denied(authorizing(
            SimpleSystemManagerResponse._authenticate_and_authorize_normal_action))
    IAMPolicyStatement._match = staticmethod(_match_with_variables)
    for action in (describe_instance_information, start_session, resume_session,
                   terminate_session):
        setattr(SimpleSystemManagerResponse, action.__name__, action)


# ---- Data channel ---------------------------------------------------------------------------

class Violation(Exception):
    """The client broke the protocol."""


class Channel:
    """The agent's end of one data channel."""

    def __init__(self, ws, session_id: str, session: dict, agent: dict):
        self.ws = ws
        self.session_id = session_id
        self.session = session
        self.agent = agent
        self.rng = random.Random(agent.get("seed", 1))
        self.out_seq = 0
        self.pending: dict[int, list] = {}  # seq -> [wire, message id, last sent, resends]
        self.acked_below = 0
        self.in_expected = 0
        self.early: dict[int, dict] = {}
        self.held = None
        self.handshaken = False
        self.smux = False
        self.smux_buffer = bytearray()
        self.stream_id = None
        self.writer = None
        self.reader_task = None
        self.window_open = asyncio.Event()
        self.window_open.set()
        self.chunk = int(agent.get("chunk", 1024))
        # The port's bytes each way, and since when: what `bytes` reports at the end.
        self.down = 0
        self.up = 0
        self.since = time.monotonic()
        self.last_frame = time.monotonic()
        agent_version = version(agent.get("agent", "3.3.40.0"))
        self.keepalive = SMUX_AGENT < agent_version <= NO_KEEPALIVE_AGENT
        self.smux_timeout = float(agent.get("smux_timeout", 30))

    # -- sending, with faults --

    async def transmit(self, data: bytes) -> None:
        roll = self.rng.random()
        drop = self.agent.get("drop", 0)
        duplicate = drop + self.agent.get("duplicate", 0)
        reorder = duplicate + self.agent.get("reorder", 0)
        if roll < drop:
            return
        if roll < duplicate:
            await self.ws.send(data)
        elif roll < reorder and self.held is None:
            self.held = data
            return
        await self.ws.send(data)
        await self.release_held()

    async def release_held(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            await self.ws.send(held)

    async def send_stream(self, payload_type: int, payload: bytes, flags: int = 0) -> None:
        message_id = uuid.uuid4()
        data = wire.encode("output_stream_data", self.out_seq, payload_type, payload,
                           flags=flags, message_id=message_id)
        self.pending[self.out_seq] = [data, str(message_id), time.monotonic(), 0]
        self.out_seq += 1
        if len(self.pending) >= WINDOW:
            self.window_open.clear()
        await self.transmit(data)

    async def resend_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            await self.release_held()
            now = time.monotonic()
            for seq, entry in sorted(self.pending.items()):
                if now - entry[2] >= RESEND_AFTER:
                    entry[2] = now
                    entry[3] += 1
                    if entry[3] > GIVE_UP:
                        # Sent and lost that often, for 3 s: the client is not acknowledging.
                        detail = f"message {seq} resent {GIVE_UP} times, never acknowledged"
                        log("violation", session=self.session_id, detail=detail)
                        await self.ws.close(1002, detail)
                        return
                    log("resent", session=self.session_id, sequence=seq)
                    await self.transmit(entry[0])
            if self.smux and self.keepalive and now - self.last_frame > self.smux_timeout:
                detail = f"no smux frame for {self.smux_timeout:g} s: the keepalive timed out"
                log("violation", session=self.session_id, detail=detail)
                await self.ws.close(1002, detail)
                return
            if self.session["terminated"]:
                closed = json.dumps({"MessageType": "channel_closed", "SessionId": self.session_id,
                                     "Output": "Session terminated", "SchemaVersion": 1}).encode()
                await self.ws.send(wire.encode("channel_closed", 0, 0, closed))
                await self.ws.close(1000, "session terminated")
                return

    # -- receiving --

    async def run(self) -> None:
        first = await self.ws.recv()
        if not isinstance(first, str):
            raise Violation("the first frame is not the text OpenDataChannelInput")
        opening = json.loads(first)
        for field in ("MessageSchemaVersion", "RequestId", "TokenValue", "ClientId"):
            if field not in opening:
                raise Violation(f"OpenDataChannelInput has no {field}")
        if opening["MessageSchemaVersion"] != "1.0":
            raise Violation(f"schema {opening['MessageSchemaVersion']}")
        uuid.UUID(opening["RequestId"])
        if opening["TokenValue"] != self.session["token"]:
            await self.ws.close(1008, "invalid token")
            log("refused", session=self.session_id, reason="token")
            return
        self.client_version = opening.get("ClientVersion", "")
        log("opened", session=self.session_id)
        actions = [{"ActionType": "SessionType", "ActionParameters": {
            "SessionType": "Port", "Properties": {"portNumber": str(self.session["port"]),
                                                  "type": "LocalPortForwarding"}}}]
        if self.agent.get("kms"):
            actions.append({"ActionType": "KMSEncryption",
                            "ActionParameters": {"KMSKeyId": self.agent["kms"]}})
        request = {"AgentVersion": self.agent.get("agent", "3.3.40.0"),
                   "RequestedClientActions": actions}
        await self.send_stream(wire.HANDSHAKE_REQUEST, json.dumps(request).encode())
        resender = asyncio.create_task(self.resend_loop())
        closer = None
        if self.agent.get("close_after"):
            closer = asyncio.create_task(self.close_after(float(self.agent["close_after"])))
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    raise Violation("a text frame after the opening")
                try:
                    message = wire.decode(frame)
                except wire.WireError as error:
                    raise Violation(str(error)) from error
                if message["schema_version"] != 1:
                    raise Violation(f"schema version {message['schema_version']}")
                if self.rng.random() < self.agent.get("drop", 0):
                    continue  # lost on the way: the client must send it again
                if message["message_type"] == "acknowledge":
                    self.acknowledged(message)
                elif message["message_type"] == "input_stream_data":
                    await self.arrive(message)
                else:
                    raise Violation(f"message type {message['message_type']!r}")
        finally:
            log("bytes", session=self.session_id, down=self.down, up=self.up,
                seconds=round(time.monotonic() - self.since, 3))
            resender.cancel()
            if closer:
                closer.cancel()
            if self.reader_task:
                self.reader_task.cancel()
            if self.writer:
                self.writer.close()

    async def close_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        log("closed", session=self.session_id, reason="close_after")
        await self.ws.close(1000, "Bye")

    def acknowledged(self, message: dict) -> None:
        try:
            content = json.loads(message["payload"])
            seq = content["AcknowledgedMessageSequenceNumber"]
            message_id = content["AcknowledgedMessageId"]
            kind = content["AcknowledgedMessageType"]
        except (ValueError, KeyError) as error:
            raise Violation(f"an acknowledgement without {error}") from error
        if kind != "output_stream_data":
            raise Violation(f"an acknowledgement of {kind!r}")
        entry = self.pending.get(seq)
        if entry is None:
            if seq >= self.out_seq:
                raise Violation(f"an acknowledgement of {seq}, never sent")
            return  # a repeat
        if entry[1] != message_id:
            raise Violation(f"an acknowledgement of {seq} names message {message_id}, "
                            f"not {entry[1]}")
        del self.pending[seq]
        if len(self.pending) < WINDOW // 2:
            self.window_open.set()

    async def arrive(self, message: dict) -> None:
        seq = message["sequence"]
        if seq < 0:
            raise Violation(f"sequence number {seq}")
        if message["flags"] not in (0, 1, 2, 3):
            raise Violation(f"flags {message['flags']}")
        await self.transmit(wire.acknowledgement(message))
        if seq < self.in_expected or seq in self.early:
            return
        if seq > self.in_expected:
            if seq > self.in_expected + 10_000:
                raise Violation(f"sequence number {seq}, expecting {self.in_expected}")
            self.early[seq] = message
            return
        self.in_expected += 1
        await self.handle(message)
        while self.in_expected in self.early:
            following = self.early.pop(self.in_expected)
            self.in_expected += 1
            await self.handle(following)

    async def handle(self, message: dict) -> None:
        kind, payload = message["payload_type"], message["payload"]
        if not self.handshaken:
            if kind != wire.HANDSHAKE_RESPONSE:
                raise Violation(f"payload type {kind} before the handshake response")
            response = json.loads(payload)
            processed = {a.get("ActionType"): a.get("ActionStatus")
                         for a in response.get("ProcessedClientActions", [])}
            if processed.get("SessionType") != 1 or "ClientVersion" not in response:
                raise Violation(f"handshake response {response}")
            self.handshaken = True
            self.smux = (version(self.agent.get("agent", "3.3.40.0")) > SMUX_AGENT
                         and version(response["ClientVersion"]) >= SMUX_CLIENT)
            log("handshake", session=self.session_id, smux=self.smux,
                client=response["ClientVersion"])
            complete = {"HandshakeTimeToComplete": 1000000, "CustomerMessage": ""}
            await self.send_stream(wire.HANDSHAKE_COMPLETE, json.dumps(complete).encode())
            if not self.smux:
                await self.connect()
            return
        if kind == wire.FLAG:
            if payload[:4] == (1).to_bytes(4, "big") and self.writer:
                self.writer.close()  # DisconnectToPort
            return
        if kind != wire.OUTPUT:
            raise Violation(f"payload type {kind}")
        if not self.smux:
            if self.writer:
                self.up += len(payload)
                self.writer.write(payload)
            return
        self.smux_buffer.extend(payload)
        try:
            frames = wire.smux_frames(self.smux_buffer)
        except wire.WireError as error:
            raise Violation(str(error)) from error
        for command, stream, data in frames:
            self.last_frame = time.monotonic()
            if command == wire.SMUX_SYN:
                if stream % 2 != 1:
                    raise Violation(f"a client's smux stream {stream} is even")
                self.stream_id = stream
                await self.connect()
            elif stream != self.stream_id and command != wire.SMUX_NOP:
                raise Violation(f"smux stream {stream} was never opened")
            elif command == wire.SMUX_PSH and self.writer:
                self.up += len(data)
                self.writer.write(data)
            elif command == wire.SMUX_FIN and self.writer:
                self.writer.close()

    async def connect(self) -> None:
        target = None if self.agent.get("port_error") else \
            eice.route(self.instance_private_ip())
        try:
            if target is None:
                raise OSError("no route")
            reader, self.writer = await asyncio.open_connection(*target)
        except OSError:
            await self.send_stream(wire.FLAG, (3).to_bytes(4, "big"))  # ConnectToPortError
            return
        self.reader_task = asyncio.create_task(self.downstream(reader))

    def instance_private_ip(self) -> str:
        for backend in ec2_backends.values():
            regional = backend.get(self.session["region"])
            if regional is None:
                continue
            try:
                return regional.get_instance(self.session["instance"]).private_ip
            except Exception:
                continue
        return ""

    async def downstream(self, reader) -> None:
        while True:
            data = await reader.read(32 * 1024)
            self.down += len(data)
            if self.smux:
                out = bytearray()
                if data:
                    out += wire.smux_frame(wire.SMUX_PSH, self.stream_id, data)
                else:
                    out += wire.smux_frame(wire.SMUX_FIN, self.stream_id)
            else:
                out = bytearray(data)
            for at in range(0, len(out), self.chunk):
                await self.window_open.wait()
                await self.send_stream(wire.OUTPUT, bytes(out[at:at + self.chunk]))
            if not data:
                return


async def process_request(connection, request):
    parts = urlsplit(request.path)
    session_id = parts.path.rpartition("/")[2]
    session = SESSIONS.get(session_id)
    if not parts.path.startswith("/v1/data-channel/") or session is None or \
            session["terminated"]:
        body = json.dumps({"message": "session not found"}).encode()
        return Response(403, "Forbidden", Headers({"Content-Type": "application/json"}), body)
    connection.session_id = session_id
    return None


async def data_channel(ws) -> None:
    session_id = ws.session_id
    session = SESSIONS[session_id]
    agent = managed().get(session["instance"], {})
    channel = Channel(ws, session_id, session, agent)
    try:
        await channel.run()
    except Violation as violation:
        log("violation", session=session_id, detail=str(violation))
        await ws.close(1002, f"protocol violation: {violation}"[:120])
    except Exception as error:  # a closed connection mid-send, mostly
        log("ended", session=session_id, detail=repr(error))


def start_stream_server() -> int:
    """Serves data channels on a free port in a thread of its own; returns the port."""
    global STREAM_PORT
    STREAM_PORT = eice.serve_in_thread(data_channel, process_request)
    return STREAM_PORT
