"""Find deployed resources by their stack outputs, so commands need no names typed in.

Works against AWS and against the local engine alike (the engine registers the stacks it
deploys in the emulator's CloudFormation).
"""

from __future__ import annotations

import boto3
from botocore.exceptions import BotoCoreError, ClientError


class StackOutputError(RuntimeError):
    """The stack or output is not deployed where the credentials point."""


def stack_output(stack_name: str, key: str) -> str:
    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as error:
        raise StackOutputError(
            f"cannot read stack {stack_name}: {error}. Is the platform deployed to this "
            "account/region (or is the local engine running, with AWS_ENDPOINT_URL set)?"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if key not in outputs:
        raise StackOutputError(f"stack {stack_name} has no output {key}; has {sorted(outputs)}")
    return str(outputs[key])
