"""The deployer on hand-written cloud assemblies: intrinsics, engine handlers, contracts.

These need no CDK synth, so they cover the types and functions the CDK test app does not use
(ElastiCache, VPC custom resources, Scheduler, conditions on resources, Fn::Sub forms) in
milliseconds each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localaws import cfn_registry, s3_secure_transport
from localaws.cfn_intrinsics import IntrinsicError, resolve
from localaws.cfn_stack import TemplateError, resource_order
from localaws.deploy import deploy_assembly
from localaws.emulator import ACCOUNT_ID, Emulator

pytestmark = pytest.mark.integration

BOOTSTRAP = {
    "Parameters": {
        "BootstrapVersion": {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/cdk-bootstrap/hnb659fds/version",
        }
    },
    "Rules": {
        "CheckBootstrapVersion": {
            "Assertions": [
                {
                    "Assert": {
                        "Fn::Not": [
                            {
                                "Fn::Contains": [
                                    ["1", "2", "3", "4", "5"],
                                    {"Ref": "BootstrapVersion"},
                                ]
                            }
                        ]
                    },
                    "AssertDescription": "CDK bootstrap stack version 6 required.",
                }
            ]
        }
    },
}


@pytest.fixture
def fresh(emulator: Emulator) -> Iterator[Emulator]:
    yield emulator
    s3_secure_transport.uninstall()


def write_assembly(root: Path, stacks: dict[str, dict[str, Any]]) -> Path:
    """A minimal cloud assembly: one template per stack, each depending on the previous."""
    artifacts: dict[str, Any] = {}
    previous: list[str] = []
    for name, template in stacks.items():
        (root / f"{name}.template.json").write_text(json.dumps(BOOTSTRAP | template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": f"{name}.template.json"},
            "dependencies": previous,
        }
        previous = [name]
    (root / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))
    return root


NETWORK = {
    "Conditions": {"Never": {"Fn::Equals": [{"Ref": "AWS::Region"}, "mars-1"]}},
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
        "Subnet": {
            "Type": "AWS::EC2::Subnet",
            "Properties": {
                "VpcId": {"Ref": "Vpc"},
                "CidrBlock": {"Fn::Select": [0, {"Fn::Cidr": ["10.0.0.0/16", 4, 8]}]},
                "AvailabilityZone": {"Fn::Select": [1, {"Fn::GetAZs": ""}]},
            },
        },
        "Restrict": {
            "Type": "Custom::VpcRestrictDefaultSG",
            "Properties": {
                "ServiceToken": "arn:aws:lambda:local:provider",
                "DefaultSecurityGroupId": {"Fn::GetAtt": ["Vpc", "DefaultSecurityGroup"]},
            },
        },
        "Unused": {"Type": "AWS::SQS::Queue", "Condition": "Never"},
        "Cache": {
            "Type": "AWS::ElastiCache::ReplicationGroup",
            "Properties": {"ReplicationGroupDescription": "online store", "Engine": "redis"},
        },
    },
    "Outputs": {
        "RedisUrl": {
            "Value": {
                "Fn::Sub": [
                    "redis://${Host}:${Cache.PrimaryEndPoint.Port}/${!db}",
                    {"Host": {"Fn::GetAtt": ["Cache", "PrimaryEndPoint.Address"]}},
                ]
            },
            "Export": {"Name": "redis-url"},
        },
        "SubnetAz": {"Value": {"Fn::GetAtt": ["Subnet", "AvailabilityZone"]}},
        "QueueOrNone": {"Value": {"Fn::If": ["Never", {"Ref": "Unused"}, "none"]}},
        "Where": {"Value": {"Fn::Sub": "${AWS::StackName}@${AWS::Region}/${AWS::AccountId}"}},
    },
}

CONSUMER = {
    "Resources": {
        "Url": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Type": "String", "Value": {"Fn::ImportValue": "redis-url"}},
        },
        "Nightly": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "ScheduleExpression": "cron(0 3 * * ? *)",
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "Target": {
                    "Arn": {
                        "Fn::Join": [
                            ":",
                            [
                                "arn:aws:states",
                                {"Ref": "AWS::Region"},
                                ACCOUNT_ID,
                                "stateMachine:retrain",
                            ],
                        ]
                    },  # fmt: skip
                    "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/scheduler",
                },
            },
        },
    }
}


def test_engine_handlers_and_intrinsics_resolve_like_cloudformation(
    fresh: Emulator, tmp_path: Path
) -> None:
    cdk_out = write_assembly(tmp_path, {"Net": NETWORK, "Consumer": CONSUMER})
    deployment = deploy_assembly(cdk_out, emulator=fresh, redis_url="redis://10.1.2.3:6380")
    net = deployment["Net"]
    assert net.outputs == {
        "RedisUrl": "redis://10.1.2.3:6380/${db}",
        "SubnetAz": f"{fresh.region}b",
        "QueueOrNone": "none",
        "Where": f"Net@{fresh.region}/{ACCOUNT_ID}",
    }
    assert "Unused" not in net.resources
    assert net.resources["Cache"].recorded
    subnet = fresh.client("ec2").describe_subnets(SubnetIds=[net.physical_id("Subnet")])
    assert subnet["Subnets"][0]["CidrBlock"] == "10.0.0.0/24"
    default_sg = fresh.client("ec2").describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [net.physical_id("Vpc")]},
            {"Name": "group-name", "Values": ["default"]},
        ]  # fmt: skip
    )["SecurityGroups"][0]
    assert default_sg["IpPermissions"] == [] and default_sg["IpPermissionsEgress"] == []
    url = fresh.client("ssm").get_parameter(Name=deployment["Consumer"].physical_id("Url"))
    assert url["Parameter"]["Value"] == "redis://10.1.2.3:6380/${db}"
    schedule = fresh.client("scheduler").get_schedule(
        Name=deployment["Consumer"].physical_id("Nightly")
    )
    assert schedule["Target"]["Arn"] == (
        f"arn:aws:states:{fresh.region}:{ACCOUNT_ID}:stateMachine:retrain"
    )


def test_old_bootstrap_version_fails_the_rule(fresh: Emulator, tmp_path: Path) -> None:
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    cdk_out = write_assembly(tmp_path, {"Old": template})
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    manifest["artifacts"]["Old"]["properties"]["parameters"] = {"BootstrapVersion": "/old"}
    (cdk_out / "manifest.json").write_text(json.dumps(manifest))
    fresh.client("ssm").put_parameter(Name="/old", Value="5", Type="String")
    with pytest.raises(TemplateError, match="CDK bootstrap stack version 6 required"):
        deploy_assembly(cdk_out, emulator=fresh)
    assert fresh.client("sns").list_topics()["Topics"] == []
    stack = fresh.client("cloudformation").describe_stacks(StackName="Old")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_FAILED"


class FakeScope:
    def ref(self, name: str) -> Any:
        return {"AWS::Region": "ap-northeast-2", "Bucket": "b1"}[name]

    def get_att(self, logical_id: str, attribute: str) -> Any:
        raise IntrinsicError(f"no {logical_id}.{attribute}")

    def condition(self, name: str) -> bool:
        return name == "Yes"

    def import_value(self, export_name: str) -> Any:
        raise IntrinsicError(f"no export {export_name}")

    def azs(self, region: str) -> list[str]:
        return [f"{region}a", f"{region}b"]

    def mapping(self, name: str) -> dict[str, Any]:
        return {"Env": {"dev": {"Size": "small"}}}[name]


def test_no_value_drops_keys_and_list_items() -> None:
    node = {
        "A": {"Fn::If": ["No", "x", {"Ref": "AWS::NoValue"}]},
        "B": ["k", {"Fn::If": ["Yes", {"Ref": "AWS::NoValue"}, "y"]}],
        "C": {"Fn::FindInMap": ["Env", "dev", "Size"]},
        "D": {"Fn::Split": [",", {"Fn::Join": [",", [{"Ref": "Bucket"}, "z"]]}]},
    }
    assert resolve(node, FakeScope()) == {"B": ["k"], "C": "small", "D": ["b1", "z"]}


def test_unresolvable_expressions_raise_instead_of_vanishing() -> None:
    with pytest.raises(IntrinsicError, match="no Fn.Arn"):
        resolve({"Fn::Sub": "${Fn.Arn}"}, FakeScope())
    with pytest.raises(IntrinsicError, match="no export shared"):
        resolve({"Fn::ImportValue": "shared"}, FakeScope())


def test_resource_order_follows_references_and_rejects_cycles() -> None:
    template: dict[str, Any] = {
        "Resources": {
            "Fn": {"Type": "T", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
            "Role": {"Type": "T", "DependsOn": "Key"},
            "Key": {"Type": "T", "Properties": {"Name": {"Fn::Sub": "${AWS::Region}-${!Fn}"}}},
        }
    }
    assert resource_order(template) == ["Key", "Role", "Fn"]
    template["Resources"]["Key"]["Properties"] = {"Name": {"Fn::Sub": "${Fn}"}}
    with pytest.raises(TemplateError, match="circular dependency: Fn -> Role -> Key -> Fn"):
        resource_order(template)


def test_moto_cloudformation_internals_used_by_the_registry_are_present() -> None:
    cfn_registry.check_contract()


def test_secure_transport_extension_is_reversible_and_keeps_real_denies(fresh: Emulator) -> None:
    s3 = fresh.client("s3")
    s3.create_bucket(
        Bucket="tls-probe", CreateBucketConfiguration={"LocationConstraint": fresh.region}
    )
    statement = {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
                 "Resource": ["arn:aws:s3:::tls-probe/*"]}  # fmt: skip
    tls = statement | {"Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    s3.put_bucket_policy(Bucket="tls-probe", Policy=json.dumps({"Statement": [tls]}))
    s3_secure_transport.install()
    s3_secure_transport.install()
    s3.put_object(Bucket="tls-probe", Key="k", Body=b"1")
    s3_secure_transport.uninstall()
    assert not s3_secure_transport.installed()
    with pytest.raises(s3.exceptions.ClientError, match="403"):
        s3.put_object(Bucket="tls-probe", Key="k", Body=b"2")
    s3_secure_transport.install()
    s3.put_bucket_policy(Bucket="tls-probe", Policy=json.dumps({"Statement": [statement]}))
    with pytest.raises(s3.exceptions.ClientError, match="403"):
        s3.put_object(Bucket="tls-probe", Key="k", Body=b"3")
    # A Deny that exempts one principal cannot be evaluated without principals: dropped (the
    # engine does not enforce identity-based restrictions), while the unconditional Deny stays.
    exempt = statement | {"Condition": {"ArnNotEquals": {
        "aws:PrincipalArn": "arn:aws:iam::123456789012:role/mlops-local-retrain"}}}  # fmt: skip
    s3.put_bucket_policy(Bucket="tls-probe", Policy=json.dumps({"Statement": [exempt]}))
    s3.put_object(Bucket="tls-probe", Key="k", Body=b"4")
    s3.put_bucket_policy(Bucket="tls-probe", Policy=json.dumps({"Statement": [exempt, statement]}))
    with pytest.raises(s3.exceptions.ClientError, match="403"):
        s3.put_object(Bucket="tls-probe", Key="k", Body=b"5")
    s3_secure_transport.uninstall()
