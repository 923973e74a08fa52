"""The shared security baseline every other stack builds on."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops.config import EnvironmentConfig
from stacks.base import PlatformStack
from stacks.nag_reasons import suppress_access_log_bucket


def removal_policy(env: EnvironmentConfig) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if env.removal_policy == "retain" else RemovalPolicy.DESTROY


class SecurityStack(PlatformStack):
    """Customer-managed KMS key and the server-access-log bucket.

    One data key encrypts the platform's buckets, tables, queues and log groups. It lives
    here, not in each consumer, so key policy statements for AWS services (CloudWatch Logs)
    are written once and no consumer stack can create a dependency cycle through it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_config: EnvironmentConfig,
        project: str,
        env_name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        policy = removal_policy(env_config)
        self.data_key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{project}-{env_name}/data",
            description=f"{project} {env_name}: encrypts platform data at rest",
            enable_key_rotation=True,
            pending_window=Duration.days(30 if policy is RemovalPolicy.RETAIN else 7),
            removal_policy=policy,
        )
        self._allow_cloudwatch_logs()
        self._allow_cloudwatch_alarms()
        self.access_logs = self._access_log_bucket(env_config, policy)

    def _allow_cloudwatch_logs(self) -> None:
        """CloudWatch Logs encrypts log groups with this key only if the key policy says so."""
        self.data_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsInThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                         "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn":
                            f"arn:{self.partition}:logs:{self.region}:{self.account}:*"
                    }
                },
            )
        )  # fmt: skip

    def _allow_cloudwatch_alarms(self) -> None:
        """CloudWatch alarms publish to the platform's KMS-encrypted SNS topics only if the
        key policy lets CloudWatch use the key; limited to this account's alarms."""
        self.data_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )

    def _access_log_bucket(self, env_config: EnvironmentConfig, policy: RemovalPolicy) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging delivers only to SSE-S3 encrypted buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(env_config.access_log_retention_days),
                )
            ],
            removal_policy=policy,
        )
        suppress_access_log_bucket(bucket)
        return bucket
