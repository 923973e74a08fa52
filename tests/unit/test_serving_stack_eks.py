"""The serving stack with the EKS tier (`serving.eks.mode` 'create' and 'existing') in dev.

One synthesis of the whole dev app per mode, shared by the module: ~1.5 s for 'create' and
~1 s per 'existing' synthesis once the session's jsii runs (~8 s when this module starts it);
cfn-lint over the three 'create' templates takes ~3.5 s.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from mlops.config import read_cdk_context
from serving.k8s import MODEL_CACHE_DIR, MODEL_CACHE_ENV
from tests.conftest import REPO_ROOT, SynthesizedEnvironment, synthesize_environment
from tests.unit.serving_templates import applied_manifest, assert_app_data_statements, imports
from tests.unit.test_nag_and_lint import ACCEPTED_CFN_LINT

pytestmark = pytest.mark.unit
IMAGE = "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/mlops/model-proxy:v7"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-northeast-2.amazonaws.com/id/AB12"
KUBECTL_ROLE = "arn:aws:iam::123456789012:role/cluster-deployer"
NAMESPACE = "serving-test"
EXISTING = {
    "mode": "existing", "image": IMAGE, "namespace": NAMESPACE, "cluster_name": "shared",
    "kubectl_role_arn": KUBECTL_ROLE, "oidc_provider_arn": OIDC_ARN,
}  # fmt: skip


def _synth(outdir: Path, serving: dict[str, Any]) -> SynthesizedEnvironment:
    platform = copy.deepcopy(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    platform["environments"]["dev"]["serving"] = serving
    return synthesize_environment("dev", outdir, overrides={"platform": platform})


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    """Both tiers: the Lambda (default) and a cluster this app creates."""
    eks = {"mode": "create", "image": IMAGE, "namespace": NAMESPACE}
    return _synth(tmp_path_factory.mktemp("eks-create"), {"eks": eks})


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedEnvironment:
    """EKS only, on an existing cluster whose security group is known."""
    eks = {**EXISTING, "cluster_security_group_id": "sg-0a1"}
    return _synth(
        tmp_path_factory.mktemp("eks-existing"), {"eks": eks, "lambda": {"enabled": False}}
    )


def _template(synth: SynthesizedEnvironment) -> Template:
    return Template.from_stack(synth.stack("serving"))


def _findings(synth: SynthesizedEnvironment) -> list[str]:
    """Unsuppressed nag errors and warnings in the serving stack and its nested stacks, read
    from manifest.json (the assertions Annotations API cannot read them under jsii 1.119)."""
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    prefix = f"/{synth.stack('serving').stack_name}/"
    return [
        f"{path}: {entry['data']}"
        for artifact in manifest["artifacts"].values()
        for path, entries in artifact.get("metadata", {}).items()
        for entry in entries
        if entry["type"] in ("aws:cdk:error", "aws:cdk:warning") and path.startswith(prefix)
    ]


def _container_env(template: Template) -> dict[str, Any]:
    """The container's variables, each token put back in place of its `${i}`."""
    objects, tokens = applied_manifest(template)
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    env = {}
    for item in container["env"]:
        value = item["value"]
        if value.startswith("${") and value.endswith("}") and value[2:-1].isdigit():
            value = tokens[int(value[2:-1])]
        env[item["name"]] = value
    return env


def _pods_role(template: Template) -> str:
    (role_id,) = template.find_resources(
        "AWS::IAM::Role", {"Properties": {"Description": f"Pods of {NAMESPACE}/model-proxy (IRSA)"}}
    )
    return role_id


def _pods_statements(template: Template) -> dict[str, Any]:
    policies = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": _pods_role(template)}]
    ]
    assert len(policies) == 1
    return {statement["Action"]: statement for statement in policies[0]}


def test_the_pods_get_the_lambdas_settings_with_their_own_model_cache(
    created: SynthesizedEnvironment,
) -> None:
    template = _template(created)
    env = _container_env(template)
    (function,) = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "serving.lambda_handler.handler"}}
    ).values()
    lambda_env = dict(function["Properties"]["Environment"]["Variables"])
    assert lambda_env.pop(MODEL_CACHE_ENV) == "/tmp/mlops-models"
    assert env.pop(MODEL_CACHE_ENV) == MODEL_CACHE_DIR
    assert env == lambda_env
    assert set(json.loads(env["MLOPS_SERVING_SPEC"])["models"]) == {"credit-risk"}
    assert imports(env["MLOPS_SERVING_REDIS_HOST"], "feature-store", "PrimaryEndPointAddress")
    assert env["MLOPS_SERVING_PREDICTION_LOG_STREAM"]["Ref"].startswith("PredictionLogStream")


def test_the_pods_role_holds_the_apps_statements(created: SynthesizedEnvironment) -> None:
    by_action = _pods_statements(_template(created))
    assert set(by_action) == {
        "ssm:GetParameter", "sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage",
        "s3:GetObject", "secretsmanager:GetSecretValue", "kms:Decrypt", "firehose:PutRecordBatch",
    }  # fmt: skip
    describe = by_action["sagemaker:DescribeModelPackage"]["Resource"]["Fn::Join"][1]
    assert describe[-1] == ":model-package/credit-risk/*"
    assert_app_data_statements(by_action)


def test_the_created_cluster_uses_the_platform_key_and_the_environments_log_settings(
    created: SynthesizedEnvironment,
) -> None:
    template = _template(created)
    (cluster,) = template.find_resources("Custom::AWSCDK-EKS-Cluster").values()
    config = cluster["Properties"]["Config"]
    assert config["name"] == "mlops-dev-serving"
    (encryption,) = config["encryptionConfig"]
    assert imports(encryption["provider"]["keyArn"], "security", "DataKey")
    (log_group,) = template.find_resources(
        "AWS::Logs::LogGroup",
        {"Properties": {"LogGroupName": "/aws/eks/mlops-dev-serving/cluster"}},
    ).values()
    assert log_group["Properties"]["RetentionInDays"] == 30
    assert log_group["DeletionPolicy"] == "Delete"  # dev: removal_policy destroy


def test_redis_admits_the_cluster_security_group_on_6379(created: SynthesizedEnvironment) -> None:
    template = _template(created)
    (cluster_id,) = template.find_resources("Custom::AWSCDK-EKS-Cluster")
    (rule,) = template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    properties = rule["Properties"]
    assert (properties["IpProtocol"], properties["FromPort"], properties["ToPort"]) == (
        "tcp", 6379, 6379
    )  # fmt: skip
    assert imports(properties["GroupId"], "feature-store", "OnlineRedis")
    assert properties["SourceSecurityGroupId"] == {
        "Fn::GetAtt": [cluster_id, "ClusterSecurityGroupId"]
    }


def test_outputs_name_the_cluster_and_the_namespace(created: SynthesizedEnvironment) -> None:
    template = _template(created)
    (cluster_id,) = template.find_resources("Custom::AWSCDK-EKS-Cluster")
    outputs = template.find_outputs("*")
    assert outputs["EksClusterName"]["Value"] == {"Ref": cluster_id}
    assert outputs["ServingNamespace"]["Value"] == NAMESPACE
    assert {"ServingUrl", "PredictionLogStream"} <= set(outputs)


def test_create_mode_leaves_no_unsuppressed_nag_findings(created: SynthesizedEnvironment) -> None:
    assert _findings(created) == []


def test_existing_mode_imports_the_cluster_and_opens_redis_to_its_group(
    existing: SynthesizedEnvironment,
) -> None:
    template = _template(existing)
    for resource_type in ("Custom::AWSCDK-EKS-Cluster", "AWS::EKS::Cluster", "AWS::Lambda::Url"):
        template.resource_count_is(resource_type, 0)
    template.has_resource_properties(
        "Custom::AWSCDK-EKS-KubernetesResource",
        {"ClusterName": "shared", "RoleArn": KUBECTL_ROLE},
    )
    role = template.find_resources("AWS::IAM::Role")[_pods_role(template)]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Federated": OIDC_ARN}
    assert "firehose:PutRecordBatch" in _pods_statements(template)
    (rule,) = template.find_resources("AWS::EC2::SecurityGroupIngress").values()
    assert rule["Properties"]["SourceSecurityGroupId"] == "sg-0a1"
    assert rule["Properties"]["FromPort"] == 6379
    outputs = template.find_outputs("*")
    assert outputs["EksClusterName"]["Value"] == "shared"
    assert {o for o in outputs if not o.startswith("ExportsOutput")} == {
        "PredictionLogBucket", "PredictionLogStream", "EksClusterName", "ServingNamespace"
    }  # fmt: skip
    assert _findings(existing) == []


def test_existing_mode_without_the_cluster_group_warns_that_redis_stays_closed(
    tmp_path: Path,
) -> None:
    synth = _synth(tmp_path, {"eks": EXISTING, "lambda": {"enabled": False}})
    _template(synth).resource_count_is("AWS::EC2::SecurityGroupIngress", 0)
    (warning,) = _findings(synth)
    assert warning.startswith("/mlops-dev-serving/Eks: ")
    assert "cluster_security_group_id is not set" in warning and "6379" in warning


def test_create_mode_templates_pass_cfn_lint(created: SynthesizedEnvironment) -> None:
    """The serving stack and the nested stacks aws-eks adds to it."""
    from cfnlint.api import ManualArgs, lint

    templates = sorted(created.outdir.glob("mlops*dev*serving*.template.json"))
    assert len(templates) == 3
    problems = [
        f"{template.name}: {match.rule.id} {match.message}"
        for template in templates
        for match in lint(template.read_text(), config=ManualArgs(regions=["ap-northeast-2"]))
        if not any(match.rule.id == rule and text in str(match.message)
                   for rule, text in ACCEPTED_CFN_LINT)
    ]  # fmt: skip
    assert problems == []
