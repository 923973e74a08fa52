"""ServingOnEks (stacks/constructs/serving_eks.py) synthesized in bare stacks, cdk-nag applied.

One synthesis per mode, shared by the module (~5 s for 'create', ~2 s for 'existing' after the
session's first jsii start).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template

from mlops.config import read_cdk_context
from mlops.config_serving import EksServing
from stacks.constructs.serving_eks import ExistingCluster, NodeGroupSpec, ServingOnEks
from stacks.platform import apply_nag
from tests.conftest import REPO_ROOT
from tests.unit.serving_templates import applied_manifest

pytestmark = pytest.mark.unit
IMAGE = "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/model-proxy:v3"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-northeast-2.amazonaws.com/id/ABC123"
KUBECTL_ROLE = "arn:aws:iam::123456789012:role/cluster-deployer"
REGISTRY = iam.PolicyStatement(
    actions=["sagemaker:ListModelPackages"],
    resources=["arn:aws:sagemaker:ap-northeast-2:123456789012:model-package-group/credit-risk"],
)
ANY_RESOURCE = iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"])
SCAFFOLD = ("/Test/Vpc", "/Test/Key")  # the test's own VPC and key, not the construct's


@dataclass
class Synth:
    stack: cdk.Stack
    serving: ServingOnEks
    template: Template
    outdir: Path

    def findings(self) -> list[str]:
        """Unsuppressed nag errors/warnings outside the scaffolding, from manifest.json (the
        assertions Annotations API cannot read them under jsii 1.119)."""
        manifest = json.loads((self.outdir / "manifest.json").read_text())
        return [
            f"{path}: {entry['data']}"
            for artifact in manifest["artifacts"].values()
            for path, entries in artifact.get("metadata", {}).items()
            for entry in entries
            if entry["type"] in ("aws:cdk:error", "aws:cdk:warning")
            and not path.startswith(SCAFFOLD)
        ]


def _synth(outdir: Path, config: EksServing, **kwargs: Any) -> Synth:
    flags = {k: v for k, v in read_cdk_context(REPO_ROOT / "cdk.json").items() if k[0] == "@"}
    app = cdk.App(context={**flags, "aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    stack = cdk.Stack(app, "Test", env=cdk.Environment(region="ap-northeast-2"))
    vpc = ec2.Vpc(
        stack, "Vpc", availability_zones=["ap-northeast-2a", "ap-northeast-2c"], nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ],
    )  # fmt: skip
    redis_host = cdk.CfnParameter(stack, "RedisHost").value_as_string
    serving = ServingOnEks(
        stack, "Serving", config=config, vpc=vpc, name_prefix="mlops-test",
        env={"MLOPS_SERVING_REDIS_HOST": redis_host, "MLOPS_SERVING_MAX_BATCH_SIZE": "100"},
        secrets_key=kms.Key(stack, "Key"), **kwargs,
    )  # fmt: skip
    apply_nag(app)
    app.synth()
    return Synth(stack, serving, Template.from_stack(stack), outdir)


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    config = EksServing(mode="create", image=IMAGE, namespace="serving-test", workers=2)
    return _synth(
        tmp_path_factory.mktemp("eks-create"), config, statements=[REGISTRY],
        nodes=NodeGroupSpec(instance_types=("c7i.xlarge",), min_size=3, desired_size=3,
                            max_size=6),
    )  # fmt: skip


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    config = EksServing(
        mode="existing", image=IMAGE, cluster_name="shared-cluster",
        kubectl_role_arn=KUBECTL_ROLE, oidc_provider_arn=OIDC_ARN, namespace="serving-test",
    )  # fmt: skip
    return _synth(
        tmp_path_factory.mktemp("eks-existing"), config, statements=[REGISTRY, ANY_RESOURCE],
        existing=ExistingCluster(oidc_provider_arn=OIDC_ARN, cluster_security_group_id="sg-0a1"),
    )  # fmt: skip


def _private_subnets(template: Template) -> list[dict[str, str]]:
    subnets = template.find_resources("AWS::EC2::Subnet")
    return [
        {"Ref": logical_id}
        for logical_id, subnet in sorted(subnets.items())
        if {"Key": "aws-cdk:subnet-name", "Value": "private"} in subnet["Properties"]["Tags"]
    ]


def _role_id(template: Template) -> str:
    (role_id,) = template.find_resources(
        "AWS::IAM::Role", {"Properties": {"Description": "Pods of serving-test/model-proxy (IRSA)"}}
    )
    return role_id


def test_cluster_is_private_in_private_subnets_with_logging_and_secrets_encryption(
    created: Synth,
) -> None:
    (cluster,) = created.template.find_resources("Custom::AWSCDK-EKS-Cluster").values()
    config = cluster["Properties"]["Config"]
    vpc_config = config["resourcesVpcConfig"]
    assert sorted(vpc_config["subnetIds"], key=str) == _private_subnets(created.template)
    assert (vpc_config["endpointPublicAccess"], vpc_config["endpointPrivateAccess"]) == (
        False, True
    )  # fmt: skip
    assert config["logging"] == {"clusterLogging": [{"enabled": True, "types": [
        "api", "audit", "authenticator", "controllerManager", "scheduler"]}]}  # fmt: skip
    (key_id,) = created.template.find_resources("AWS::KMS::Key")
    assert config["encryptionConfig"] == [
        {"provider": {"keyArn": {"Fn::GetAtt": [key_id, "Arn"]}}, "resources": ["secrets"]}
    ]
    assert config["accessConfig"] == {"authenticationMode": "API"}
    assert (config["name"], config["version"]) == ("mlops-test-serving", "1.34")


def test_control_plane_log_group_has_retention_and_encryption(created: Synth) -> None:
    created.template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": "/aws/eks/mlops-test-serving/cluster", "RetentionInDays": 30,
         "KmsKeyId": Match.any_value()},
    )  # fmt: skip


def test_node_group_and_metrics_server(created: Synth) -> None:
    created.template.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {"Subnets": _private_subnets(created.template), "InstanceTypes": ["c7i.xlarge"],
         "AmiType": "AL2023_x86_64_STANDARD", "CapacityType": "ON_DEMAND",
         "ScalingConfig": {"MinSize": 3, "DesiredSize": 3, "MaxSize": 6}},
    )  # fmt: skip
    (nodegroup_id,) = created.template.find_resources("AWS::EKS::Nodegroup")
    (addon,) = created.template.find_resources(
        "AWS::EKS::Addon", {"Properties": {"AddonName": "metrics-server"}}
    ).values()
    assert nodegroup_id in addon["DependsOn"]  # its pods need nodes to become active


def test_kubectl_handler_runs_in_the_private_subnets(created: Synth) -> None:
    provider = created.stack.node.find_child("@aws-cdk--aws-eks.KubectlProvider")
    nested = Template.from_stack(provider)  # type: ignore[arg-type]
    nested.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "index.handler", "Layers": Match.any_value(),
         "VpcConfig": {"SubnetIds": Match.any_value(), "SecurityGroupIds": Match.any_value()}},
    )  # fmt: skip


def test_manifest_applies_the_deployment_with_the_image_and_the_irsa_annotation(
    created: Synth,
) -> None:
    objects, tokens = applied_manifest(created.template)
    assert list(objects) == [
        "Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]  # fmt: skip
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["command"][-2:] == ["--workers", "2"]
    annotation = objects["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert tokens[int(annotation[2:-1])] == {"Fn::GetAtt": [_role_id(created.template), "Arn"]}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert tokens[int(env["MLOPS_SERVING_REDIS_HOST"][2:-1])] == {"Ref": "RedisHost"}


def test_irsa_role_trusts_only_the_service_account_through_the_clusters_oidc_provider(
    created: Synth,
) -> None:
    template = created.template
    (provider_id,) = template.find_resources("Custom::AWSCDKOpenIdConnectProvider")
    role = template.find_resources("AWS::IAM::Role")[_role_id(template)]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": {"Ref": provider_id}}
    (condition_id, _) = statement["Condition"]["StringEquals"]["Fn::GetAtt"]
    value = template.find_resources("Custom::AWSCDKCfnJson")[condition_id]["Properties"]["Value"]
    literal = "".join(p for p in value["Fn::Join"][1] if isinstance(p, str))
    assert ':sub":"system:serviceaccount:serving-test:model-proxy"' in literal
    assert ':aud":"sts.amazonaws.com"' in literal
    issuers = [p for p in value["Fn::Join"][1] if not isinstance(p, str)]
    assert issuers and all(json.dumps({"Ref": provider_id}) in json.dumps(p) for p in issuers)


def test_irsa_role_holds_exactly_the_given_statements(created: Synth) -> None:
    created.template.has_resource_properties(
        "AWS::IAM::Policy",
        {"Roles": [{"Ref": _role_id(created.template)}],
         "PolicyDocument": {"Statement": [
             {"Action": "sagemaker:ListModelPackages", "Effect": "Allow",
              "Resource": REGISTRY.resources[0]}]}},
    )  # fmt: skip


def test_create_mode_leaves_no_unsuppressed_nag_findings(created: Synth) -> None:
    assert created.findings() == []


def test_existing_cluster_is_imported_not_created(existing: Synth) -> None:
    template = existing.template
    template.resource_count_is("Custom::AWSCDK-EKS-Cluster", 0)
    template.resource_count_is("AWS::EKS::Nodegroup", 0)
    template.has_resource_properties(
        "Custom::AWSCDK-EKS-KubernetesResource",
        {"ClusterName": "shared-cluster", "RoleArn": KUBECTL_ROLE, "Overwrite": True},
    )
    objects, _ = applied_manifest(template)
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert existing.serving.cluster_security_group is not None


def test_existing_cluster_irsa_trusts_the_given_provider(existing: Synth) -> None:
    template = existing.template
    role = template.find_resources("AWS::IAM::Role")[_role_id(template)]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    (condition_id, _) = statement["Condition"]["StringEquals"]["Fn::GetAtt"]
    value = template.find_resources("Custom::AWSCDKCfnJson")[condition_id]["Properties"]["Value"]
    issuer = OIDC_ARN.split(":oidc-provider/")[1]
    assert json.loads(value) == {
        f"{issuer}:sub": "system:serviceaccount:serving-test:model-proxy",
        f"{issuer}:aud": "sts.amazonaws.com",
    }


def test_existing_cluster_kubectl_handler_uses_the_cluster_security_group(
    existing: Synth,
) -> None:
    (provider,) = [
        child for child in existing.stack.node.children if child.node.id.endswith("KubectlProvider")
    ]
    nested = Template.from_stack(provider)  # type: ignore[arg-type]
    nested.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "index.handler",
         "VpcConfig": Match.object_like({"SecurityGroupIds": ["sg-0a1"]})},
    )  # fmt: skip


def test_the_callers_wildcard_statement_is_still_reported(existing: Synth) -> None:
    """aws-eks's own findings are suppressed; the pods' statements are the caller's to justify."""
    findings = existing.findings()
    assert len(findings) == 1
    role_policy = "/Test/Serving/ServiceAccountRole/DefaultPolicy/Resource"
    assert re.match(rf"^{role_policy}: AwsSolutions-IAM5\[Resource::\*\]", findings[0])


@pytest.mark.parametrize(
    ("config", "kwargs", "message"),
    [
        (EksServing(), {}, "'off'"),
        (EksServing(mode="existing", image=IMAGE, cluster_name="c", kubectl_role_arn=KUBECTL_ROLE,
                    oidc_provider_arn=OIDC_ARN), {}, "needs `existing`"),
    ],
)  # fmt: skip
def test_rejects_off_and_existing_without_its_provider(
    config: EksServing, kwargs: dict[str, Any], message: str
) -> None:
    stack = cdk.Stack(cdk.App(), "Bare")
    vpc = ec2.Vpc.from_vpc_attributes(
        stack, "Vpc", vpc_id="vpc-1", availability_zones=["ap-northeast-2a"],
        private_subnet_ids=["subnet-1"],
    )  # fmt: skip
    with pytest.raises(ValueError, match=message):
        ServingOnEks(stack, "Serving", config=config, vpc=vpc, env={}, statements=[],
                     name_prefix="p", **kwargs)  # fmt: skip
