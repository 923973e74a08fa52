"""The feature-store stack's scheduled materialization, asserted on the synthesized templates."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from pipelines.container import CODE_DIR
from stacks.constructs.materialization import (
    JOB_NAME_LIMIT,
    MATERIALIZED_VIEWS,
    UNPACK_AND_LAUNCH,
    UUID_LENGTH,
    WHEELHOUSE_DIR,
)
from tests.conftest import SynthesizedEnvironment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
LAUNCHER_INPUTS = {"MLOPS_REQUIREMENTS", "MLOPS_WHEELHOUSE"}


def _template(synthesized: Synth, env: str = "dev") -> Template:
    return Template.from_stack(synthesized(env).stack("feature-store"))


def _resources(template: Template, resource_type: str, marker: str) -> dict[str, Any]:
    return {k: v for k, v in template.find_resources(resource_type).items() if marker in k}


def _one(template: Template, resource_type: str, marker: str = "Materialization") -> Any:
    found = _resources(template, resource_type, marker)
    assert len(found) == 1, (resource_type, marker, sorted(found))
    return next(iter(found.items()))


def _definition(template: Template) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state machine definition with each CloudFormation token as a `@N` placeholder."""
    _, machine = _one(template, "AWS::StepFunctions::StateMachine")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    tokens = {f"@{n}": part for n, part in enumerate(parts) if not isinstance(part, str)}
    text = "".join(part if isinstance(part, str) else f"@{n}" for n, part in enumerate(parts))
    return json.loads(text), tokens


def _job(template: Template) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    definition, tokens = _definition(template)
    return definition, definition["States"]["Materialize"], tokens


def _statements(template: Template, role_marker: str) -> list[dict[str, Any]]:
    policies = _resources(template, "AWS::IAM::Policy", role_marker)
    assert len(policies) == 1, sorted(policies)
    return list(next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"])


def test_schedule_starts_the_state_machine_with_retries_and_a_dead_letter_queue(
    synthesized: Synth,
) -> None:
    template = _template(synthesized)
    machine_id, _ = _one(template, "AWS::StepFunctions::StateMachine")
    queue_id, queue = _one(template, "AWS::SQS::Queue")
    role_id, role = _one(template, "AWS::IAM::Role", "ScheduleRole")
    _, schedule = _one(template, "AWS::Scheduler::Schedule")
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 hour)"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["State"] == "ENABLED"
    target = props["Target"]
    assert target["Arn"] == {"Ref": machine_id}
    assert target["RoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}
    assert "DataKey" in queue["Properties"]["KmsMasterKeyId"]["Fn::ImportValue"]
    _, queue_policy = _one(template, "AWS::SQS::QueuePolicy")
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in queue_policy["Properties"]["PolicyDocument"]["Statement"]
    )
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert set(trust[0]["Condition"]["StringEquals"]) == {"aws:SourceAccount", "aws:SourceArn"}
    statements = _statements(template, "ScheduleRole")
    assert {json.dumps(s["Action"]): s["Resource"] for s in statements} == {
        '"states:StartExecution"': {"Ref": machine_id},
        '"sqs:SendMessage"': {"Fn::GetAtt": [queue_id, "Arn"]},
        '["kms:Decrypt", "kms:GenerateDataKey"]': statements[0]["Resource"],
    }
    assert "DataKey" in statements[0]["Resource"]["Fn::ImportValue"]


def test_job_runs_in_the_private_subnets_with_the_consumers_group(synthesized: Synth) -> None:
    template = _template(synthesized)
    _, task, tokens = _job(template)
    vpc = task["Parameters"]["NetworkConfig"]["VpcConfig"]
    _, redis_subnets = _one(template, "AWS::ElastiCache::SubnetGroup", "Online")
    assert [tokens[s] for s in vpc["Subnets"]] == redis_subnets["Properties"]["SubnetIds"]
    consumers, _ = _one(template, "AWS::EC2::SecurityGroup", "OnlineConsumers")
    job_group, group = _one(template, "AWS::EC2::SecurityGroup", "JobSecurityGroup")
    assert [tokens[g] for g in vpc["SecurityGroupIds"]] == [
        {"Fn::GetAtt": [consumers, "GroupId"]},
        {"Fn::GetAtt": [job_group, "GroupId"]},
    ]
    assert group["Properties"]["SecurityGroupEgress"] == [
        {"CidrIp": "0.0.0.0/0", "Description": "HTTPS to AWS endpoints", "FromPort": 443,
         "IpProtocol": "tcp", "ToPort": 443}
    ]  # fmt: skip
    assert "SecurityGroupIngress" not in group["Properties"]


@pytest.mark.parametrize(("env", "offline"), [("dev", "athena"), ("local", "file")])
def test_job_environment_is_the_jobs_settings_contract(
    synthesized: Synth, env: str, offline: str
) -> None:
    from features.job import JobSettings, variable

    template = _template(synthesized, env)
    _, task, tokens = _job(template)
    environment = task["Parameters"]["Environment"]
    expected = {variable(name) for name in JobSettings.model_fields} - {"MLOPS_PUBLISH_METRICS"}
    assert set(environment) == expected | LAUNCHER_INPUTS
    assert environment["MLOPS_OFFLINE_STORE"] == offline
    assert environment["MLOPS_PROJECT"] == "credit_risk"
    assert environment["MLOPS_VIEWS"] == "customer_profile,customer_transactions"
    assert environment["MLOPS_LOOKBACK_DAYS"] == "2"
    assert environment["MLOPS_REDIS_TLS"] == "true"
    assert environment["MLOPS_OFFLINE_PREFIX"] == "offline/"
    assert environment["MLOPS_METRICS_NAMESPACE"] == "MLOps/FeatureStore"
    assert environment["MLOPS_REQUIREMENTS"] == "requirements.txt"
    assert environment["MLOPS_WHEELHOUSE"] == WHEELHOUSE_DIR
    group, _ = _one(template, "AWS::ElastiCache::ReplicationGroup", "Online")
    secret, _ = _one(template, "AWS::SecretsManager::Secret", "Online")
    assert tokens[environment["MLOPS_REDIS_HOST"]] == {
        "Fn::GetAtt": [group, "PrimaryEndPoint.Address"]
    }
    assert tokens[environment["MLOPS_REDIS_SECRET_ARN"]] == {"Ref": secret}
    assert environment["MLOPS_RUNS_URI"].startswith("s3://@")
    assert environment["MLOPS_RUNS_URI"].endswith("/materialization/runs/")
    assert environment["MLOPS_ATHENA_RESULTS"].endswith("/materialization/")


def test_job_is_named_per_attempt_and_launched_from_the_two_assets(synthesized: Synth) -> None:
    _, task, tokens = _job(_template(synthesized))
    params = task["Parameters"]
    assert params["ProcessingJobName.$"] == (
        "States.Format('mlops-dev-feature-store-{}', States.UUID())"
    )
    assert len("mlops-dev-feature-store-") + UUID_LENGTH <= JOB_NAME_LIMIT
    app = params["AppSpecification"]
    assert app["ImageUri"].endswith("/sagemaker-scikit-learn:1.4-2-py312-cpu-py3")
    assert app["ContainerEntrypoint"] == [
        "python3", "-c", UNPACK_AND_LAUNCH, CODE_DIR, WHEELHOUSE_DIR,
        f"{CODE_DIR}/_mlops_launch.py", "features/materialize_entry.py",
    ]  # fmt: skip
    inputs = {i["InputName"]: i["S3Input"] for i in params["ProcessingInputs"]}
    assert {name: i["LocalPath"] for name, i in inputs.items()} == {
        "code": CODE_DIR, "wheelhouse": WHEELHOUSE_DIR,
    }  # fmt: skip
    for s3_input in inputs.values():
        uri = tokens[s3_input["S3Uri"]]["Fn::Sub"]
        assert uri.startswith("s3://cdk-") and uri.endswith(".zip")
    cluster = params["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount"] == 1
    assert cluster["InstanceType"] == "ml.m5.large"
    assert "DataKey" in tokens[cluster["VolumeKmsKeyId"]]["Fn::ImportValue"]
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert params["Tags"] == [{"Key": "mlops:execution", "Value.$": "$$.Execution.Id"}]


def test_failed_jobs_are_retried_then_the_execution_fails_with_the_cause(
    synthesized: Synth,
) -> None:
    template = _template(synthesized)
    definition, task, _ = _job(template)
    assert task["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    retries = {tuple(r["ErrorEquals"]): r for r in task["Retry"]}
    assert retries[("States.TaskFailed",)]["MaxAttempts"] == 2
    assert retries[("States.TaskFailed",)]["BackoffRate"] == 2
    assert task["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MaterializationFailed"}
    ]
    assert definition["States"]["MaterializationFailed"] == {
        "Type": "Fail", "Error": "MaterializationFailed", "CausePath": "$.error.Cause",
    }  # fmt: skip
    assert task["TimeoutSeconds"] == 3600 + 20 * 60
    assert definition["TimeoutSeconds"] >= 3 * task["TimeoutSeconds"]
    log_group, logs = _one(template, "AWS::Logs::LogGroup")
    assert "DataKey" in logs["Properties"]["KmsKeyId"]["Fn::ImportValue"]
    _, machine = _one(template, "AWS::StepFunctions::StateMachine")
    props = machine["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    destination = props["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]
    assert destination == {"LogGroupArn": {"Fn::GetAtt": [log_group, "Arn"]}}


def test_job_role_is_scoped(synthesized: Synth) -> None:
    template = _template(synthesized)
    statements = _statements(template, "JobRole")
    by_sid = {s["Sid"]: s for s in statements if "Sid" in s}
    unscoped = {a for s in statements if s["Resource"] == "*" for a in _actions(s)}
    assert unscoped == {
        "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups", "ec2:DescribeDhcpOptions", "ecr:GetAuthorizationToken",
        "cloudwatch:PutMetricData",
    }  # fmt: skip
    assert by_sid["JobMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "MLOps/FeatureStore"}
    }
    tables = [json.dumps(r) for r in by_sid["ReadFeatureTables"]["Resource"]]
    assert sum(":table/mlops_dev_feature_store/" in t for t in tables) == len(MATERIALIZED_VIEWS)
    secret, _ = _one(template, "AWS::SecretsManager::Secret", "Online")
    assert by_sid["ReadRedisAuthToken"]["Resource"] == {"Ref": secret}
    assets = [json.dumps(r) for r in by_sid["ReadJobAssets"]["Resource"]]
    assert len(assets) == 2 and all(a.endswith('.zip"]]}') for a in assets)
    assert by_sid["JobLogStreams"]["Resource"]["Fn::Join"][1][-1].endswith(
        ":log-group:/aws/sagemaker/ProcessingJobs:log-stream:mlops-dev-feature-store-*"
    )
    assert by_sid["PullImage"]["Resource"].endswith(":repository/sagemaker-scikit-learn")
    writes = [s for s in statements if "s3:PutObject" in _actions(s)]
    prefixes = {json.dumps(s["Resource"]) for s in writes}
    assert any("/materialization/runs/*" in p for p in prefixes), prefixes
    assert not any("/offline/" in p for p in prefixes), "the job must not write features"


def test_state_machine_may_run_only_this_stacks_jobs_with_the_job_role(
    synthesized: Synth,
) -> None:
    template = _template(synthesized)
    job_role, _ = _one(template, "AWS::IAM::Role", "JobRole")
    statements = _statements(template, "StateMachineRole")
    sagemaker = next(s for s in statements if "sagemaker:CreateProcessingJob" in _actions(s))
    assert sagemaker["Resource"]["Fn::Join"][1][-1] == (":processing-job/mlops-dev-feature-store-*")
    passing = next(s for s in statements if _actions(s) == {"iam:PassRole"})
    assert passing["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_alarms_watch_failures_and_per_view_freshness(synthesized: Synth, env: str) -> None:
    template = _template(synthesized, env)
    topic, _ = _one(template, "AWS::SNS::Topic", "Alarms")
    alarms = {k: v["Properties"] for k, v in _resources(template, "AWS::CloudWatch::Alarm",
                                                         "Materialization").items()}  # fmt: skip
    assert all(a["AlarmActions"] == [{"Ref": topic}] for a in alarms.values())
    by_metric = {
        a["MetricName"]: a for a in alarms.values() if "FreshnessLag" not in a["MetricName"]
    }
    assert set(by_metric) == {"ExecutionsFailed", "ExecutionsTimedOut", "MaterializationFailed",
                              "ApproximateNumberOfMessagesVisible"}  # fmt: skip
    for alarm in by_metric.values():
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert by_metric["MaterializationFailed"]["Namespace"] == "MLOps/FeatureStore"
    assert by_metric["MaterializationFailed"]["Dimensions"] == [
        {"Name": "Project", "Value": "credit_risk"}
    ]
    stale = [a for a in alarms.values() if a["MetricName"] == "FreshnessLagSeconds"]
    assert sorted(d["Value"] for a in stale for d in a["Dimensions"] if d["Name"] == "View") == (
        sorted(MATERIALIZED_VIEWS)
    )
    for alarm in stale:
        assert alarm["TreatMissingData"] == "breaching"
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Threshold"] == 3 * 3600
        assert alarm["Period"] == 3600  # the schedule's interval: rate(1 hour)
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3


def test_outputs_name_the_state_machine_and_the_run_records(synthesized: Synth) -> None:
    template = _template(synthesized)
    machine, _ = _one(template, "AWS::StepFunctions::StateMachine")
    outputs = template.to_json()["Outputs"]
    assert outputs["MaterializationStateMachineArn"]["Value"] == {"Ref": machine}
    runs = outputs["MaterializationRunsUri"]["Value"]["Fn::Join"][1]
    assert runs[0] == "s3://" and runs[-1] == "/materialization/runs/"


def test_materialized_views_are_the_feast_repos_views() -> None:
    from features.repo.definitions import VIEWS, build_repo, file_sources

    assert MATERIALIZED_VIEWS == VIEWS
    assert tuple(view.name for view in build_repo(file_sources("/data")).views) == VIEWS
