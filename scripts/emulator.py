"""Local AWS emulator (moto) for ecsrdp's end-to-end tests.

Runs moto's server on 127.0.0.1 with one patch: EC2 GetPasswordData.  Stock
moto answers it with a random 128-character string that nobody can decrypt, so
the client's whole "fetch the Windows Administrator password" path could never
be exercised.  Patched, it behaves like AWS: PasswordData is the base64 of the
password RSA-encrypted (PKCS#1 v1.5) to the public key of the instance's key
pair.  The passwords themselves never pass through the AWS API (a tag would show
up in every DescribeInstances answer, and so in ecsrdp's trace logs): they come
out of band, from the JSON file named by --passwords ({"i-...": "password"}),
which scripts/seed.py writes and which is read again on every call.  An
instance without an entry yields "" (AWS: "password not available yet"), as do
instances without a key pair, non-Windows instances and non-RSA (ed25519) keys,
which cannot be encrypted to (real EC2 refuses ed25519 keys for Windows AMIs).

ECS and EC2 are made as strict as AWS where moto is not (scripts/strict.py):
paged ListContainerInstances with its `filter`, at most 100 instances per
DescribeContainerInstances, at most 200 values in a DescribeInstances filter.  It also emulates EC2 Instance Connect Endpoints (scripts/eice.py): the two
API actions moto lacks, and a WebSocket tunnel service that checks each
presigned URL with botocore's SigV4 and forwards to the servers the --routes
file names ({"private IP": "127.0.0.1:PORT"}).

Systems Manager Session Manager (scripts/ssm.py): DescribeInstanceInformation, StartSession,
ResumeSession and TerminateSession for the instances the --ssm file makes managed, and an SSM
agent's data channel that forwards port sessions like the EICE tunnels (the --routes file).

GetConsoleOutput answers with the system log the --console file gives an instance
({"i-...": "text"}), so that tests can have EC2Launch's RDPCERTIFICATE-THUMBPRINT line
name the certificate their server presents (moto gives every instance one Linux log).

Usage: python scripts/emulator.py --passwords FILE [--console FILE] [--routes FILE] [--port N]
                                  [--ssm FILE] [--ssm-log FILE] [--verbose] [--exit-with-stdin]
Prints `ecsrdp-emulator listening on http://127.0.0.1:PORT` once ready, then
`ecsrdp-emulator eice on ws://127.0.0.1:PORT` (point the client there with
AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT), then serves until SIGTERM/SIGINT.  Request logging is off unless --verbose, so a
parent that never drains our stderr can't block the server on a full pipe.
"""

import argparse
import base64
import json
import logging
import signal
import sys
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from moto.core.responses import ActionResult
from moto.core.types import Base64EncodedString
from moto.core.utils import utcnow
from moto.ec2.models.windows import WindowsBackend
from moto.ec2.responses import EC2Response
from moto.server import ThreadedMotoServer

import strict
import eice
import ssm

PASSWORDS_FILE = None  # set from --passwords in main()
CONSOLE_FILE = None  # set from --console in main()


def stored_password(instance_id: str) -> str:
    """The password seed.py gave this instance, or "" (not ready) when it has none."""
    try:
        with open(PASSWORDS_FILE, encoding="utf-8") as f:
            return json.load(f).get(instance_id, "")
    except FileNotFoundError:
        return ""


def get_password_data(self, instance_id: str) -> str:
    """Replacement for WindowsBackend.get_password_data (self: the EC2 backend)."""
    instance = self.get_instance(instance_id)  # raises InvalidInstanceID.NotFound
    if instance.platform != "windows" or not instance.key_name:
        return ""
    password = stored_password(instance_id)
    key_pair = self.key_pairs.get(instance.key_name)
    if not password or key_pair is None:
        return ""
    # material_public is the OpenSSH public key for both CreateKeyPair- and
    # ImportKeyPair-made pairs (moto normalises neither; RFC4716 imports are
    # converted).  Fall back to the private PEM CreateKeyPair keeps.
    try:
        public_key = serialization.load_ssh_public_key(key_pair.material_public)
    except (ValueError, TypeError):
        public_key = serialization.load_pem_private_key(key_pair.material, None).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return ""
    ciphertext = public_key.encrypt(password.encode("utf-8"), padding.PKCS1v15())
    return base64.b64encode(ciphertext).decode("ascii")


def stored_console(instance_id: str) -> str:
    """The system log the tests gave this instance, or "" when it has none."""
    if CONSOLE_FILE is None:
        return ""
    try:
        with open(CONSOLE_FILE, encoding="utf-8") as f:
            return json.load(f).get(instance_id, "")
    except FileNotFoundError:
        return ""


def get_console_output(self) -> ActionResult:
    """Replacement for EC2Response.get_console_output: moto answers every instance with one
    Linux boot log; this answers with the text --console gives the instance (base64, as AWS
    does), or without output at all, as AWS does before an instance has written any."""
    instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
    result = {"InstanceId": instance.id, "Timestamp": utcnow()}
    text = stored_console(instance.id)
    if text:
        result["Output"] = Base64EncodedString.from_raw_string(text)
    return ActionResult(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passwords", required=True,
                        help="JSON file of instance ID -> password, written by seed.py")
    parser.add_argument("--console", default=None,
                        help="JSON file of instance ID -> system log text (GetConsoleOutput)")
    parser.add_argument("--routes", default="/dev/null/none",
                        help="JSON file of private IP -> host:port for EICE tunnels")
    parser.add_argument("--ssm", default=None,
                        help="JSON file of instance ID -> its SSM agent (see scripts/ssm.py)")
    parser.add_argument("--ssm-log", default=None,
                        help="file the data channels append their events to, one JSON per line")
    parser.add_argument("--tunnel-secret", action="append", default=["testing=testing"],
                        metavar="KEY=SECRET",
                        help="an access key the tunnel service accepts, with its secret")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="stop when stdin closes, so a test that dies never leaves the server behind",
    )
    args = parser.parse_args()

    global PASSWORDS_FILE, CONSOLE_FILE
    PASSWORDS_FILE = args.passwords
    CONSOLE_FILE = args.console
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.ERROR)
    WindowsBackend.get_password_data = get_password_data
    # Before strict.install(), which wraps it to refuse a deny-GetConsoleOutput key.
    EC2Response.get_console_output = get_console_output
    eice.install_api()
    ssm.install_api(args.ssm, args.ssm_log)
    strict.install()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_with_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"ecsrdp-emulator listening on http://{host}:{port}", flush=True)
    secrets = dict(item.split("=", 1) for item in args.tunnel_secret)
    tunnel_port = eice.start_tunnel_server(args.routes, secrets)
    print(f"ecsrdp-emulator eice on ws://127.0.0.1:{tunnel_port}", flush=True)
    ssm_port = ssm.start_stream_server()
    print(f"ecsrdp-emulator ssm on ws://127.0.0.1:{ssm_port}", flush=True)
    while not stop.wait(3600):
        pass
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
