"""ECS and EC2 as strict as AWS where moto is not, for ecsrdp's scale tests.

moto's ListContainerInstances ignores `filter` (the cluster query language) and returns every
instance in one page, and its DescribeContainerInstances takes any number of instances. AWS
pages ListContainerInstances (at most 100 per page, `nextToken`), accepts at most 100 instances
per DescribeContainerInstances, and filters with expressions such as
`ec2InstanceId == i-0123…`.  Patched here: paging and the limit as AWS has them, and the
`ec2InstanceId ==` / `attribute:ecs.os-type ==` comparisons ecsrdp may send (any other
expression is refused, as AWS refuses what it cannot parse).  EC2's DescribeInstances
takes at most 200 values in one filter (FilterLimitExceeded), which moto does not enforce.
AWS forgets a terminated instance about an hour after its termination (DescribeInstances then
answers InvalidInstanceID.NotFound); a terminated instance tagged `emulator:forgotten` is
forgotten at once, so that tests can stand for a container instance left registered after that.
ListTasks with `serviceName` returns the service's tasks (group `service:<name>`), where moto
returns them all.

Permissions and bad days: moto lets every caller do everything, always. An access key ID of
the form `deny-<Action>[+<Action>…]` is refused those EC2 actions with UnauthorizedOperation,
`throttle-<Action>` is throttled (RequestLimitExceeded) and `skewed-<Action>` is told its
request expired (RequestExpired, what a machine with a wrong clock meets), with AWS's own codes
and message shapes, so that tests can stand for those users.
"""

import re

from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.responses.instances import InstanceResponse
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse

PAGE = 100
COMPARISON = re.compile(r"^\s*(ec2InstanceId)\s*==\s*([\w.-]+)\s*$")


def list_container_instances(self) -> ActionResult:
    cluster = self._get_param("cluster", "default")
    status = self._get_param("status")
    query = self._get_param("filter")
    limit = int(self._get_param("maxResults") or PAGE)
    if not 1 <= limit <= PAGE:
        raise InvalidParameterException("maxResults must be between 1 and 100")
    backend = self.ecs_backend
    arns = backend.list_container_instances(cluster, status=status)
    if query:
        match = COMPARISON.match(query)
        if not match:
            raise InvalidParameterException(f"Unsupported filter expression: {query}")
        wanted = match.group(2)
        by_arn = {ci.container_instance_arn: ci for ci in
                  backend.container_instances.get(cluster.split("/")[-1], {}).values()}
        arns = [arn for arn in arns if by_arn[arn].ec2_instance_id == wanted]
    start = int(self._get_param("nextToken") or 0)
    page = arns[start:start + limit]
    result = {"containerInstanceArns": page}
    if start + limit < len(arns):
        result["nextToken"] = str(start + limit)
    return ActionResult(result)


ORIGINAL_DESCRIBE = EC2ContainerServiceResponse.describe_container_instances


def describe_container_instances(self) -> ActionResult:
    ids = self._get_param("containerInstances") or []
    if len(ids) > PAGE:
        raise InvalidParameterException(
            "containerInstances can have at most 100 items.")
    return ORIGINAL_DESCRIBE(self)


ORIGINAL_DESCRIBE_INSTANCES = InstanceResponse.describe_instances
FILTER_VALUES = 200


def describe_instances(self):
    for name, values in self._filters_from_querystring().items():
        if len(values) > FILTER_VALUES:
            raise EC2ClientError(
                "FilterLimitExceeded",
                f"The maximum number of filter values specified on a single call is "
                f"{FILTER_VALUES}")
    return ORIGINAL_DESCRIBE_INSTANCES(self)


ORIGINAL_ALL_RESERVATIONS = InstanceBackend.all_reservations
FORGOTTEN = "emulator:forgotten"


def all_reservations(self, filters=None):
    """Every reservation, without the terminated instances AWS has forgotten."""
    def remembered(instance) -> bool:
        return not (instance.state == "terminated" and FORGOTTEN in self.tags.get(instance.id, {}))
    kept = []
    for reservation in ORIGINAL_ALL_RESERVATIONS(self, filters):
        reservation.instances = [i for i in reservation.instances if remembered(i)]
        if reservation.instances:
            kept.append(reservation)
    return kept


# What the caller's access key ID asks the emulator to play: `deny-A+B` refuses actions A and B
# (UnauthorizedOperation), `throttle-A` throttles A (RequestLimitExceeded, every time, so the
# SDK's retries run out), `skewed-A` refuses A as a request from a machine whose clock is off
# (RequestExpired), `reject-A` refuses the credentials themselves (AuthFailure).
PLAYS = {
    "deny": ("UnauthorizedOperation",
             "You are not authorized to perform this operation. User: "
             "arn:aws:iam::123456789012:user/ecsrdp-test is not authorized to perform: "
             "ec2:{action} because no identity-based policy allows the ec2:{action} action"),
    "throttle": ("RequestLimitExceeded", "Request limit exceeded."),
    "skewed": ("RequestExpired", "Request has expired."),
    "reject": ("AuthFailure", "AWS was not able to validate the provided access credentials"),
}


def played(response, action: str) -> tuple[str, str] | None:
    """The error the caller's access key ID asks for on `action`, if any."""
    authorization = response.headers.get("Authorization", "")
    match = re.search(r"Credential=(deny|throttle|skewed|reject)-([A-Za-z+]+)/", authorization)
    if not match or action not in match.group(2).split("+"):
        return None
    code, message = PLAYS[match.group(1)]
    return code, message.format(action=action)


def refusing(action: str, original):
    def guarded(self, *args, **kwargs):
        if error := played(self, action):
            raise EC2ClientError(*error)
        return original(self, *args, **kwargs)
    return guarded


def list_tasks(self) -> ActionResult:
    """ListTasks with `serviceName` as AWS has it: the tasks whose group is `service:<name>`
    (moto returns every task whatever the service)."""
    tasks = self.ecs_backend.list_tasks(
        self._get_param("cluster", "default"), self._get_param("containerInstance"),
        self._get_param("family"), self._get_param("startedBy"), None,
        self._get_param("desiredStatus"))
    service = self._get_param("serviceName")
    if service:
        tasks = [t for t in tasks if t.group == f"service:{service}"]
    return ActionResult({"taskArns": [t.task_arn for t in tasks]})


def json_access_denied(original):
    """ECS speaks JSON: when IAM refuses a call (INITIAL_NO_AUTH_ACTION_COUNT), AWS answers
    `{"__type": "AccessDeniedException", ...}` with status 400, where moto sends its XML error."""
    def authorize(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except AccessDeniedError as denied:
            raise JsonRESTError("AccessDeniedException", denied.message)
    return authorize


def install() -> None:
    EC2ContainerServiceResponse._authenticate_and_authorize_normal_action = json_access_denied(
        EC2ContainerServiceResponse._authenticate_and_authorize_normal_action)
    EC2ContainerServiceResponse.list_tasks = list_tasks
    from moto.ec2.responses import EC2Response
    InstanceResponse.describe_instances = describe_instances
    InstanceBackend.all_reservations = all_reservations
    for action in ("DescribeInstances", "DescribeSecurityGroups",
                   "DescribeInstanceConnectEndpoints", "GetPasswordData", "GetConsoleOutput"):
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()
        setattr(EC2Response, method, refusing(action, getattr(EC2Response, method)))
    EC2ContainerServiceResponse.list_container_instances = list_container_instances
    EC2ContainerServiceResponse.describe_container_instances = describe_container_instances
