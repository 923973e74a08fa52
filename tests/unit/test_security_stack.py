from __future__ import annotations

from collections.abc import Callable

import pytest
from aws_cdk.assertions import Match, Template

from tests.conftest import SynthesizedEnvironment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]


def test_data_key_rotates_and_lets_cloudwatch_logs_encrypt(synthesized: Synth) -> None:
    template = Template.from_stack(synthesized("dev").stack("security"))
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "AllowCloudWatchLogsInThisAccount",
                                "Principal": {"Service": "logs.ap-northeast-2.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": Match.any_value()
                                    }
                                },
                            }
                        )
                    ]
                )
            },
        },
    )
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/mlops-dev/data"})


def test_alarms_may_publish_to_topics_encrypted_with_the_data_key(synthesized: Synth) -> None:
    """Without this statement CloudWatch cannot deliver alarms to the encrypted topics."""
    Template.from_stack(synthesized("dev").stack("security")).has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "AllowCloudWatchAlarmsToPublishToEncryptedTopics",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                                "Condition": {
                                    "StringEquals": {"aws:SourceAccount": Match.any_value()}
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_access_log_bucket_is_private_tls_only_and_expires(synthesized: Synth) -> None:
    template = Template.from_stack(synthesized("dev").stack("security"))
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LifecycleConfiguration": {
                "Rules": [Match.object_like({"ExpirationInDays": 90, "Status": "Enabled"})]
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.parametrize(("env", "policy"), [("prod", "Retain"), ("dev", "Delete")])
def test_removal_policy_follows_the_environment(synthesized: Synth, env: str, policy: str) -> None:
    template = Template.from_stack(synthesized(env).stack("security"))
    for resource_type in ("AWS::KMS::Key", "AWS::S3::Bucket"):
        resources = template.find_resources(resource_type)
        assert resources
        assert {r["DeletionPolicy"] for r in resources.values()} == {policy}


def test_prod_stacks_have_termination_protection(synthesized: Synth) -> None:
    assert all(s.termination_protection for s in synthesized("prod").stacks)
    assert not any(s.termination_protection for s in synthesized("dev").stacks)
