"""Which AWS services each LocalStack tier can create, and which service a resource type is.

Tiers, from the smallest:

* ``core``: the open-source LocalStack core run in-process without Docker (what CI runs). It
  creates resources of the services below but cannot execute Lambda code (its executor is
  Docker) nor start DynamoDB (it downloads DynamoDB Local at run time).
* ``hobby``: the free plan of the LocalStack image (auth token): S3, Lambda, Step Functions,
  EventBridge and Scheduler, DynamoDB, SQS/SNS, IAM, KMS, CloudFormation, CloudWatch, Logs,
  Firehose, EC2 (VPC), SSM, Secrets Manager.
* ``base``: adds ElastiCache and ECR.
* ``ultimate``: adds SageMaker, Glue, Athena, EKS and CodeDeploy.

CodeDeploy is placed at ``ultimate`` conservatively: a resource left out at a tier that could
have created it costs a feature of the LocalStack deployment, one kept at a tier that cannot
create it fails the whole stack.
"""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    CORE = "core"
    HOBBY = "hobby"
    BASE = "base"
    ULTIMATE = "ultimate"


# Resources of these types are created without a running handler.
CORE_SERVICES = frozenset({
    "cdk", "cloudformation", "cloudwatch", "ec2", "events", "iam", "kms", "logs", "s3",
    "scheduler", "secretsmanager", "sns", "sqs", "ssm", "stepfunctions",
})  # fmt: skip
# "custom-resource" is a Lambda-backed custom resource: creating it runs a handler.
HOBBY_SERVICES = CORE_SERVICES | {"lambda", "custom-resource", "dynamodb", "firehose"}
BASE_SERVICES = HOBBY_SERVICES | {"elasticache", "ecr"}
ULTIMATE_SERVICES = BASE_SERVICES | {"sagemaker", "glue", "athena", "eks", "codedeploy"}

SERVICES: dict[Tier, frozenset[str]] = {
    Tier.CORE: CORE_SERVICES,
    Tier.HOBBY: frozenset(HOBBY_SERVICES),
    Tier.BASE: frozenset(BASE_SERVICES),
    Tier.ULTIMATE: frozenset(ULTIMATE_SERVICES),
}

# CloudFormation namespaces whose service name differs from the lowercased namespace.
_NAMESPACES = {"KinesisFirehose": "firehose", "CDK": "cdk"}


def service_of(resource_type: str) -> str:
    """``AWS::ElastiCache::ReplicationGroup`` -> ``elasticache``; custom resources, which run
    a Lambda handler when created, -> ``custom-resource``."""
    if resource_type.startswith("Custom::") or resource_type in {
        "AWS::CloudFormation::CustomResource",
        "AWS::CloudFormation::Stack",  # CDK's nested stacks here are EKS's kubectl providers
    }:
        return "custom-resource"
    parts = resource_type.split("::")
    if len(parts) != 3 or parts[0] != "AWS":
        raise ValueError(f"not a CloudFormation resource type: {resource_type!r}")
    return _NAMESPACES.get(parts[1], parts[1].lower())


def minimum_tier(service: str) -> Tier | None:
    """The smallest tier that creates resources of `service`; None if no tier does."""
    return next((tier for tier in Tier if service in SERVICES[tier]), None)


def parse_tier(value: str) -> Tier:
    """A tier from its name (``free`` is accepted for ``hobby``), with a clear error."""
    name = value.strip().lower()
    name = "hobby" if name == "free" else name
    try:
        return Tier(name)
    except ValueError:
        raise ValueError(
            f"unknown LocalStack tier {value!r}: choose one of {', '.join(t.value for t in Tier)}"
        ) from None
