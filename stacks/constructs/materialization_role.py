"""The materialization job's execution role: what one scheduled run touches, and nothing else.

Every statement names its resources (this stack's buckets, tables, workgroup, secret, key,
subnets, security groups, the image's repository, the job's own log streams). The exceptions
are actions without resource-level permissions (EC2 Describe*, ecr:GetAuthorizationToken,
cloudwatch:PutMetricData -- the latter limited to the job's namespace by condition) and the
network interfaces SageMaker creates per run, whose ids are not known in advance.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks.constructs.offline_store import OFFLINE_PREFIX, VIEW_FEATURES, OfflineFeatureStore
from stacks.constructs.online_store import OnlineFeatureStore

PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


def job_role(
    scope: Construct,
    construct_id: str,
    *,
    offline: OfflineFeatureStore,
    online: OnlineFeatureStore,
    data_key: kms.IKey,
    assets: Sequence[s3_assets.Asset],
    subnet_ids: Sequence[str],
    security_groups: Sequence[ec2.ISecurityGroup],
    image_repository_arn: str,
    job_name_prefix: str,
    metrics_namespace: str,
    runs_prefix: str,
) -> iam.Role:
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description="Scheduled feature materialization (SageMaker Processing job in the VPC)",
    )
    stack = Stack.of(scope)
    for statement in (
        *_network(stack, subnet_ids, security_groups),
        *_assets(assets),
        *_catalog(stack, offline),
        *_observability(stack, job_name_prefix, metrics_namespace),
        *_image(image_repository_arn),
        # Not Secret.grant_read: its KMS grant names this role in the data key's policy (the
        # key lives in the security stack), a cross-stack cycle. Decrypt is granted below.
        iam.PolicyStatement(
            sid="ReadRedisAuthToken",
            actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            resources=[online.auth_secret.secret_arn],
        ),
        iam.PolicyStatement(
            sid="VolumeEncryptionGrant",
            actions=["kms:CreateGrant"],
            resources=[data_key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
    ):
        role.add_to_policy(statement)
    offline.bucket.grant_read(role, f"{OFFLINE_PREFIX}/*")
    offline.bucket.grant_put(role, f"{runs_prefix}*")
    offline.results_bucket.grant_read_write(role)
    data_key.grant_encrypt_decrypt(role)
    return role


def _network(
    stack: Stack, subnet_ids: Sequence[str], groups: Sequence[ec2.ISecurityGroup]
) -> list[iam.PolicyStatement]:
    """The ENI calls SageMaker makes with the job's role to place it in the VPC."""
    interfaces = stack.format_arn(service="ec2", resource="network-interface", resource_name="*")
    subnets = [stack.format_arn(service="ec2", resource="subnet", resource_name=s)
               for s in subnet_ids]  # fmt: skip
    group_arns = [
        stack.format_arn(
            service="ec2", resource="security-group", resource_name=g.security_group_id
        )
        for g in groups
    ]
    return [
        iam.PolicyStatement(
            sid="DescribeNetwork",
            actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeSubnets",
                     "ec2:DescribeSecurityGroups", "ec2:DescribeDhcpOptions"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="JobNetworkInterfaces",
            actions=["ec2:CreateNetworkInterface"],
            resources=[interfaces, *subnets, *group_arns],
        ),
        iam.PolicyStatement(
            sid="ManageJobNetworkInterfaces",
            actions=["ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                     "ec2:DeleteNetworkInterfacePermission"],
            resources=[interfaces],
        ),
    ]  # fmt: skip


def _assets(assets: Sequence[s3_assets.Asset]) -> list[iam.PolicyStatement]:
    """The two asset objects only (not the whole CDK assets bucket)."""
    bucket = assets[0].bucket
    return [
        iam.PolicyStatement(
            sid="ReadJobAssets",
            actions=["s3:GetObject"],
            resources=[a.bucket.arn_for_objects(a.s3_object_key) for a in assets],
        ),
        iam.PolicyStatement(
            sid="ListJobAssets",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringEquals": {"s3:prefix": [a.s3_object_key for a in assets]}},
        ),
    ]


def _catalog(stack: Stack, offline: OfflineFeatureStore) -> list[iam.PolicyStatement]:
    """Athena queries over the views' Glue tables, in the feature store's workgroup only."""
    database = offline.database_name
    tables = [stack.format_arn(service="glue", resource="table", resource_name=f"{database}/{v}")
              for v in VIEW_FEATURES]  # fmt: skip
    return [
        iam.PolicyStatement(
            sid="ReadFeatureTables",
            actions=["glue:GetDatabase", "glue:GetTable", "glue:GetPartition",
                     "glue:GetPartitions"],
            resources=[stack.format_arn(service="glue", resource="catalog"),
                       stack.format_arn(service="glue", resource="database",
                                        resource_name=database), *tables],
        ),
        iam.PolicyStatement(
            sid="QueryFeatureTables",
            actions=["athena:StartQueryExecution", "athena:GetQueryExecution",
                     "athena:GetQueryResults", "athena:StopQueryExecution",
                     "athena:GetWorkGroup"],
            resources=[stack.format_arn(service="athena", resource="workgroup",
                                        resource_name=offline.workgroup_name)],
        ),
    ]  # fmt: skip


def _observability(stack: Stack, prefix: str, namespace: str) -> list[iam.PolicyStatement]:
    """The job's own log streams in SageMaker's processing log group, and its metrics."""
    arn = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:"
    return [
        iam.PolicyStatement(
            sid="ProcessingLogGroup",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams"],
            resources=[f"{arn}{PROCESSING_LOG_GROUP}:*"],
        ),
        iam.PolicyStatement(
            sid="JobLogStreams",
            actions=["logs:PutLogEvents"],
            resources=[f"{arn}{PROCESSING_LOG_GROUP}:log-stream:{prefix}-*"],
        ),
        iam.PolicyStatement(
            sid="JobMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
        ),
    ]


def _image(repository_arn: str) -> list[iam.PolicyStatement]:
    """Pull the prebuilt image from its AWS-owned repository."""
    return [
        iam.PolicyStatement(
            sid="PullImageToken", actions=["ecr:GetAuthorizationToken"], resources=["*"]
        ),
        iam.PolicyStatement(
            sid="PullImage",
            actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                     "ecr:BatchCheckLayerAvailability"],
            resources=[repository_arn],
        ),
    ]  # fmt: skip
