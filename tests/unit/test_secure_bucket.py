from __future__ import annotations

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from stacks.constructs.secure_bucket import SecureBucket

pytestmark = pytest.mark.unit


def _template(**kwargs: object) -> Template:
    stack = Stack(App(), "Test")
    key = kms.Key(stack, "Key")
    logs = s3.Bucket(stack, "Logs")
    SecureBucket(
        stack, "Code", encryption_key=key, access_logs=logs,
        removal_policy=RemovalPolicy.RETAIN, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    return Template.from_stack(stack)


def test_secure_bucket_applies_the_baseline() -> None:
    template = _template()
    template.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "BucketKeyEnabled": True,
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": Match.any_value(),
                                },
                            }
                        ]
                    },
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "LoggingConfiguration": {
                        "DestinationBucketName": Match.any_value(),
                        "LogFilePrefix": "code/",
                    },
                    "PublicAccessBlockConfiguration": Match.object_like(
                        {"BlockPublicAcls": True, "RestrictPublicBuckets": True}
                    ),
                    "LifecycleConfiguration": {
                        "Rules": [
                            Match.object_like(
                                {"NoncurrentVersionExpiration": {"NoncurrentDays": 90}}
                            )
                        ]
                    },
                }
            ),
        },
    )
    policy = template.find_resources("AWS::S3::BucketPolicy")
    statements = [
        s for p in policy.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    conditions = [s.get("Condition", {}) for s in statements if s["Effect"] == "Deny"]
    assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions


def test_event_bridge_notifications_without_a_custom_resource() -> None:
    template = _template(event_bridge=True)
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}},
    )
    template.resource_count_is("Custom::S3BucketNotifications", 0)
    template.resource_count_is("AWS::Lambda::Function", 0)


def test_unversioned_bucket_has_no_noncurrent_rule() -> None:
    template = _template(versioned=False)
    bucket = next(iter(template.find_resources("AWS::S3::Bucket", {"Properties": {
        "LoggingConfiguration": Match.any_value()}}).values()))  # fmt: skip
    assert "VersioningConfiguration" not in bucket["Properties"]
    assert "LifecycleConfiguration" not in bucket["Properties"]
