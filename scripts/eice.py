"""EC2 Instance Connect Endpoints for the emulator: the two EC2 API actions moto lacks, and the
endpoint's WebSocket tunnel service.

API: CreateInstanceConnectEndpoint and DescribeInstanceConnectEndpoints, answered in EC2's own
XML (shapes from botocore's service model), kept in memory per region.

Tunnel: a WebSocket server in the style of `wss://<DnsName>/openTunnel`.  Each request's
presigned URL is checked with botocore's own SigV4 (an implementation independent of the Rust
client's): the credential must be one we know, the signature must match, and the URL must not
have expired (X-Amz-Date + X-Amz-Expires, 5 minutes of clock skew allowed).  A bad request is
refused before the upgrade with HTTP 403 and a JSON body, as the real service refuses bad
parameters.  An accepted tunnel connects to the instance's private address, which the routes
file (`{"10.0.1.5": "127.0.0.1:3390"}`, read on every request) maps to a real server on this
machine, and carries bytes in BINARY frames of at most 65,000 bytes; a target that cannot be
reached closes the WebSocket with code 1011, "Unable to connect to target".
"""

import asyncio
import datetime
import hmac
import json
import threading
import uuid
from urllib.parse import parse_qsl, quote, urlsplit

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.iam.access_control import (CreateAccessKeyFailure, IAMPolicy, IAMUserAccessKey,
                                     PermissionResult)
from moto.ec2.responses import EC2Response
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

MAX_FRAME = 65_000
SERVICE = "ec2-instance-connect"
USABLE = {"create-complete", "update-in-progress", "update-complete", "update-failed"}
XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"

ENDPOINTS: dict[str, dict] = {}  # endpoint id -> description (with "region")
ROUTES_FILE = None
SECRETS: dict[str, str] = {}  # access key id -> secret key the tunnel accepts


# ---- API ------------------------------------------------------------------------------------

def _item_xml(e: dict) -> str:
    groups = "".join(f"<item>{g}</item>" for g in e["securityGroupIds"])
    return (
        "<item>"
        f"<ownerId>123456789012</ownerId>"
        f"<instanceConnectEndpointId>{e['id']}</instanceConnectEndpointId>"
        f"<instanceConnectEndpointArn>arn:aws:ec2:{e['region']}:123456789012:"
        f"instance-connect-endpoint/{e['id']}</instanceConnectEndpointArn>"
        f"<state>{e['state']}</state>"
        f"<dnsName>{e['dnsName']}</dnsName>"
        f"<networkInterfaceIdSet><item>eni-{e['id'][5:]}</item></networkInterfaceIdSet>"
        f"<vpcId>{e['vpcId']}</vpcId>"
        f"<availabilityZone>{e['availabilityZone']}</availabilityZone>"
        f"<createdAt>{e['createdAt']}</createdAt>"
        f"<subnetId>{e['subnetId']}</subnetId>"
        f"<preserveClientIp>false</preserveClientIp>"
        f"<securityGroupIdSet>{groups}</securityGroupIdSet>"
        "</item>"
    )


def create_instance_connect_endpoint(self) -> str:
    backend = ec2_backends[self.current_account][self.region]
    subnet = backend.get_subnet(self._get_param("SubnetId"))  # raises InvalidSubnetID.NotFound
    groups = self._get_param("SecurityGroupIds", []) or self._get_param("SecurityGroupId", [])
    eid = "eice-" + uuid.uuid4().hex[:17]
    endpoint = {
        "id": eid, "region": self.region, "state": "create-complete",
        "dnsName": f"{eid}.ec2-instance-connect-endpoint.{self.region}.amazonaws.com",
        "vpcId": subnet.vpc_id, "subnetId": subnet.id,
        "availabilityZone": subnet.availability_zone,
        "securityGroupIds": list(groups),
        "createdAt": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"),
    }
    ENDPOINTS[eid] = endpoint
    return (
        f'<CreateInstanceConnectEndpointResponse xmlns="{XMLNS}">'
        f"<requestId>{uuid.uuid4()}</requestId>"
        f"<instanceConnectEndpoint>{_item_xml(endpoint)[6:-7]}</instanceConnectEndpoint>"
        "</CreateInstanceConnectEndpointResponse>"
    )


def describe_instance_connect_endpoints(self) -> str:
    filters = self._filters_from_querystring()
    ids = self._get_param("InstanceConnectEndpointIds", []) or \
        self._get_param("InstanceConnectEndpointId", [])
    keys = {"vpc-id": "vpcId", "state": "state", "subnet-id": "subnetId",
            "instance-connect-endpoint-id": "id"}
    items = []
    for e in ENDPOINTS.values():
        if e["region"] != self.region or (ids and e["id"] not in ids):
            continue
        if all(e.get(keys.get(name, name)) in values for name, values in filters.items()):
            items.append(_item_xml(e))
    return (
        f'<DescribeInstanceConnectEndpointsResponse xmlns="{XMLNS}">'
        f"<requestId>{uuid.uuid4()}</requestId>"
        f"<instanceConnectEndpointSet>{''.join(items)}</instanceConnectEndpointSet>"
        "</DescribeInstanceConnectEndpointsResponse>"
    )


def install_api() -> None:
    EC2Response.create_instance_connect_endpoint = create_instance_connect_endpoint
    EC2Response.describe_instance_connect_endpoints = describe_instance_connect_endpoints


# ---- Tunnel ---------------------------------------------------------------------------------

class Refusal(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_request(host: str, path: str) -> tuple[dict, str, int, int]:
    """The endpoint, private IP, port and duration limit a presigned request opens, or
    Refusal."""
    parts = urlsplit(path)
    if parts.path != "/openTunnel":
        raise Refusal("InvalidAction", f"unknown path {parts.path}")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(pairs)
    try:
        access_key, _day, region, service, _ = params["X-Amz-Credential"].split("/")
        stamp = params["X-Amz-Date"]
        expires = int(params["X-Amz-Expires"])
        signature = params["X-Amz-Signature"]
    except (KeyError, ValueError):
        raise Refusal("MissingAuthenticationToken", "the request is not presigned")
    secret = SECRETS.get(access_key)
    user = None
    if secret is None:
        user = iam_user(access_key)
        secret = user.create_credentials().secret_key if user else None
    if secret is None or service != SERVICE:
        raise Refusal("InvalidClientTokenId", "the security token included in the request is invalid")
    # botocore recomputes the signature over everything but the signature itself.
    unsigned = "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in pairs
                        if k != "X-Amz-Signature")
    request = AWSRequest(method="GET", url=f"https://{host}{parts.path}?{unsigned}",
                         headers={"host": host})
    request.context["timestamp"] = stamp
    auth = SigV4QueryAuth(Credentials(access_key, secret, params.get("X-Amz-Security-Token")),
                          SERVICE, region, expires=expires)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                              request)
    if not hmac.compare_digest(expected, signature):
        raise Refusal("SignatureDoesNotMatch", "the request signature we calculated does not "
                      "match the signature you provided")
    signed_at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    if now > signed_at + datetime.timedelta(seconds=expires) or \
            signed_at > now + datetime.timedelta(minutes=5):
        raise Refusal("ExpiredToken", "the presigned URL has expired")
    endpoint = ENDPOINTS.get(params.get("instanceConnectEndpointId", ""))
    if endpoint is None or endpoint["state"] not in USABLE or endpoint["region"] != region:
        raise Refusal("InvalidParameter", "the specified instance connect endpoint does not exist")
    port = int(params.get("remotePort", "0"))
    if port not in (22, 3389):
        raise Refusal("InvalidParameter", "The specified RemotePort is not valid. Specify "
                      "either 22 or 3389 as the RemotePort and retry your request.")
    if user is not None and not may_open_tunnel(user, port):
        raise Refusal("AccessDenied", f"User: {user.arn} is not authorized to perform: "
                      f"{SERVICE}:OpenTunnel")
    try:
        limit = int(params.get("maxTunnelDuration", "3600"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 3600:
        raise Refusal("InvalidParameter", "maxTunnelDuration must be between 1 and 3600")
    return endpoint, params.get("privateIpAddress", ""), port, limit


def iam_user(access_key: str):
    """The IAM user (moto's) an access key belongs to, when a test made one; else None."""
    try:
        return IAMUserAccessKey(DEFAULT_ACCOUNT_ID, "aws", access_key, {})
    except CreateAccessKeyFailure:
        return None


def may_open_tunnel(user, port: int) -> bool:
    """Whether the user's policies allow OpenTunnel, as moto judges every other action when it
    enforces IAM (INITIAL_NO_AUTH_ACTION_COUNT); without enforcement, any user may. moto does
    not evaluate numeric conditions, so the policy's `remotePort` condition is not checked."""
    if settings.INITIAL_NO_AUTH_ACTION_COUNT == float("inf"):
        return True
    results = [
        IAMPolicy(policy).is_action_permitted(
            f"{SERVICE}:OpenTunnel", "*", None, {f"{SERVICE}:remotePort": str(port)})
        for policy in user.collect_policies()
    ]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


def private_ip_route(private_ip: str) -> str | None:
    """What the routes file says for `private_ip`: `host:port`, or `!text` for a misbehaving
    service."""
    try:
        with open(ROUTES_FILE, encoding="utf-8") as f:
            return json.load(f).get(private_ip)
    except FileNotFoundError:
        return None


def route(private_ip: str) -> tuple[str, int] | None:
    target = private_ip_route(private_ip)
    if not target or target.startswith("!"):
        return None
    host, _, port = target.rpartition(":")
    return host, int(port)


async def process_request(connection, request):
    try:
        connection.opened = check_request(request.headers.get("Host", ""), request.path)
    except Refusal as refusal:
        body = json.dumps({"ErrorCode": refusal.code, "Message": str(refusal)}).encode()
        return Response(403, "Forbidden", Headers({"Content-Type": "application/json"}), body)
    return None


async def tunnel(ws) -> None:
    _endpoint, private_ip, _port, limit = ws.opened
    if private_ip_route(private_ip) == "!text":
        # A service that misbehaves: text where bytes belong.
        await ws.send("unexpected text")
        await asyncio.sleep(5)
        return
    target = route(private_ip)
    try:
        if target is None:
            raise OSError(f"no route to {private_ip}")
        reader, writer = await asyncio.open_connection(*target)
    except OSError:
        await ws.close(1011, "Unable to connect to target")
        return

    async def upstream():
        async for message in ws:
            if isinstance(message, str):
                await ws.close(1003, "text frames are not accepted")
                return
            if len(message) > MAX_FRAME:
                await ws.close(1009, "frame too large")
                return
            writer.write(message)
            await writer.drain()

    async def downstream():
        while data := await reader.read(MAX_FRAME):
            await ws.send(data)
        await ws.close(1000, "target closed the connection")

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    done, _ = await asyncio.wait(tasks, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    if not done:  # the tunnel's maximum duration: the service ends it
        await ws.close(1000, "maximum tunnel duration reached")
    for task in tasks:
        task.cancel()
    writer.close()


def start_tunnel_server(routes_file: str, secrets: dict[str, str]) -> int:
    """Serves tunnels on a free port in a thread of its own; returns the port."""
    global ROUTES_FILE
    ROUTES_FILE = routes_file
    SECRETS.update(secrets)
    return serve_in_thread(tunnel, process_request)


def serve_in_thread(handler, checker) -> int:
    """Serves WebSockets with `handler` (after `checker` looked at each upgrade request) on a
    free port of 127.0.0.1, in a thread of its own; returns the port."""
    ready = threading.Event()
    port = []

    async def main():
        async with serve(handler, "127.0.0.1", 0, process_request=checker,
                         compression=None, max_size=None) as server:
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.get_running_loop().create_future()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return port[0]
