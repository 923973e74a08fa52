"""S3 buckets with the platform's security baseline applied once, in one place."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct


class SecureBucket(Construct):
    """A data bucket: KMS-encrypted, private, TLS-only, access-logged.

    Versioning is on by default because the platform's buckets hold things people need to
    recover (uploaded model code, artifacts, feature data); noncurrent versions expire after
    `noncurrent_days` so versioning does not grow storage without bound.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        access_logs: s3.IBucket,
        removal_policy: RemovalPolicy,
        versioned: bool = True,
        noncurrent_days: int = 90,
        event_bridge: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        rules = []
        if versioned:
            rules.append(
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=versioned,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id.lower()}/",
            lifecycle_rules=rules,
            removal_policy=removal_policy,
        )
        if event_bridge:
            # The L1 property, not `event_bridge_enabled=True`: the L2 flag adds a
            # Lambda-backed custom resource to write the notification configuration.
            cfn = self.bucket.node.default_child
            assert isinstance(cfn, s3.CfnBucket)
            cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                    event_bridge_enabled=True
                )
            )
