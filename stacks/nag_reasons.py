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
                "Ingress is limited to the consumers security group (and, with serving on EKS, "
                "the cluster security group the serving pods run with), in-transit TLS is "
                "required and clients must present the AUTH token."
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


def suppress_prediction_log_findings(stream: IConstruct) -> None:
    """The prediction-log stream's two roles (CDK's Firehose L2): the service role may use the
    data key for the stream's server-side encryption, the destination role may write the log
    bucket with it. Only CDK's grant shapes are accepted; they have no `Resource::*`."""
    _suppress_wildcards(stream, [entry for entry in _GRANT_WILDCARDS if entry[0] != _ANY_RESOURCE])


# The serving app's own statements (stacks/constructs/serving_lambda.py
# `serving_statements`), held by the Lambda's execution role and by the EKS pods' role alike.
_SERVING_APP_WILDCARDS: tuple[tuple[str, str], ...] = (
    (r"^Resource::arn:(aws|<AWS::Partition>):sagemaker:[a-z0-9-]+:(<AWS::AccountId>|\d{12}):"
     r"model-package/[A-Za-z0-9-]+/\*$",
     "DescribeModelPackage on the versions of one served model's package group (SageMaker "
     "numbers them as they are registered); one entry per configured model."),
    (r"^Resource::<Artifacts[A-Za-z0-9]*\.Arn>/runs/\*/model\.tar\.gz$",
     "GetObject on the training jobs' model archives only (runs/<run id>/.../model.tar.gz in "
     "the artifacts bucket); run ids are created per training run."),
)  # fmt: skip
_APPROVAL_HOOK_WILDCARDS: tuple[tuple[str, str], ...] = (
    _SERVING_APP_WILDCARDS[0],
    (r"^Resource::(<Artifacts[A-Za-z0-9]*\.Arn>|[a-z0-9-]+-training:"
     r"ExportsOutputFnGetAttArtifacts[A-Za-z0-9]*Arn[A-Za-z0-9]*)/runs/\*/model\.tar\.gz$",
     "GetObject on the training jobs' model archives only (runs/<run id>/.../model.tar.gz in "
     "the training stack's artifacts bucket, imported here); the hook loads an approved "
     "version exactly as serving will before it rolls it out."),
)  # fmt: skip
_SERVING_FUNCTION_WILDCARDS: tuple[tuple[str, str], ...] = (
    (_ANY_RESOURCE,
     "Actions without resource-level permissions: X-Ray PutTraceSegments/PutTelemetryRecords "
     "(active tracing) and the EC2 network-interface actions Lambda needs to attach a function "
     "to the VPC (Create/Describe/DeleteNetworkInterface, Assign/UnassignPrivateIpAddresses), "
     "the statement AWSLambdaVPCAccessExecutionRole grants."),
    *_SERVING_APP_WILDCARDS,
)  # fmt: skip


def suppress_serving_function_findings(function_role: IConstruct) -> None:
    """The serving function's execution role: the listed wildcard shapes only."""
    _suppress_wildcards(function_role, _SERVING_FUNCTION_WILDCARDS)


def suppress_approval_hook_findings(hook_role: IConstruct) -> None:
    """The approval hook's role: it reads what the serving app reads to check a version before
    rolling it out (the model archive in the training stack's bucket, any version of a served
    group); everything else it may touch is named exactly."""
    _suppress_wildcards(hook_role, _APPROVAL_HOOK_WILDCARDS)


def suppress_serving_pods_findings(pods_role: IConstruct) -> None:
    """The EKS pods' role (IRSA): the app's wildcard shapes only, no `Resource::*`."""
    _suppress_wildcards(pods_role, _SERVING_APP_WILDCARDS)


# The serving app on EKS (stacks/constructs/serving_eks.py). Every finding below is on a
# resource aws-eks generates (cluster, node group, handler functions and their providers);
# the pods' own role is not covered: its statements come from the caller, who justifies them.
_EKS_MANAGED_POLICY = r"^Policy::arn:<AWS::Partition>:iam::aws:policy/"
_EKS_MANAGED_POLICIES: tuple[tuple[str, str], ...] = (
    (_EKS_MANAGED_POLICY + r"AmazonEKSClusterPolicy$",
     "The EKS cluster's service role: EKS documents this AWS managed policy as the control "
     "plane's required permissions, and AWS extends it as EKS features need."),
    (_EKS_MANAGED_POLICY + r"(AmazonEKSWorkerNodePolicy|AmazonEKS_CNI_Policy|"
     r"AmazonEC2ContainerRegistryReadOnly)$",
     "The managed node group's role: the three policies EKS requires for nodes to join the "
     "cluster, for the VPC CNI to assign pod addresses and to pull images from ECR."),
    (_EKS_MANAGED_POLICY + r"service-role/AWSLambda(Basic|VPCAccess)ExecutionRole$",
     "aws-eks's handler functions (cluster resource, kubectl) write their own logs and the "
     "kubectl handler attaches to the VPC to reach the private API endpoint; aws-eks creates "
     "these roles and offers no way to replace the policies."),
    (_EKS_MANAGED_POLICY + r"AmazonEC2ContainerRegistryPullOnly$",
     "aws-eks's kubectl handler may pull Helm charts from ECR (OCI); read-only, set by aws-eks."),
    (r'^Policy::\{"Fn::If":\["[A-Za-z0-9]*HasEcrPublic[A-Za-z0-9]*",.*'
     r"AmazonElasticContainerRegistryPublicReadOnly.*$",
     "aws-eks's kubectl handler: ECR Public read access, attached only in partitions that "
     "have ECR Public (a CloudFormation condition); set by aws-eks."),
)  # fmt: skip
_EKS_CREATION_ROLE_WILDCARDS: tuple[tuple[str, str], ...] = (
    (r"^Resource::arn:(aws|<AWS::Partition>):eks:([a-z0-9-]+|<AWS::Region>):"
     r"(\d{12}|<AWS::AccountId>):(cluster|fargateprofile)/[A-Za-z0-9_-]+/\*$",
     "The cluster-creation role of aws-eks: updates and Fargate profiles of this one cluster "
     "(named by EKS at run time)."),
    (_ANY_RESOURCE,
     "The cluster-creation role of aws-eks: EC2 Describe* (validating the VPC), "
     "iam:CreateServiceLinkedRole (EKS's service-linked role) and iam:GetRole / "
     "ListAttachedRolePolicies, as aws-eks generates them; the role is assumable only by "
     "aws-eks's cluster handler."),
)  # fmt: skip
_EKS_PROVIDER_FINDINGS = (
    ("AwsSolutions-L1",
     "aws-eks's handler and provider-framework functions: aws-cdk-lib 2.231 chooses their "
     "runtimes (not configurable); they move forward with aws-cdk-lib upgrades."),
    ("AwsSolutions-SF1",
     "The custom-resource provider framework's waiter state machine (aws-eks polls cluster "
     "creation with it); aws-eks exposes no logging settings for it."),
    ("AwsSolutions-SF2",
     "The custom-resource provider framework's waiter state machine; aws-eks exposes no "
     "tracing settings for it."),
)  # fmt: skip
_EKS_PROVIDER_WILDCARDS: tuple[tuple[str, str], ...] = (
    (r"^Resource::<[A-Za-z0-9]+\.Arn>:\*$",
     "The provider framework invokes versions of its own handler functions (CDK grantInvoke)."),
)  # fmt: skip


def suppress_serving_eks_findings(
    serving: IConstruct, *, admin_role: IConstruct | None, providers: tuple[IConstruct, ...]
) -> None:
    """aws-eks's accepted findings under `serving` (the ServingOnEks construct), its
    cluster-creation role (`admin_role`, mode 'create') and its provider nested stacks."""
    for scope in [serving, *providers]:
        _suppress_matching(scope, "AwsSolutions-IAM4", _EKS_MANAGED_POLICIES)
    if admin_role is not None:
        _suppress_wildcards(admin_role, _EKS_CREATION_ROLE_WILDCARDS)
    for provider in providers:
        _suppress_wildcards(provider, _EKS_PROVIDER_WILDCARDS)
        NagSuppressions.add_resource_suppressions(
            provider,
            [NagPackSuppression(id=rule, reason=reason) for rule, reason in _EKS_PROVIDER_FINDINGS],
            apply_to_children=True,
        )


def _suppress_matching(
    construct: IConstruct, rule: str, patterns: Iterable[tuple[str, str]]
) -> None:
    for pattern, reason in patterns:
        NagSuppressions.add_resource_suppressions(
            construct,
            [NagPackSuppression(id=rule, reason=reason,
                                applies_to=[RegexAppliesTo(regex=f"/{pattern}/")])],
            apply_to_children=True,
        )  # fmt: skip


def suppress_monitoring_findings(role: IConstruct) -> None:
    """The drift job's and the retraining function's roles: CDK's grant shapes (bucket
    objects, KMS variants, the runs table's index) and the listed monitoring shapes."""
    grants = [entry for entry in _GRANT_WILDCARDS if entry[0] != _ANY_RESOURCE]
    _suppress_wildcards(role, [*grants, *_MONITORING_WILDCARDS])


# The drift job and the retraining function (stacks/monitoring.py).
_MONITORING_WILDCARDS: tuple[tuple[str, str], ...] = (
    _SERVING_APP_WILDCARDS[0],
    (r"^Resource::(<Artifacts[A-Za-z0-9]*\.Arn>|[a-z0-9-]+-training:"
     r"ExportsOutputFnGetAttArtifacts[A-Za-z0-9]*Arn[A-Za-z0-9]*)/runs/\*/evaluation/\*$",
     "GetObject on the training runs' evaluation reports only (runs/<run id>/evaluation/ in "
     "the artifacts bucket), where a version's drift baselines are; run ids are per run."),
    (r"^Resource::(<PredictionLog[A-Za-z0-9]*\.Arn>|[a-z0-9-]+-serving:"
     r"ExportsOutputFnGetAttPredictionLog[A-Za-z0-9]*Arn[A-Za-z0-9]*)/predictions/\*$",
     "Reads the delivered prediction logs (predictions/dt=<day>/<object>): Firehose names "
     "the objects, one partition per day."),
    (r"^Resource::<Reports[A-Za-z0-9]*\.Arn>/drift-reports/\*$",
     "Writes drift reports under drift-reports/<model>/dt=<day>/ in this stack's own bucket."),
    (r"^Resource::(<Code[A-Za-z0-9]*\.Arn>|[a-z0-9-]+-training:"
     r"ExportsOutputFnGetAttCode[A-Za-z0-9]*Arn[A-Za-z0-9]*)/(bundles|continuous-training)/\*$",
     "The retraining function reads the uploaded bundle version a champion was trained from "
     "and writes its copy under continuous-training/ (the code bucket's policy reserves that "
     "prefix for this role); object names are per upload."),
    (_ANY_RESOURCE,
     "cloudwatch:PutMetricData has no resource-level permissions; the statement is limited "
     "by the cloudwatch:namespace condition to the drift namespace. X-Ray PutTraceSegments/"
     "PutTelemetryRecords (active tracing) have none either."),
)  # fmt: skip
