"""IAM users for an emulator that enforces IAM (scripts/emulator.py started with moto's
INITIAL_NO_AUTH_ACTION_COUNT=3: its first three calls are free, every later one is checked
against the caller's policies).

    python scripts/iam.py --endpoint URL admin
        spends the three free calls on a user allowed everything; prints its access key
    python scripts/iam.py --endpoint URL user NAME POLICY.json
        (with the admin's key in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) a user holding exactly
        the policy in POLICY.json; prints its access key

Each prints {"access_key_id": ..., "secret_access_key": ...} as JSON.
"""

import argparse
import json
import os

import boto3

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("admin")
    user = sub.add_parser("user")
    user.add_argument("name")
    user.add_argument("policy")
    args = parser.parse_args()

    if args.what == "admin":
        # Any key will do for the free calls.
        key, secret, name, policy = "testing", "testing", "admin", json.dumps(ALLOW_ALL)
    else:
        key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
        name = args.name
        with open(args.policy, encoding="utf-8") as f:
            policy = f.read()
    iam = boto3.client(
        "iam",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=policy)
    created = iam.create_access_key(UserName=name)["AccessKey"]
    print(
        json.dumps(
            {
                "access_key_id": created["AccessKeyId"],
                "secret_access_key": created["SecretAccessKey"],
            }
        )
    )


if __name__ == "__main__":
    main()
