"""Seeds the emulator with a large ECS cluster, for ecsrdp's scale test: `big`, holding N Windows
container instances launched with one key pair `big` (only listing and lookup are tested). Prints their EC2
instance IDs as a JSON list, in launch order.

Usage: python scripts/seed_big.py --endpoint URL --count N
"""

import argparse
import json
import os
import sys

import boto3

WINDOWS_AMI = "ami-03cf127a"  # as in seed.py: moto bundles it as a Windows image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    region = os.environ.get("AWS_REGION") or "us-east-1"
    session = boto3.session.Session(region_name=region)
    ec2 = session.client("ec2", endpoint_url=args.endpoint)
    ecs = session.client("ecs", endpoint_url=args.endpoint)
    ecs.create_cluster(clusterName="big")
    ec2.create_key_pair(KeyName="big")
    reservation = ec2.run_instances(ImageId=WINDOWS_AMI, InstanceType="m5.large", KeyName="big",
                                    MinCount=args.count, MaxCount=args.count)
    ids = [i["InstanceId"] for i in reservation["Instances"]]
    for instance in reservation["Instances"]:
        document = {"instanceId": instance["InstanceId"], "region": region,
                    "availabilityZone": instance["Placement"]["AvailabilityZone"],
                    "imageId": WINDOWS_AMI, "instanceType": "m5.large",
                    "accountId": reservation["OwnerId"]}
        ecs.register_container_instance(cluster="big",
                                        instanceIdentityDocument=json.dumps(document))
    json.dump(ids, sys.stdout)


if __name__ == "__main__":
    main()
