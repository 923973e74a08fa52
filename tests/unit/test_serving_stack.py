from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from mlops.config import read_cdk_context
from stacks.constructs.serving_lambda import SPEC_LIMIT_BYTES, ServingSpecTooLarge
from tests.conftest import REPO_ROOT, SynthesizedEnvironment, synthesize_environment
from tests.unit.serving_templates import assert_app_data_statements, imports

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
HANDLER = "serving.lambda_handler.handler"
TUNED = {
    "models": {
        "credit-risk": {"feature_service": "credit_risk_v1", "entity": "customer_id"},
        "Fraud-Check": {"feature_service": "credit_risk_v1", "entity": "customer_id"},
    },
    "redis_timeout_ms": 35,
    "prediction_log_retention_days": 90,
    "lambda": {"reserved_concurrency": 5, "provisioned_concurrency": 2,
               "p99_latency_alarm_ms": 120, "error_rate_alarm_percent": 2.5,
               "rollout": {"strategy": "linear", "percent": 20, "interval_minutes": 3}},
}  # fmt: skip


def _import(stack: str, fragment: str) -> dict[str, Any]:
    """Matches an `Fn::ImportValue` of another stack's export whose name contains `fragment`."""
    return {"Fn::ImportValue": Match.string_like_regexp(f"^mlops-dev-{stack}:.*{fragment}")}


def _with_serving(serving: dict[str, Any], env: str = "dev") -> dict[str, Any]:
    platform = copy.deepcopy(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    platform["environments"][env]["serving"] = serving
    return {"platform": platform}


def _template(synthesized: Synth, env: str = "dev") -> Template:
    return Template.from_stack(synthesized(env).stack("serving"))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """dev with two models (one with capitals), concurrency settings and other thresholds."""
    synth = synthesize_environment(
        "dev", tmp_path_factory.mktemp("tuned"), overrides=_with_serving(TUNED)
    )
    return Template.from_stack(synth.stack("serving"))


def _function(template: Template) -> dict[str, Any]:
    found = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": HANDLER}})
    assert len(found) == 1, sorted(found)
    return dict(next(iter(found.values()))["Properties"])


def _statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources(
        "AWS::IAM::Policy",
        {"Properties": {"Roles": [{"Ref": Match.string_like_regexp("^LambdaProxyRole")}]}},
    )
    assert len(policies) == 1
    policy = next(iter(policies.values()))
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def _arn_text(resource: Any) -> str:
    """A Fn::Join'ed ARN as text, with references shown as <Ref>/<Import>."""
    if isinstance(resource, str):
        return resource
    if "Fn::Join" in resource:
        return "".join(_arn_text(part) for part in resource["Fn::Join"][1])
    return "<Ref>" if "Ref" in resource else "<Import>" if "Fn::ImportValue" in resource else "?"


def test_the_live_alias_has_an_iam_authenticated_function_url(synthesized: Synth) -> None:
    template = _template(synthesized)
    template.has_resource_properties("AWS::Lambda::Alias", {"Name": "live"})
    template.has_resource_properties(
        "AWS::Lambda::Url",
        {"AuthType": "AWS_IAM", "Qualifier": "live",
         "TargetFunctionArn": {"Fn::GetAtt": [Match.string_like_regexp("^LambdaProxy"), "Arn"]}},
    )  # fmt: skip
    assert not template.find_resources("AWS::Lambda::Permission")  # no public invoke grant
    outputs = template.find_outputs("*")
    assert {"ServingUrl", "ServingFunctionName", "ServingAliasArn", "PredictionLogBucket",
            "PredictionLogStream"} <= set(outputs)  # fmt: skip
    assert outputs["ServingAlias"]["Value"] == "live"


def test_no_provisioned_or_reserved_concurrency_by_default(synthesized: Synth) -> None:
    template = _template(synthesized)
    (alias,) = template.find_resources("AWS::Lambda::Alias").values()
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    assert "ReservedConcurrentExecutions" not in _function(template)


def test_configured_concurrency_lands_on_the_alias_and_the_function(tuned: Template) -> None:
    tuned.has_resource_properties(
        "AWS::Lambda::Alias",
        {"Name": "live", "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 2}},
    )
    assert _function(tuned)["ReservedConcurrentExecutions"] == 5


def test_the_function_runs_in_the_private_subnets_with_the_redis_consumers_group(
    synthesized: Synth,
) -> None:
    template = _template(synthesized)
    function = _function(template)
    assert function["Runtime"] == "python3.14"
    assert function["MemorySize"] == 2048
    assert function["Timeout"] == 10
    assert function["TracingConfig"] == {"Mode": "Active"}
    vpc = function["VpcConfig"]
    first, second = vpc["SubnetIds"]
    assert imports(first, "network", "privateSubnet1")
    assert imports(second, "network", "privateSubnet2")
    consumers, own = vpc["SecurityGroupIds"]
    assert imports(consumers, "feature-store", "OnlineConsumers")
    group_id = own["Fn::GetAtt"][0]
    group = template.to_json()["Resources"][group_id]["Properties"]
    assert group["SecurityGroupEgress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "HTTPS to AWS endpoints", "FromPort": 443,
         "IpProtocol": "tcp", "ToPort": 443}
    ]  # fmt: skip
    assert "SecurityGroupIngress" not in group


def test_the_environment_carries_the_spec_redis_and_runtime_settings(synthesized: Synth) -> None:
    from mlops.config import load_platform_config
    from serving.spec import build_spec_json

    variables = _function(_template(synthesized))["Environment"]["Variables"]
    config = load_platform_config(read_cdk_context(REPO_ROOT / "cdk.json")["platform"])
    dev = config.environments["dev"]
    assert variables["MLOPS_SERVING_SPEC"] == build_spec_json(
        dev.serving, dev.feature_store.feast_project
    )
    assert set(json.loads(variables["MLOPS_SERVING_SPEC"])["models"]) == {"credit-risk"}
    assert imports(variables["MLOPS_SERVING_REDIS_HOST"], "feature-store", "PrimaryEndPointAddress")
    assert imports(variables["MLOPS_SERVING_REDIS_PORT"], "feature-store", "PrimaryEndPointPort")
    secret = variables["MLOPS_SERVING_REDIS_SECRET_ARN"]
    assert imports(secret, "feature-store", "OnlineAuthToken")
    assert variables["MLOPS_SERVING_PREDICTION_LOG_STREAM"]["Ref"].startswith("PredictionLogStream")
    assert {key: value for key, value in variables.items() if isinstance(value, str)} == {
        "MLOPS_SERVING_SPEC": variables["MLOPS_SERVING_SPEC"],
        "MLOPS_SERVING_REDIS_TLS": "true",
        "MLOPS_SERVING_REDIS_TIMEOUT_MS": "20",
        "MLOPS_SERVING_MODEL_SOURCE": "champion",
        "MLOPS_SERVING_CHAMPION_PREFIX": "/mlops/dev/champions/",
        "MLOPS_SERVING_MODEL_CACHE_DIR": "/tmp/mlops-models",
        "MLOPS_SERVING_REFRESH_SECONDS": "30",
        "MLOPS_SERVING_MAX_BATCH_SIZE": "100",
        "MLOPS_SERVING_REGION": "ap-northeast-2",
        "MLOPS_SERVING_METRICS": "emf",
        "MLOPS_SERVING_METRICS_NAMESPACE": "MLOps/Serving",
    }


def test_the_environment_follows_the_serving_config(tuned: Template) -> None:
    variables = _function(tuned)["Environment"]["Variables"]
    assert variables["MLOPS_SERVING_REDIS_TIMEOUT_MS"] == "35"
    assert set(json.loads(variables["MLOPS_SERVING_SPEC"])["models"]) == {
        "credit-risk",
        "Fraud-Check",
    }


def test_the_role_is_scoped_to_the_models_artifacts_secret_and_stream(tuned: Template) -> None:
    by_action = {
        action: statement
        for statement in _statements(tuned)
        for action in (statement["Action"] if isinstance(statement["Action"], list)
                       else [statement["Action"]])
    }  # fmt: skip
    prefix = "arn:aws:sagemaker:ap-northeast-2:<Ref>:"
    lists = sorted(_arn_text(r) for r in by_action["sagemaker:ListModelPackages"]["Resource"])
    assert lists == [f"{prefix}model-package-group/{name}"
                     for name in ("Fraud-Check", "credit-risk", "fraud-check")]  # fmt: skip
    describes = sorted(
        _arn_text(r) for r in by_action["sagemaker:DescribeModelPackage"]["Resource"]
    )
    assert describes == [f"{prefix}model-package/{name}/*"
                         for name in ("Fraud-Check", "credit-risk", "fraud-check")]  # fmt: skip
    assert_app_data_statements(by_action, models=("Fraud-Check", "credit-risk"))
    unscoped = {action for action, s in by_action.items() if s["Resource"] == "*"}
    assert unscoped == {
        "ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces",
        "ec2:UnassignPrivateIpAddresses", "xray:PutTelemetryRecords", "xray:PutTraceSegments",
    }  # fmt: skip


def _alarms(template: Template) -> dict[str, dict[str, Any]]:
    return {
        logical_id: alarm["Properties"]
        for logical_id, alarm in template.find_resources("AWS::CloudWatch::Alarm").items()
    }


def test_alias_alarms_use_the_configured_thresholds_and_notify(tuned: Template) -> None:
    alarms = _alarms(tuned)
    (rate,) = [a for i, a in alarms.items() if i.startswith("LambdaErrorRate")]
    assert rate["Threshold"] == 2.5
    assert rate["ComparisonOperator"] == "GreaterThanThreshold"
    expression, *inputs = rate["Metrics"]
    assert expression["Expression"] == "IF(invocations > 0, 100 * errors / invocations, 0)"
    assert {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in inputs} == {
        "errors": "Errors",
        "invocations": "Invocations",
    }
    for metric in inputs:
        dimensions = {d["Name"]: d["Value"] for d in metric["MetricStat"]["Metric"]["Dimensions"]}
        assert _arn_text(dimensions["Resource"]).endswith(":live")  # the alias, not $LATEST
    (latency,) = [a for i, a in alarms.items() if i.startswith("LambdaLatencyP99")]
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("Duration", "p99")
    assert latency["Threshold"] == 120
    (throttles,) = [a for i, a in alarms.items() if i.startswith("LambdaThrottles")]
    assert (throttles["MetricName"], throttles["Threshold"]) == ("Throttles", 0)
    assert throttles["ComparisonOperator"] == "GreaterThanThreshold"
    assert len(alarms) == 4  # + prediction-log delivery staleness
    for alarm in alarms.values():
        (action,) = alarm["AlarmActions"]
        assert imports(action, "training", "Notifications")


def _rollout(template: Template) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployment group's properties and its deployment config's."""
    (group,) = template.find_resources("AWS::CodeDeploy::DeploymentGroup").values()
    ((config_id, config),) = template.find_resources("AWS::CodeDeploy::DeploymentConfig").items()
    assert group["Properties"]["DeploymentConfigName"] == {"Ref": config_id}
    return group["Properties"], config["Properties"]


def test_a_canary_rollout_shifts_the_alias_and_rolls_back_on_its_alarms(
    synthesized: Synth,
) -> None:
    template = _template(synthesized)
    group, config = _rollout(template)
    assert config == {"ComputePlatform": "Lambda", "TrafficRoutingConfig": {
        "Type": "TimeBasedCanary", "TimeBasedCanary": {"CanaryPercentage": 10,
                                                       "CanaryInterval": 5}}}  # fmt: skip
    own_alarms = {
        i
        for i in _alarms(template)
        if i.startswith(("LambdaErrorRate", "LambdaLatencyP99", "LambdaThrottles"))
    }
    assert len(own_alarms) == 3
    assert group["AlarmConfiguration"]["Enabled"] is True
    assert {alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]} == own_alarms
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert sorted(group["AutoRollbackConfiguration"]["Events"]) == [
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_ALARM",
        "DEPLOYMENT_STOP_ON_REQUEST",
    ]
    ((application_id, application),) = template.find_resources(
        "AWS::CodeDeploy::Application").items()  # fmt: skip
    assert application["Properties"]["ComputePlatform"] == "Lambda"
    assert group["ApplicationName"] == {"Ref": application_id}
    ((alias_id, alias),) = template.find_resources("AWS::Lambda::Alias").items()
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"] == {
        "ApplicationName": {"Ref": application_id}, "DeploymentGroupName": _group_ref(template)
    }  # fmt: skip
    outputs = template.find_outputs("*")
    assert outputs["RolloutApplication"]["Value"] == {"Ref": application_id}
    assert outputs["RolloutDeploymentGroup"]["Value"] == _group_ref(template)
    role_id = group["ServiceRoleArn"]["Fn::GetAtt"][0]
    role = template.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codedeploy.amazonaws.com"
    }
    assert "ManagedPolicyArns" not in role  # not AWSCodeDeployRoleForLambdaLimited
    (policy,) = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}}
    ).values()
    function_id = _function_id(template)
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": ["lambda:GetAlias", "lambda:GetProvisionedConcurrencyConfig",
                    "lambda:UpdateAlias"], "Effect": "Allow",
         "Resource": [{"Fn::GetAtt": [function_id, "Arn"]}, {"Ref": alias_id}]},
        {"Action": "cloudwatch:DescribeAlarms", "Effect": "Allow",
         "Resource": [{"Fn::GetAtt": [alarm, "Arn"]} for alarm in sorted(own_alarms)]},
    ]  # fmt: skip


def _group_ref(template: Template) -> dict[str, str]:
    (group_id,) = template.find_resources("AWS::CodeDeploy::DeploymentGroup")
    return {"Ref": group_id}


def _function_id(template: Template) -> str:
    (function_id,) = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": HANDLER}}
    )
    return function_id


def test_a_linear_rollout_adds_the_configured_share_per_interval(tuned: Template) -> None:
    _, config = _rollout(tuned)
    assert config["TrafficRoutingConfig"] == {
        "Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearPercentage": 20,
                                                       "LinearInterval": 3}}  # fmt: skip


def test_all_at_once_leaves_the_alias_without_a_deployment_group(tmp_path: Path) -> None:
    overrides = _with_serving({"lambda": {"rollout": {"strategy": "all_at_once"}}})
    template = Template.from_stack(
        synthesize_environment("dev", tmp_path, overrides=overrides).stack("serving")
    )
    for kind in ("Application", "DeploymentGroup", "DeploymentConfig"):
        template.resource_count_is(f"AWS::CodeDeploy::{kind}", 0)
    (alias,) = template.find_resources("AWS::Lambda::Alias").values()
    assert "UpdatePolicy" not in alias
    assert "codedeploy.amazonaws.com" not in json.dumps(template.find_resources("AWS::IAM::Role"))
    outputs = template.find_outputs("*")
    assert outputs["ServingAlias"]["Value"] == "live"
    assert not {"RolloutApplication", "RolloutDeploymentGroup"} & set(outputs)


def test_prediction_logs_are_encrypted_compressed_and_partitioned_by_day(
    synthesized: Synth,
) -> None:
    template = _template(synthesized)
    template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamType": "DirectPut",
            "DeliveryStreamEncryptionConfigurationInput": {
                "KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": _import("security", "DataKey")},
            "ExtendedS3DestinationConfiguration": Match.object_like({
                "Prefix": "predictions/dt=!{timestamp:yyyy-MM-dd}/",
                "ErrorOutputPrefix":
                    "prediction-errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/",
                "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5},
                "CompressionFormat": "GZIP",
                "EncryptionConfiguration": {
                    "KMSEncryptionConfig": {"AWSKMSKeyARN": _import("security", "DataKey")}},
                "BucketARN": {"Fn::GetAtt": [Match.string_like_regexp("^PredictionLogBucket"),
                                             "Arn"]},
                "CloudWatchLoggingOptions": Match.object_like({"Enabled": True}),
            }),
        },
    )  # fmt: skip


def test_the_log_bucket_is_private_encrypted_and_expires_records(tuned: Template) -> None:
    buckets = tuned.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 1
    bucket = next(iter(buckets.values()))["Properties"]
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert "VersioningConfiguration" not in bucket
    assert bucket["LifecycleConfiguration"]["Rules"] == [
        {"Id": "expire-prediction-logs", "ExpirationInDays": 90,
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}, "Status": "Enabled"}
    ]  # fmt: skip


@pytest.mark.parametrize(("env", "endpoints"), [("local", 0), ("dev", 1), ("prod", 1)])
def test_a_firehose_endpoint_exists_where_the_vpc_uses_interface_endpoints(
    synthesized: Synth, env: str, endpoints: int
) -> None:
    found = _template(synthesized, env).find_resources(
        "AWS::EC2::VPCEndpoint",
        {"Properties": {"ServiceName": Match.string_like_regexp("kinesis-firehose$"),
                        "PrivateDnsEnabled": True}},
    )  # fmt: skip
    assert len(found) == endpoints


def test_without_lambda_only_the_prediction_log_remains(tmp_path: Path) -> None:
    synth = synthesize_environment(
        "dev", tmp_path, overrides=_with_serving({"lambda": {"enabled": False}})
    )
    template = Template.from_stack(synth.stack("serving"))
    for resource_type in ("AWS::Lambda::Function", "AWS::Lambda::Alias", "AWS::Lambda::Url"):
        template.resource_count_is(resource_type, 0)
    template.resource_count_is("AWS::KinesisFirehose::DeliveryStream", 1)
    named = {o for o in template.find_outputs("*") if not o.startswith("ExportsOutput")}
    assert named == {"PredictionLogBucket", "PredictionLogStream"}  # and the monitoring's imports


def test_a_spec_too_large_for_the_environment_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stacks.serving

    monkeypatch.setattr(stacks.serving, "serving_spec", lambda _: "x" * (SPEC_LIMIT_BYTES + 1))
    with pytest.raises(ServingSpecTooLarge, match=f"{SPEC_LIMIT_BYTES + 1} bytes"):
        synthesize_environment("dev", tmp_path)
