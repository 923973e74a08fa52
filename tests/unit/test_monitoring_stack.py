"""The monitoring stack: drift schedule, alarms, continuous training, dashboards; and its config."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from mlops.config import ConfigError, load_platform_config, read_cdk_context
from tests.conftest import REPO_ROOT, SynthesizedEnvironment, synthesize_environment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
DRIFT = "lambdas.drift_job.handler.handler"
RETRAIN = "lambdas.retrain.handler.handler"


def _platform(env: str, **changes: Any) -> dict[str, Any]:
    platform = copy.deepcopy(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    platform["environments"][env].update(changes)
    return {"platform": platform}


def _function(template: Template, handler: str) -> dict[str, Any]:
    found = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}})
    assert len(found) == 1, sorted(found)
    return dict(next(iter(found.values()))["Properties"])


def _alarms(template: Template, metric: str) -> dict[str, dict[str, Any]]:
    pattern = {"Properties": {"MetricName": metric}}
    found = template.find_resources("AWS::CloudWatch::Alarm", pattern)
    return {name: alarm["Properties"] for name, alarm in found.items()}


def _actions(template: Template, role_prefix: str) -> dict[str, list[Any]]:
    """action -> the resources of the statements granting it, on one role's policies."""
    policies = template.find_resources(
        "AWS::IAM::Policy",
        {"Properties": {"Roles": [{"Ref": Match.string_like_regexp(f"^{role_prefix}")}]}},
    )
    granted: dict[str, list[Any]] = {}
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in actions if isinstance(actions, list) else [actions]:
                granted.setdefault(action, []).extend(
                    resources if isinstance(resources, list) else [resources]
                )
    return granted


def test_the_drift_job_runs_daily_on_the_scheduled_window(synthesized: Synth) -> None:
    template = Template.from_stack(synthesized("dev").stack("monitoring"))
    (schedule,) = template.find_resources("AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(30 0 * * ? *)"
    assert json.loads(props["Target"]["Input"]) == {"end": "<aws.scheduler.scheduled-time>"}
    assert props["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600,
                                              "MaximumRetryAttempts": 2}  # fmt: skip
    assert "DeadLetterConfig" in props["Target"]
    variables = _function(template, DRIFT)["Environment"]["Variables"]
    assert {k: variables[k] for k in ("MODELS", "WINDOW_HOURS", "WARN", "ACT", "MIN_ROWS",
                                      "METRICS_NAMESPACE", "REPORT_PREFIX")} == {
        "MODELS": "credit-risk", "WINDOW_HOURS": "24", "WARN": "0.1", "ACT": "0.25",
        "MIN_ROWS": "100", "METRICS_NAMESPACE": "MLOps/Drift", "REPORT_PREFIX": "drift-reports/",
    }  # fmt: skip
    granted = _actions(template, "DriftJobRole")
    assert "s3:PutObject" in granted and "cloudwatch:PutMetricData" in granted
    assert not [a for a in granted if a.startswith(("sagemaker:Update", "sagemaker:Create"))]
    assert "ssm:PutParameter" not in granted


def test_warn_and_act_alarms_watch_the_worst_psi_and_notify(synthesized: Synth) -> None:
    template = Template.from_stack(synthesized("dev").stack("monitoring"))
    alarms = _alarms(template, "MaxPSI")
    assert sorted(a["Threshold"] for a in alarms.values()) == [0.1, 0.25]
    for alarm in alarms.values():
        assert alarm["Namespace"] == "MLOps/Drift"
        assert alarm["Dimensions"] == [{"Name": "Model", "Value": "credit-risk"}]
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Period"] == 86400 and alarm["Statistic"] == "Maximum"
        assert alarm["TreatMissingData"] == "ignore"
        (action,) = alarm["AlarmActions"]
        assert "Notifications" in json.dumps(action)
    # Policy `notify` (dev's default): nothing retrains.
    assert not template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": RETRAIN}}
    )
    assert not template.find_resources("AWS::Events::Rule")


def test_one_dashboard_per_model_with_every_panel(synthesized: Synth) -> None:
    template = Template.from_stack(synthesized("dev").stack("monitoring"))
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "mlops-dev-monitoring-credit-risk"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in (
        "Requests",
        "Client and server errors",
        "Latency (ms, server side)",
        "Predictions by model version",
        "PSI per feature (daily)",
        "Training runs (all models)",
        "Online feature freshness (lag, s)",
        "Alarms",
    ):
        assert f'\\"title\\":\\"{title}\\"' in body, title  # fmt: skip
    assert '{MLOps/Drift,Model,Feature} MetricName=\\\\\\"PSI\\\\\\"' in body
    assert '{MLOps/Serving,Model,ModelVersion} MetricName=\\\\\\"Predictions\\\\\\"' in body
    assert '\\"stat\\":\\"p99\\"' in body and "FreshnessLagSeconds" in body


def test_local_retrains_on_the_act_alarm_through_the_reserved_prefix(synthesized: Synth) -> None:
    synth = synthesized("local")
    template = Template.from_stack(synth.stack("monitoring"))
    retrain = _function(template, RETRAIN)
    assert retrain["ReservedConcurrentExecutions"] == 1
    assert json.loads(retrain["Environment"]["Variables"]["POLICIES"]) == {
        "credit-risk": {"policy": "retrain", "schedule": False}
    }
    template.has_resource_properties("AWS::IAM::Role", {"RoleName": "mlops-local-retrain"})
    (rule,) = template.find_resources("AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"]
    assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    (act,) = [n for n, a in _alarms(template, "MaxPSI").items() if a["Threshold"] == 0.25]
    assert pattern["resources"] == [{"Fn::GetAtt": [act, "Arn"]}]
    granted = _actions(template, "RetrainRole")
    assert len(granted["s3:PutObject"]) == 1
    assert "continuous-training/*" in json.dumps(granted["s3:PutObject"])
    # The training stack's code bucket lets no one else write there.
    training = Template.from_stack(synth.stack("training"))
    training.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {
        "Statement": Match.array_with([Match.object_like({
            "Sid": "ContinuousTrainingWritesOnly", "Effect": "Deny", "Action": "s3:PutObject",
            "Condition": {"ArnNotEquals": {
                "aws:PrincipalArn": "arn:aws:iam::123456789012:role/mlops-local-retrain"}},
        })])}})  # fmt: skip
    (trigger,) = training.find_resources(
        "AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["aws.s3"]}}}
    ).values()
    assert trigger["Properties"]["EventPattern"]["detail"]["object"]["key"] == [
        {"prefix": "bundles/"},
        {"prefix": "continuous-training/"},
    ]


def test_schedules_auto_approval_and_policy_off(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    overrides = _platform("dev", monitoring={
        "drift_schedule": "rate(6 hours)", "window_days": 2, "warn": 0.2, "act": 0.3,
        "models": {"credit-risk": {"policy": "off"}},
    })  # fmt: skip
    synth = synthesize_environment("dev", tmp_path_factory.mktemp("off"), overrides=overrides)
    template = Template.from_stack(synth.stack("monitoring"))
    alarms = _alarms(template, "MaxPSI")
    assert sorted(a["Threshold"] for a in alarms.values()) == [0.2, 0.3]
    assert all("AlarmActions" not in a for a in alarms.values())
    template.has_resource_properties(
        "AWS::Scheduler::Schedule", {"ScheduleExpression": "rate(6 hours)"}
    )
    assert _function(template, DRIFT)["Environment"]["Variables"]["WINDOW_HOURS"] == "48"

    overrides = _platform(
        "dev",
        monitoring={
            "models": {
                "credit-risk": {
                    "policy": "notify",
                    "retrain_schedule": "cron(0 3 ? * MON *)",
                    "auto_approve": True,
                }
            }
        },
    )
    synth = synthesize_environment("dev", tmp_path_factory.mktemp("auto"), overrides=overrides)
    template = Template.from_stack(synth.stack("monitoring"))
    schedules = template.find_resources(
        "AWS::Scheduler::Schedule", {"Properties": {"ScheduleExpression": "cron(0 3 ? * MON *)"}}
    )
    (schedule,) = schedules.values()
    assert json.loads(schedule["Properties"]["Target"]["Input"]) == {
        "model": "credit-risk",
        "reason": "schedule",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }
    assert not template.find_resources("AWS::Events::Rule")  # notify: no drift-driven runs
    training = Template.from_stack(synth.stack("training"))
    register = _function(training, "lambdas.register_model.handler.handler")
    assert register["Environment"]["Variables"]["AUTO_APPROVE_MODELS"] == "credit-risk"
    granted = _actions(training, "RegisterFunctionRole")
    assert "credit-risk/*" in json.dumps(granted["sagemaker:UpdateModelPackage"])


def test_monitoring_can_be_left_out(tmp_path_factory: pytest.TempPathFactory) -> None:
    overrides = _platform("dev", monitoring={"enabled": False})
    synth = synthesize_environment("dev", tmp_path_factory.mktemp("nomon"), overrides=overrides)
    assert not [s for s in synth.stacks if s.stack_name.endswith("-monitoring")]


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"models": {"fraud": {}}}, "monitoring.models ['fraud'] are not in serving.models"),
        ({"warn": 0.3, "act": 0.2}, "warn (0.3) must not exceed act (0.2)"),
        ({"models": {"credit-risk": {"auto_approve": True}}}, "auto_approve needs"),
        ({"models": {"credit-risk": {"policy": "off", "retrain_schedule": "rate(7 days)"}}},
         "policy 'off' takes neither"),
        ({"drift_schedule": "daily"}, "drift_schedule"),
        ({"models": {"credit-risk": {"policy": "sometimes"}}}, "policy"),
    ],
)  # fmt: skip
def test_bad_monitoring_config_is_refused_by_name(monitoring: dict[str, Any], message: str) -> None:
    platform = _platform("dev", monitoring=monitoring)["platform"]
    with pytest.raises(ConfigError, match=None) as raised:
        load_platform_config(platform)
    assert message in str(raised.value)
