from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.conftest import REPO_ROOT, SynthesizedEnvironment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
PLACEHOLDER_ARN = "arn:aws:lambda:ap-northeast-2:123456789012:function:placeholder"


def _template(synthesized: Synth, env: str = "dev") -> Template:
    return Template.from_stack(synthesized(env).stack("training"))


def _definition(template: Template) -> dict[str, Any]:
    """The state machine definition with CloudFormation tokens replaced by placeholder ARNs."""
    machine = next(iter(template.find_resources("AWS::StepFunctions::StateMachine").values()))
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return dict(json.loads("".join(p if isinstance(p, str) else PLACEHOLDER_ARN for p in parts)))


def test_code_bucket_publishes_uploads_to_eventbridge(synthesized: Synth) -> None:
    template = _template(synthesized)
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
            "VersioningConfiguration": {"Status": "Enabled"},
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [Match.any_value()]},
                    "object": {"key": [{"prefix": "bundles/"},
                                       {"prefix": "continuous-training/"}]},
                },
            },
            "Targets": [
                Match.object_like(
                    {
                        "DeadLetterConfig": {"Arn": Match.any_value()},
                        "RetryPolicy": {"MaximumRetryAttempts": 4,
                                        "MaximumEventAgeInSeconds": 7200},
                    }
                )
            ],
        },
    )  # fmt: skip


def test_runs_table_is_encrypted_recoverable_and_indexed_by_model(synthesized: Synth) -> None:
    _template(synthesized).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "run_id", "KeyType": "HASH"}],
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS",
                                 "KMSMasterKeyId": Match.any_value()},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "GlobalSecondaryIndexes": [Match.object_like({"IndexName": "by-model"})],
        },
    )  # fmt: skip


def test_every_workflow_step_has_timeout_retry_and_catch(synthesized: Synth) -> None:
    states = _definition(_template(synthesized))["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    sagemaker = {n for n, s in tasks.items() if ":sagemaker:" in s["Resource"]}
    assert sagemaker == {"BuildTrainingSet", "Preprocess", "Train", "Evaluate"}
    for name in [*sagemaker, "Gate", "Register"]:
        state = tasks[name]
        assert state["TimeoutSeconds"] > 0, name
        assert state["Retry"], name
        assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
    for name in sagemaker:
        assert tasks[name]["Resource"].endswith(".sync"), name
        assert "SageMaker.AmazonSageMakerException" in tasks[name]["Retry"][0]["ErrorEquals"]
        params = tasks[name]["Parameters"]
        assert "MaxRuntimeInSeconds.$" in params["StoppingCondition"], name
    assert states["PassedGate?"]["Type"] == "Choice"
    assert states["GatedOut"] == {"Type": "Fail", "Error": "GatedOut", "CausePath": "$.gate.reason"}
    for name in sagemaker - {"Train"}:  # processing scripts run through the platform launcher
        entrypoint = tasks[name]["Parameters"]["AppSpecification"]["ContainerEntrypoint.$"]
        assert entrypoint.startswith(
            "States.Array('python3', '/opt/ml/processing/input/code/_mlops_launch.py', $."
        ), name


def test_a_feature_service_run_builds_its_training_set_first(synthesized: Synth) -> None:
    definition = _definition(_template(synthesized))
    states = definition["States"]
    assert definition["StartAt"] == "FromFeatureStore?"
    choice = states["FromFeatureStore?"]
    assert choice["Choices"] == [
        {"Variable": "$.feature_store", "IsPresent": True, "Next": "BuildTrainingSet"}
    ]
    assert choice["Default"] == "Preprocess"
    build = states["BuildTrainingSet"]
    assert build["Next"] == "Preprocess"
    params = build["Parameters"]
    assert params["Environment.$"] == "$.feature_store.environment"
    assert params["AppSpecification"]["ImageUri.$"] == "$.feature_store.image"
    [output] = params["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri.$"] == "$.data.input"  # what preprocessing reads
    inputs = {i["InputName"]: i["S3Input"]["S3Uri.$"] for i in params["ProcessingInputs"]}
    assert inputs == {"labels": "$.feature_store.labels", "code": "$.code.processing"}
    assert build["Catch"][0]["Next"] == "TrainingSetFailed"


def test_the_jobs_role_reads_the_feature_store_for_training_sets(synthesized: Synth) -> None:
    template = _template(synthesized)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.training_trigger.handler.handler",
            "Environment": {"Variables": Match.object_like({
                "FEATURE_STORE_OFFLINE": "athena", "FEAST_PROJECT": "credit_risk",
                "DATA_LAKE_BUCKET": Match.any_value(), "GLUE_DATABASE": Match.any_value(),
                "ATHENA_WORKGROUP": Match.any_value(), "ATHENA_RESULTS": Match.any_value(),
            })},
        },
    )  # fmt: skip
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert {"athena:StartQueryExecution", "glue:GetPartitions", "glue:CreateTable"} <= actions
    athena = next(s for s in statements if "athena:StartQueryExecution" in s["Action"])
    assert "*" not in json.dumps(athena["Resource"]), "Athena access is scoped to the workgroup"


def test_definition_is_valid_amazon_states_language(synthesized: Synth, tmp_path: Path) -> None:
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(_definition(_template(synthesized))))
    result = subprocess.run(
        [str(REPO_ROOT / "node_modules/.bin/asl-validator"), "--json-path", str(definition)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout


def test_state_machine_logs_and_traces(synthesized: Synth) -> None:
    _template(synthesized).has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like(
                {"Level": "ALL", "IncludeExecutionData": True}
            ),
        },
    )


def test_trigger_gets_its_configuration(synthesized: Synth) -> None:
    _template(synthesized).has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.training_trigger.handler.handler",
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "STATE_MACHINE_ARN": Match.any_value(),
                        "RUNS_TABLE": Match.any_value(),
                        "ARTIFACTS_BUCKET": Match.any_value(),
                        "NOTIFICATION_TOPIC_ARN": Match.any_value(),
                        "ALLOWED_MODELS": "*",
                        "MAX_BUNDLE_BYTES": str(50 << 20),
                    }
                )
            },
        },
    )


def test_failures_alarm_to_the_notification_topic(synthesized: Synth) -> None:
    template = _template(synthesized)
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert len(alarms) == 6  # runs failing, undelivered uploads, 4 function error alarms
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_sagemaker_role_is_assumed_only_by_sagemaker(synthesized: Synth) -> None:
    _template(synthesized).has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like(
                    {"Principal": {"Service": "sagemaker.amazonaws.com"}})]
            },
            "Description": Match.string_like_regexp("SageMaker processing and training"),
        },
    )  # fmt: skip
