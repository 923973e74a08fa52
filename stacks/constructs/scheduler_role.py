"""The role an EventBridge Scheduler schedule assumes to reach its target.

Trusted as AWS documents it for EventBridge Scheduler: the service, from this account's
`default` schedule group only. The data key is granted for the encrypted targets and
dead-letter queues; what the role may invoke is granted by the caller (the L2 targets do it).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def scheduler_role(
    scope: Construct, construct_id: str, *, description: str, data_key: kms.IKey
) -> iam.Role:
    stack = Stack.of(scope)
    role = iam.Role(
        scope, construct_id, description=description,
        assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={
            "StringEquals": {
                "aws:SourceAccount": stack.account,
                "aws:SourceArn": stack.format_arn(service="scheduler", resource="schedule-group",
                                                  resource_name="default"),
            }}),
    )  # fmt: skip
    data_key.grant(role, "kms:GenerateDataKey", "kms:Decrypt")
    return role
