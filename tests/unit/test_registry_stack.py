"""The registry stack: groups, the approval rule's filters, the hook, the ledger, alarms."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from mlops.config import read_cdk_context
from tests.conftest import REPO_ROOT, SynthesizedEnvironment, synthesize_environment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
HOOK = "lambdas.approval_hook.handler.handler"


def _registry(synthesized: Synth, env: str = "dev") -> Template:
    return Template.from_stack(synthesized(env).stack("registry"))


def _rule(template: Template, source: str) -> dict[str, Any]:
    rules = template.find_resources(
        "AWS::Events::Rule", {"Properties": {"EventPattern": {"source": [source]}}}
    )
    assert len(rules) == 1, sorted(rules)
    return dict(next(iter(rules.values()))["Properties"])


def _hook(template: Template) -> dict[str, Any]:
    found = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": HOOK}})
    assert len(found) == 1
    return dict(next(iter(found.values()))["Properties"])


def _statements(template: Template) -> dict[str, dict[str, Any]]:
    policies = template.find_resources(
        "AWS::IAM::Policy",
        {"Properties": {"Roles": [{"Ref": Match.string_like_regexp("^ApprovalHookRole")}]}},
    )
    (policy,) = policies.values()
    return {
        action: statement
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (statement["Action"] if isinstance(statement["Action"], list)
                       else [statement["Action"]])
    }  # fmt: skip


def test_the_rule_fires_only_on_decisions_about_the_platforms_groups(synthesized: Synth) -> None:
    template = _registry(synthesized)
    rule = _rule(template, "aws.sagemaker")
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": ["credit-risk"],
            "ModelApprovalStatus": ["Approved", "Rejected"],
        },
    }
    (target,) = rule["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 21600, "MaximumRetryAttempts": 8}
    assert "Arn" in target["DeadLetterConfig"]
    rollout = _rule(template, "aws.codedeploy")
    assert rollout["EventPattern"]["detail-type"] == [
        "CodeDeploy Deployment State-change Notification"
    ]
    assert rollout["EventPattern"]["detail"]["state"] == ["SUCCESS", "FAILURE", "STOP"]
    assert "Fn::ImportValue" in rollout["EventPattern"]["detail"]["application"][0]


def test_one_group_per_served_model_and_the_ledger_is_durable(synthesized: Synth) -> None:
    template = _registry(synthesized)
    groups = template.find_resources("AWS::SageMaker::ModelPackageGroup")
    assert [g["Properties"]["ModelPackageGroupName"] for g in groups.values()] == ["credit-risk"]
    assert all("ModelPackageGroupPolicy" not in g["Properties"] for g in groups.values())
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "model", "KeyType": "HASH"},
                          {"AttributeName": "entry", "KeyType": "RANGE"}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS",
                                 "KMSMasterKeyId": Match.any_value()},
        },
    )  # fmt: skip


def test_the_hook_runs_alone_knows_its_targets_and_keeps_what_it_cannot_handle(
    synthesized: Synth,
) -> None:
    template = _registry(synthesized)
    hook = _hook(template)
    assert hook["ReservedConcurrentExecutions"] == 1
    variables = hook["Environment"]["Variables"]
    assert variables["MODELS"] == "credit-risk"
    assert variables["CHAMPION_PREFIX"] == "/mlops/dev/champions/"
    assert variables["SERVING_ALIAS"] == "live"
    assert variables["EKS_ENABLED"] == "false"
    assert '"credit-risk"' in variables["MLOPS_SERVING_SPEC"]
    for name in ("SERVING_FUNCTION", "ROLLOUT_APPLICATION", "ROLLOUT_GROUP"):
        assert "Fn::ImportValue" in variables[name], name
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"MaximumRetryAttempts": 2,
         "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}}},
    )  # fmt: skip


def test_the_hook_may_touch_exactly_its_pointers_function_and_deployment_group(
    synthesized: Synth,
) -> None:
    statements = _statements(_registry(synthesized))
    pointer = statements["ssm:PutParameter"]
    assert statements["ssm:GetParameter"] is pointer
    assert pointer["Resource"] == {"Fn::Join": ["", [
        "arn:aws:ssm:ap-northeast-2:", {"Ref": "AWS::AccountId"},
        ":parameter/mlops/dev/champions/credit-risk",
    ]]}  # fmt: skip
    alias = statements["lambda:UpdateAlias"]
    assert alias is statements["lambda:PublishVersion"]
    function, live = alias["Resource"]
    assert "Fn::ImportValue" in function
    assert live["Fn::Join"][1][1] == ":live"
    shift = statements["codedeploy:CreateDeployment"]
    assert {"codedeploy:StopDeployment", "codedeploy:GetDeployment"} <= set(shift["Action"])
    assert "*" not in str(shift["Resource"])
    unscoped = {a for a, s in statements.items() if s["Resource"] == "*"}
    assert unscoped == {"xray:PutTelemetryRecords", "xray:PutTraceSegments"}  # no resource ARNs


def test_alarms_go_to_the_notification_topic(synthesized: Synth) -> None:
    template = _registry(synthesized)
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == 3
    for alarm in alarms.values():
        (action,) = alarm["Properties"]["AlarmActions"]
        assert "Notifications" in str(action)
    template.has_resource_properties(
        "AWS::Logs::MetricFilter",
        {"FilterPattern": '{ $.outcome = "failed" }',
         "MetricTransformations": [Match.object_like({"MetricName": "RolloutsFailed"})]},
    )  # fmt: skip


def _platform(env: str, **changes: Any) -> dict[str, Any]:
    platform = copy.deepcopy(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    platform["environments"][env].update(changes)
    return {"platform": platform}


def test_all_at_once_needs_no_deployment_group_and_readers_get_a_group_policy(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    overrides = _platform(
        "dev",
        serving={"lambda": {"rollout": {"strategy": "all_at_once"}}},
        registry={"cross_account_readers": ["210987654321"]},
    )
    synth = synthesize_environment("dev", tmp_path_factory.mktemp("reg"), overrides=overrides)
    template = Template.from_stack(synth.stack("registry"))
    assert not template.find_resources(
        "AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["aws.codedeploy"]}}}
    )
    variables = _hook(template)["Environment"]["Variables"]
    assert "ROLLOUT_GROUP" not in variables and "SERVING_FUNCTION" in variables
    assert not [a for a in _statements(template) if a.startswith("codedeploy:")]
    (group,) = template.find_resources("AWS::SageMaker::ModelPackageGroup").values()
    (statement,) = group["Properties"]["ModelPackageGroupPolicy"]["Statement"]
    assert statement["Principal"] == {"AWS": ["arn:aws:iam::210987654321:root"]}
    assert "sagemaker:UpdateModelPackage" not in statement["Action"]


def test_without_a_lambda_tier_the_hook_only_moves_the_pointer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    overrides = _platform("dev", serving={"lambda": {"enabled": False}})
    synth = synthesize_environment("dev", tmp_path_factory.mktemp("nolambda"), overrides=overrides)
    template = Template.from_stack(synth.stack("registry"))
    variables = _hook(template)["Environment"]["Variables"]
    assert "SERVING_FUNCTION" not in variables
    assert not [a for a in _statements(template) if a.startswith(("lambda:", "codedeploy:"))]
