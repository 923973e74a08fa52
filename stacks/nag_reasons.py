"""cdk-nag suppressions, each with the reason a security reviewer would need.

Kept in one module so the full list can be reviewed at once (docs/decisions.md mirrors it).
Suppressions are scoped to the narrowest construct and, for wildcard findings, to the
specific `appliesTo` entries, so new findings elsewhere still fail the build.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct


def suppress_access_log_bucket(bucket: s3.IBucket) -> None:
    NagSuppressions.add_resource_suppressions(
        bucket,
        [
            NagPackSuppression(
                id="AwsSolutions-S1",
                reason=(
                    "This bucket is the destination of the platform's S3 server access logs; "
                    "logging it into itself would create a feedback loop."
                ),
            )
        ],
    )


def suppress_dead_letter_queue(queue: sqs.IQueue, owner: str = "an EventBridge target") -> None:
    NagSuppressions.add_resource_suppressions(
        queue,
        [
            NagPackSuppression(
                id="AwsSolutions-SQS3",
                reason=f"This queue is itself the dead-letter queue of {owner}.",
            )
        ],
    )


def suppress_sagemaker_role(role: iam.IRole) -> None:
    NagSuppressions.add_resource_suppressions(
        role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason=(
                    "SageMaker jobs pull the prebuilt framework images from AWS-owned ECR "
                    "repositories in other accounts (ecr:GetAuthorizationToken has no "
                    "resource-level permissions); PutMetricData is limited by condition to the "
                    "/aws/sagemaker/* namespaces; logs are limited to /aws/sagemaker/* groups; "
                    "bucket access is limited to the artifacts bucket."
                ),
            )
        ],
        apply_to_children=True,
    )


_ANY_RESOURCE = r"^Resource::\*$"
# Wildcard findings that CDK's grant methods and per-run resource names produce, each with
# the evidence a reviewer needs. Anything not matched here still fails the nag gate.
_GRANT_WILDCARDS: tuple[tuple[str, str], ...] = (
    (r"^Action::s3:(GetBucket|GetObject|List|Abort|DeleteObject)\*$",
     "CDK grant_read/grant_put action groups, scoped to the platform's own buckets."),
    (r"^Resource::<[A-Za-z0-9]+(Bucket)?[A-Za-z0-9]*\.Arn>/\*$",
     "Objects inside one of the platform's own buckets (keys are per run/upload)."),
    (r"^Action::kms:(GenerateDataKey|ReEncrypt)\*$",
     "CDK's KMS grant for the platform data key only (data-key generation variants)."),
    (r"^Resource::<Runs[A-Za-z0-9]*\.Arn>/index/\*$",
     "Queries on the runs table's own secondary index."),
    (r"^Resource::arn:(aws|<AWS::Partition>):sagemaker:[a-z0-9-]+:(<AWS::AccountId>|\d{12}):"
     r"(model-package-group|model-package|processing-job|training-job)/\*$",
     "SageMaker names model packages and jobs per run at run time; access is limited to "
     "this account and region and to these resource types."),
    (r"^Resource::<[A-Za-z0-9]+Function[A-Za-z0-9]*\.Arn>:\*$",
     "Versions and aliases of this stack's own functions (CDK LambdaInvoke grant)."),
    (_ANY_RESOURCE,
     "X-Ray PutTraceSegments/PutTelemetryRecords and the CloudWatch Logs delivery actions "
     "Step Functions logging needs have no resource-level permissions."),
)  # fmt: skip


def suppress_grant_wildcards(construct: IConstruct) -> None:
    """Suppress only the listed wildcard patterns (IAM5) on the roles under `construct`."""
    _suppress_wildcards(construct, _GRANT_WILDCARDS)


def _suppress_wildcards(construct: IConstruct, patterns: Iterable[tuple[str, str]]) -> None:
    for pattern, reason in patterns:
        NagSuppressions.add_resource_suppressions(
            construct,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason=reason,
                    applies_to=[RegexAppliesTo(regex=f"/{pattern}/")],
                )
            ],
            apply_to_children=True,
        )


def suppress_online_store_findings(
    replication_group: IConstruct, auth_secret: IConstruct, *, single_node: bool
) -> None:
    """The online store's accepted findings; Multi-AZ only where the config asks for 1 node."""
    on_group = [
        NagPackSuppression(
            id="AwsSolutions-AEC5",
            reason=(
                "Redis keeps its default port 6379: a non-default port adds no protection here. "
                "Ingress is limited to the consumers security group, in-transit TLS is required "
                "and clients must present the AUTH token."
            ),
        )
    ]
    if single_node:
        on_group.append(
            NagPackSuppression(
                id="AwsSolutions-AEC4",
                reason=(
                    "This environment is configured with one Redis node "
                    "(feature_store.redis_nodes = 1) to save cost; its contents are rebuilt by "
                    "re-materializing from the offline store. Production runs two or more "
                    "nodes with Multi-AZ automatic failover."
                ),
            )
        )
    NagSuppressions.add_resource_suppressions(replication_group, on_group)
    NagSuppressions.add_resource_suppressions(
        auth_secret,
        [
            NagPackSuppression(
                id="AwsSolutions-SMG4",
                reason=(
                    "Secrets Manager has no Lambda-free rotation for ElastiCache AUTH tokens; "
                    "rotation (ModifyReplicationGroup ROTATE, then SET once every client "
                    "re-read the secret) needs a rotation function and client support, "
                    "recorded as open work in docs/decisions.md."
                ),
            )
        ],
        apply_to_children=True,
    )


# Wildcards of the scheduled materialization job (stacks/constructs/materialization*.py).
_MATERIALIZATION_JOB_WILDCARDS: tuple[tuple[str, str], ...] = (
    (_ANY_RESOURCE,
     "Actions without resource-level permissions: EC2 Describe* (SageMaker checks the VPC "
     "configuration), ecr:GetAuthorizationToken (pulling the prebuilt image) and "
     "cloudwatch:PutMetricData, which a condition limits to the MLOps/FeatureStore namespace."),
    (r"^Resource::arn:(aws|<AWS::Partition>):ec2:[a-z0-9-]+:(<AWS::AccountId>|\d{12}):"
     r"network-interface/\*$",
     "SageMaker creates and deletes the job's network interfaces per run (ids unknown in "
     "advance); creating one is further bound to this VPC's private subnets and the job's "
     "security groups, which the same statement names."),
    (r"^Resource::arn:(aws|<AWS::Partition>):logs:[a-z0-9-]+:(<AWS::AccountId>|\d{12}):"
     r"log-group:/aws/sagemaker/ProcessingJobs:(\*|log-stream:[a-z0-9-]+-\*)$",
     "SageMaker's fixed processing-job log group (its ARN form ends in :*) and the log "
     "streams of this stack's jobs only (<job-name prefix>-<run id>/...)."),
    (r"^Resource::<OfflineDataLakeBucket[A-Za-z0-9]*\.Arn>/(offline|materialization/runs)/\*$",
     "Read the offline feature Parquet (offline/) and write run records "
     "(materialization/runs/) in the feature store's own data lake: one prefix each."),
)  # fmt: skip
_MATERIALIZATION_JOB_NAMES = (
    r"^Resource::arn:(aws|<AWS::Partition>):sagemaker:[a-z0-9-]+:(<AWS::AccountId>|\d{12}):"
    r"processing-job/[a-z0-9-]+-\*$",
    "Processing jobs are named <stack prefix>-<uuid> per run; the state machine may create, "
    "describe, stop and tag only jobs with this stack's prefix.",
)


def suppress_materialization_findings(
    job_role: IConstruct, state_machine_role: IConstruct, dead_letters: sqs.IQueue
) -> None:
    """The materialization job's accepted findings: listed wildcard shapes only, plus its DLQ.

    The job role gets the CDK grant shapes (its buckets, the data key) except `Resource::*`,
    which has its own reason there; the state machine role gets the grant shapes (X-Ray and
    log delivery are its `Resource::*`) and its job-name prefix.
    """
    suppress_dead_letter_queue(dead_letters, "the materialization schedule (EventBridge Scheduler)")
    grants = [entry for entry in _GRANT_WILDCARDS if entry[0] != _ANY_RESOURCE]
    _suppress_wildcards(job_role, [*grants, *_MATERIALIZATION_JOB_WILDCARDS])
    _suppress_wildcards(state_machine_role, [*_GRANT_WILDCARDS, _MATERIALIZATION_JOB_NAMES])
