from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.conftest import SynthesizedEnvironment, synthesize_environment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]


def _network(synthesized: Synth, env: str) -> Template:
    return Template.from_stack(synthesized(env).stack("network"))


def test_dev_vpc_has_isolated_private_subnets_only(synthesized: Synth) -> None:
    template = _network(synthesized, "dev")
    template.has_resource_properties("AWS::EC2::VPC", {"CidrBlock": "10.20.0.0/16"})
    subnets = template.find_resources("AWS::EC2::Subnet")
    assert len(subnets) == 2
    assert {s["Properties"]["AvailabilityZone"] for s in subnets.values()} == {
        "ap-northeast-2a",
        "ap-northeast-2c",
    }
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)


def test_prod_vpc_spans_three_zones(synthesized: Synth) -> None:
    template = _network(synthesized, "prod")
    template.resource_count_is("AWS::EC2::Subnet", 3)


def test_flow_logs_go_to_an_encrypted_log_group_with_retention(synthesized: Synth) -> None:
    template = _network(synthesized, "dev")
    template.has_resource_properties(
        "AWS::EC2::FlowLog",
        {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"},
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"RetentionInDays": 30, "KmsKeyId": {"Fn::ImportValue": Match.any_value()}},
    )


def test_gateway_and_interface_endpoints(synthesized: Synth) -> None:
    template = _network(synthesized, "dev")
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint")
    gateway = [e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Gateway"]
    interface = [
        e for e in endpoints.values() if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert len(gateway) == 2  # S3 and DynamoDB
    services = {_service_suffix(e["Properties"]["ServiceName"]) for e in interface}
    assert services == {
        "sagemaker.api", "sagemaker.runtime", "states", "logs", "secretsmanager",
        "ecr.api", "ecr.dkr", "sts", "monitoring", "athena", "glue",
    }  # fmt: skip
    assert all(e["Properties"]["PrivateDnsEnabled"] is True for e in interface)


def test_endpoint_security_group_allows_only_https_from_the_vpc(synthesized: Synth) -> None:
    template = _network(synthesized, "dev")
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "Interface VPC endpoints: HTTPS from inside the VPC only",
            "SecurityGroupIngress": [
                {"CidrIp": "10.20.0.0/16", "FromPort": 443, "ToPort": 443, "IpProtocol": "tcp",
                 "Description": "HTTPS from inside the VPC"}
            ],
            "SecurityGroupEgress": [Match.object_like({"CidrIp": "255.255.255.255/32"})],
        },
    )  # fmt: skip


def test_default_security_group_is_restricted(synthesized: Synth) -> None:
    _network(synthesized, "dev").resource_count_is("Custom::VpcRestrictDefaultSG", 1)


def test_local_environment_creates_no_interface_endpoints(synthesized: Synth) -> None:
    endpoints = _network(synthesized, "local").find_resources("AWS::EC2::VPCEndpoint")
    assert all(e["Properties"].get("VpcEndpointType") == "Gateway" for e in endpoints.values())


def test_nat_gateways_add_public_subnets_and_egress(tmp_path: Any) -> None:
    overrides = _with_network(dev={"nat_gateways": 1})
    env = synthesize_environment("dev", tmp_path, overrides=overrides)
    template = Template.from_stack(env.stack("network"))
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    template.resource_count_is("AWS::EC2::Subnet", 4)
    template.resource_count_is("AWS::EC2::InternetGateway", 1)


def _with_network(**per_env: dict[str, Any]) -> dict[str, Any]:
    import copy

    from mlops.config import read_cdk_context
    from tests.conftest import REPO_ROOT

    platform = copy.deepcopy(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    for env, values in per_env.items():
        platform["environments"][env]["network"].update(values)
    return {"platform": platform}


def _service_suffix(name: Any) -> str:
    """ServiceName is `com.amazonaws.<region>.<service>`, possibly built with Fn::Join."""
    if isinstance(name, dict):
        parts = name["Fn::Join"][1]
        name = "".join(p if isinstance(p, str) else "" for p in parts)
    return str(name).split(".", 3)[-1] if str(name).count(".") >= 3 else str(name).lstrip(".")
