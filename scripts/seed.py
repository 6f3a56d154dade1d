"""Seed a running scripts/emulator.py with ecsrdp's test fixture, via the real API.

Everything is created with boto3 against --endpoint, exactly as a user's AWS
account would be, so the emulator's state only ever comes from genuine API
calls.  Creates ECS cluster `demo`, security groups `rdp-open` (TCP 3389 from
anywhere) and `rdp-closed` (TCP 22 only), one key pair per private-key format
the client must read (written to --keys-dir, mode 0600), and one EC2 instance
per scenario, each registered as a container instance of `demo`.  Each Windows
instance's password goes to the --passwords file (instance ID -> password, mode
0600), the file the emulator was started with: its patched GetPasswordData
encrypts it to the instance's key pair.  No password is ever put where the AWS
API would return it.

Usage: python scripts/seed.py --endpoint http://127.0.0.1:PORT --keys-dir DIR
                              --passwords FILE [--password-for NAME=PW ...]
Prints one JSON object describing what was created (built at the end of main()).
Credentials default to testing/testing and the region to us-east-1; the usual
AWS_* environment variables override them.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import boto3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

CLUSTER = "demo"
WINDOWS_AMI = "ami-03cf127a"  # moto's bundled Windows_Server-2016-English-Nano-Base
LINUX_AMI = "ami-760aaa0f"  # moto's bundled amzn-ami-hvm (no Platform)
PASSPHRASE = b"correct horse"

# name -> (ami, key pair, security group, password: "default" | "" (not ready) | None)
INSTANCES = {
    "win-pkcs1": (WINDOWS_AMI, "kp-pkcs1", "rdp-open", "default"),
    "win-pkcs8": (WINDOWS_AMI, "kp-pkcs8", "rdp-open", "default"),
    "win-openssh": (WINDOWS_AMI, "kp-openssh", "rdp-open", "default"),
    "win-passphrase": (WINDOWS_AMI, "kp-passphrase", "rdp-open", "default"),
    "win-ed25519": (WINDOWS_AMI, "kp-ed25519", "rdp-open", "default"),
    "win-closed": (WINDOWS_AMI, "kp-pkcs1", "rdp-closed", "default"),
    "win-notready": (WINDOWS_AMI, "kp-pkcs1", "rdp-open", ""),
    "win-nokey": (WINDOWS_AMI, None, "rdp-open", "default"),
    "win-stopped": (WINDOWS_AMI, "kp-pkcs1", "rdp-open", "default"),
    "linux": (LINUX_AMI, "kp-pkcs1", "rdp-open", None),
    # No public address: reached through the EC2 Instance Connect Endpoint of its VPC.
    "win-private": (WINDOWS_AMI, "kp-pkcs1", "rdp-from-eice", "default"),
    # No public address, and no endpoint in its VPC.
    "win-isolated": (WINDOWS_AMI, "kp-pkcs1", "rdp-isolated", "default"),
}


def write_key(path: Path, data: bytes) -> str:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return str(path)


def new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_bytes(key, fmt, passphrase: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def create_key_pairs(ec2, keys_dir: Path) -> dict[str, str]:
    """Create the key pairs; returns key name -> private key file."""
    files = {}
    kp = ec2.create_key_pair(KeyName="kp-pkcs1")  # moto: BEGIN RSA PRIVATE KEY
    files["kp-pkcs1"] = write_key(keys_dir / "kp-pkcs1.pem", kp["KeyMaterial"].encode())

    pkcs8, openssh = serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.OpenSSH
    legacy = serialization.PrivateFormat.TraditionalOpenSSL  # Proc-Type: 4,ENCRYPTED
    imported = {
        "kp-pkcs8": (new_rsa(), [("kp-pkcs8.pem", pkcs8, None)]),
        "kp-openssh": (new_rsa(), [("kp-openssh", openssh, None)]),
        "kp-passphrase": (new_rsa(), [("kp-passphrase", openssh, PASSPHRASE),
                                      ("kp-passphrase.p8.pem", pkcs8, PASSPHRASE),
                                      ("kp-passphrase.legacy.pem", legacy, PASSPHRASE)]),
        "kp-ed25519": (ed25519.Ed25519PrivateKey.generate(), [("kp-ed25519", openssh, None)]),
    }
    for name, (key, outputs) in imported.items():
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public)
        for filename, fmt, passphrase in outputs:
            path = write_key(keys_dir / filename, private_bytes(key, fmt, passphrase))
            files.setdefault(name, path)  # the first file is the canonical one
    return files


def create_security_groups(ec2) -> dict[str, str]:
    groups = {}
    for name, port in (("rdp-open", 3389), ("rdp-closed", 22)):
        gid = ec2.create_security_group(GroupName=name, Description=f"TCP {port} only")["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        groups[name] = gid
    return groups


# Instances in a VPC of their own, by the subnet they are launched in.
PRIVATE_SUBNETS = {"win-private": "private", "win-isolated": "isolated"}


def create_private_networks(ec2, groups: dict[str, str]) -> dict[str, str]:
    """Two VPCs whose subnets give no public addresses: `private` with an EC2 Instance Connect
    Endpoint whose security group the instance admits on 3389, `isolated` with none."""
    subnets = {}
    for name, cidr in (("private", "10.20"), ("isolated", "10.30")):
        vpc = ec2.create_vpc(CidrBlock=f"{cidr}.0.0/16")["Vpc"]["VpcId"]
        subnets[name] = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr}.1.0/24")["Subnet"]["SubnetId"]
        if name == "private":
            endpoint_group = ec2.create_security_group(
                GroupName="eice-endpoint", Description="EC2 Instance Connect Endpoint",
                VpcId=vpc)["GroupId"]
            gid = ec2.create_security_group(GroupName="rdp-from-eice", VpcId=vpc,
                                            Description="TCP 3389 from the endpoint")["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389,
                "UserIdGroupPairs": [{"GroupId": endpoint_group}]}])
            groups["rdp-from-eice"] = gid
            ec2.create_instance_connect_endpoint(SubnetId=subnets[name],
                                                 SecurityGroupIds=[endpoint_group])
        else:
            gid = ec2.create_security_group(GroupName="rdp-isolated", VpcId=vpc,
                                            Description="TCP 3389 from the VPC")["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389,
                "IpRanges": [{"CidrIp": f"{cidr}.0.0/16"}]}])
            groups["rdp-isolated"] = gid
    return subnets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="emulator URL")
    parser.add_argument("--keys-dir", required=True, type=Path, help="where private keys go")
    parser.add_argument("--passwords", required=True, type=Path,
                        help="the emulator's --passwords file, written here")
    parser.add_argument("--password-for", action="append", default=[], metavar="NAME=PW",
                        help="override an instance's password (repeatable)")
    args = parser.parse_args()
    try:  # cryptography needs it to write passphrase-protected OpenSSH keys
        import bcrypt  # noqa: F401
    except ImportError:
        sys.exit("seed.py: the `bcrypt` package is required (pip install bcrypt)")

    overrides = dict(item.split("=", 1) for item in args.password_for)
    if unknown := set(overrides) - set(INSTANCES):
        sys.exit(f"seed.py: unknown instance name(s) in --password-for: {sorted(unknown)}")

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = boto3.session.Session(region_name=region)
    ec2 = session.client("ec2", endpoint_url=args.endpoint)
    ecs = session.client("ecs", endpoint_url=args.endpoint)

    args.keys_dir.mkdir(parents=True, exist_ok=True)
    cluster_arn = ecs.create_cluster(clusterName=CLUSTER)["cluster"]["clusterArn"]
    groups = create_security_groups(ec2)
    subnets = create_private_networks(ec2, groups)
    key_files = create_key_pairs(ec2, args.keys_dir)

    passwords, ids = {}, {}
    for name, (ami, key_name, group, pw) in INSTANCES.items():
        pw = overrides.get(name, f"Pw-{name}-1!" if pw == "default" else pw)
        passwords[name] = pw
        tags = [{"Key": "Name", "Value": name}]
        run = dict(ImageId=ami, InstanceType="m5.large", MinCount=1, MaxCount=1,
                   SecurityGroupIds=[groups[group]],
                   TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        if key_name:
            run["KeyName"] = key_name
        if name in PRIVATE_SUBNETS:
            run["SubnetId"] = subnets[PRIVATE_SUBNETS[name]]
        reservation = ec2.run_instances(**run)
        instance = reservation["Instances"][0]
        ids[name] = instance["InstanceId"]
        # moto only reads instanceId; the rest is what a real agent sends.
        document = {"instanceId": instance["InstanceId"], "region": region,
                    "availabilityZone": instance["Placement"]["AvailabilityZone"],
                    "imageId": ami, "instanceType": instance["InstanceType"],
                    "accountId": reservation["OwnerId"],
                    "privateIp": instance.get("PrivateIpAddress")}
        ecs.register_container_instance(cluster=CLUSTER,
                                        instanceIdentityDocument=json.dumps(document))
    ec2.stop_instances(InstanceIds=[ids["win-stopped"]])
    stored = {ids[name]: pw for name, pw in passwords.items() if pw}
    args.passwords.unlink(missing_ok=True)
    fd = os.open(args.passwords, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(stored, f)

    # Read everything back through the API, checking ECS links to EC2.
    arns = ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"]
    described = ecs.describe_container_instances(cluster=CLUSTER, containerInstances=arns)
    ci_by_ec2 = {ci["ec2InstanceId"]: ci["containerInstanceArn"]
                 for ci in described["containerInstances"]}
    ec2_by_id = {i["InstanceId"]: i
                 for r in ec2.describe_instances(InstanceIds=list(ids.values()))["Reservations"]
                 for i in r["Instances"]}
    if described["failures"] or set(ci_by_ec2) != set(ids.values()):
        sys.exit(f"seed.py: container instances do not match EC2 instances: {described}")

    instances = {}
    for name, (_, key_name, _, _) in INSTANCES.items():
        inst, arn = ec2_by_id[ids[name]], ci_by_ec2[ids[name]]
        instances[name] = {
            "ec2_instance_id": ids[name],
            "container_instance_arn": arn,
            "container_instance_id": arn.rsplit("/", 1)[-1],
            "key_name": key_name,
            "key_file": key_files.get(key_name),
            "key_passphrase": PASSPHRASE.decode() if key_name == "kp-passphrase" else None,
            "password": passwords[name],
            "platform": inst.get("Platform"),
            "public_ip": inst.get("PublicIpAddress"),
            "private_ip": inst.get("PrivateIpAddress"),
            "public_dns": inst.get("PublicDnsName") or None,
        }
    json.dump({"endpoint": args.endpoint, "region": region, "cluster": CLUSTER,
               "cluster_arn": cluster_arn, "instances": instances}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
