"""Step Functions `.sync` tasks drive real SageMaker jobs in the local engine."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from localaws import sagemaker_jobs, stepfunctions_sync
from localaws.emulator import ACCOUNT_ID, Emulator
from tests.integration.localaws.test_sagemaker_jobs import (
    BUCKET,
    FAIL_WITH_REASON,
    ROLE,
    TRAIN,
    processing_request,
    put_source,
    seed_bucket,
    training_request,
)

pytestmark = pytest.mark.integration

SFN_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/states"
PROCESSING = "arn:aws:states:::sagemaker:createProcessingJob.sync"
TRAINING = "arn:aws:states:::sagemaker:createTrainingJob.sync"


@pytest.fixture
def engine(emulator: Emulator) -> Iterator[Emulator]:
    sagemaker_jobs.install()
    stepfunctions_sync.install()
    seed_bucket(emulator.client("s3"), emulator.region)
    try:
        yield emulator
    finally:
        stepfunctions_sync.uninstall()
        sagemaker_jobs.uninstall()


def with_paths(request: dict[str, Any], **paths: str) -> dict[str, Any]:
    """Turn literal parameters into `.$` paths, as a definition built from the execution input."""
    request = dict(request)
    for key, path in paths.items():
        request.pop(key, None)
        request[f"{key}.$"] = path
    return request


def pipeline_definition(source_uri: str) -> dict[str, Any]:
    processing = with_paths(
        processing_request("unused", f"s3://{BUCKET}/code/preprocessing.py"),
        ProcessingJobName="States.Format('{}-prep', $.run)",
    )
    processing["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = (
        f"s3://{BUCKET}/pipeline/train"
    )
    training = with_paths(
        training_request("unused", source_uri, "unused"),
        TrainingJobName="States.Format('{}-train', $.run)",
    )
    training["InputDataConfig"][0]["DataSource"]["S3DataSource"] = {
        "S3DataType": "S3Prefix",
        "S3Uri.$": "$.preprocess.output",
    }
    return {
        "StartAt": "Preprocess",
        "States": {
            "Preprocess": {
                "Type": "Task",
                "Resource": PROCESSING,
                "Parameters": processing,
                "ResultSelector": {
                    "status.$": "$.ProcessingJobStatus",
                    "output.$": "$.ProcessingOutputConfig.Outputs[0].S3Output.S3Uri",
                },
                "ResultPath": "$.preprocess",
                # Accepted and ignored on .sync tasks (moto's own path would crash on it).
                "TimeoutSeconds": 60,
                "HeartbeatSeconds": 30,
                "Next": "Train",
            },
            "Train": {
                "Type": "Task",
                "Resource": TRAINING,
                "Parameters": training,
                "ResultPath": "$.training",
                "Catch": [
                    {
                        "ErrorEquals": ["States.TaskFailed"],
                        "ResultPath": "$.error",
                        "Next": "Caught",
                    }
                ],
                "Next": "Done",
            },
            "Done": {
                "Type": "Pass",
                "Parameters": {
                    "preprocess.$": "$.preprocess.status",
                    "status.$": "$.training.TrainingJobStatus",
                    "model.$": "$.training.ModelArtifacts.S3ModelArtifacts",
                    "metrics.$": "$.training.FinalMetricDataList",
                    "ended.$": "$.training.TrainingEndTime",
                },
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


def run_execution(sfn: Any, definition: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    machine = sfn.create_state_machine(
        name=f"m-{payload['run']}", definition=json.dumps(definition), roleArn=SFN_ROLE
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError(f"execution {arn} still running")


def test_contract_moto_interpreter_internals() -> None:
    """Fails loudly when a moto upgrade changes the interpreter pieces this extension uses."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_factory as factory,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )

    assert callable(state_task_factory.state_task_service_for), "state_task_factory changed"
    assert "sagemaker" in factory._UNSUPPORTED_SERVICE_NAMES, (
        "moto now has its own sagemaker task service: re-evaluate stepfunctions_sync"
    )
    base = callback.StateTaskServiceCallback
    expected = {
        "_eval_integration_pattern": ["env", "resource_runtime_part", "normalised_parameters",
                                      "state_credentials"],
        "_eval_service_task": ["env", "resource_runtime_part", "normalised_parameters",
                               "state_credentials"],
        "_from_error": ["env", "ex"],
        "_validate_service_integration_is_supported": [],
    }  # fmt: skip
    for method, params in expected.items():
        actual = list(inspect.signature(getattr(base, method)).parameters)[1:]
        assert actual == params, f"moto StateTaskServiceCallback.{method}{actual} changed"
    assert ResourceCondition.Sync == "sync"
    source = inspect.getsource(base._eval_integration_pattern)
    assert "callback_endpoint.interrupt_all()" in source, (
        "moto changed the .sync integration path (interrupt_all bug fixed?): re-check the override"
    )


def test_install_is_idempotent_and_reversible() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

    original = state_task_factory.state_task_service_for
    stepfunctions_sync.install()
    patched = state_task_factory.state_task_service_for
    stepfunctions_sync.install()
    assert state_task_factory.state_task_service_for is patched is not original
    assert type(patched("sagemaker")).__name__ == "StateTaskServiceSageMaker"
    assert type(patched("sqs")).__name__ == "StateTaskServiceSqs"
    stepfunctions_sync.uninstall()
    stepfunctions_sync.uninstall()
    assert state_task_factory.state_task_service_for is original


def test_processing_then_training_sync_succeeds(engine: Emulator) -> None:
    s3, sfn = engine.client("s3"), engine.client("stepfunctions")
    source = put_source(s3, "source/pipeline.tar.gz", {"train.py": TRAIN})
    started = time.monotonic()

    described = run_execution(sfn, pipeline_definition(source), {"run": "ok1"})

    elapsed = time.monotonic() - started
    assert described["status"] == "SUCCEEDED", described.get("cause")
    output = json.loads(described["output"])
    assert output["preprocess"] == "Completed"
    assert output["status"] == "Completed"
    assert output["model"] == f"s3://{BUCKET}/models/ok1-train/output/model.tar.gz"
    assert [(m["MetricName"], m["Value"]) for m in output["metrics"]] == [("train:rmse", 0.25)]
    assert isinstance(output["ended"], int) and output["ended"] > 1_600_000_000_000
    assert s3.head_object(Bucket=BUCKET, Key="models/ok1-train/output/model.tar.gz")
    print(f"SFN processing->training wall time: {elapsed:.2f} s")  # noqa: T201
    assert elapsed < 15


def test_failed_training_is_caught_with_failure_reason(engine: Emulator) -> None:
    s3, sfn = engine.client("s3"), engine.client("stepfunctions")
    source = put_source(s3, "source/fail.tar.gz", {"train.py": FAIL_WITH_REASON})

    described = run_execution(sfn, pipeline_definition(source), {"run": "bad1"})

    assert described["status"] == "SUCCEEDED"
    error = json.loads(described["output"])["error"]
    assert error["Error"] == "States.TaskFailed"
    cause = json.loads(error["Cause"])
    assert cause["FailureReason"] == "ValueError: label column missing"
    assert cause["TrainingJobStatus"] == "Failed"
    assert cause["TrainingJobName"] == "bad1-train"


def test_retry_runs_a_new_job_per_attempt_then_catch(engine: Emulator) -> None:
    s3, sfn, sm = (engine.client(n) for n in ("s3", "stepfunctions", "sagemaker"))
    source = put_source(s3, "source/fail3.tar.gz", {"train.py": FAIL_WITH_REASON})
    definition = pipeline_definition(source)
    train = definition["States"]["Train"]
    train["Parameters"]["TrainingJobName.$"] = (
        "States.Format('{}-train-{}', $.run, $$.State.RetryCount)"
    )
    train["Retry"] = [
        {"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1, "IntervalSeconds": 1}
    ]

    described = run_execution(sfn, definition, {"run": "retry"})

    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["error"]["Error"] == "States.TaskFailed"
    names = {j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]}
    assert names == {"retry-train-0", "retry-train-1"}


def test_uncaught_failure_fails_the_execution(engine: Emulator) -> None:
    s3, sfn = engine.client("s3"), engine.client("stepfunctions")
    source = put_source(s3, "source/fail2.tar.gz", {"train.py": FAIL_WITH_REASON})
    definition = pipeline_definition(source)
    del definition["States"]["Train"]["Catch"]

    described = run_execution(sfn, definition, {"run": "bad2"})

    assert described["status"] == "FAILED"
    assert described["error"] == "States.TaskFailed"
    assert "label column missing" in described["cause"]


def test_timeout_seconds_fails_with_states_timeout_and_stops_job(engine: Emulator) -> None:
    sfn, sm = engine.client("stepfunctions"), engine.client("sagemaker")
    request = processing_request("slow-sfn", f"s3://{BUCKET}/code/sleep.py")
    request["AppSpecification"]["ContainerEntrypoint"][1] = "/opt/ml/processing/input/code/sleep.py"
    definition = {
        "StartAt": "Slow",
        "States": {
            "Slow": {
                "Type": "Task", "Resource": PROCESSING, "Parameters": request,
                "TimeoutSeconds": 1, "End": True,
            }
        },
    }  # fmt: skip

    described = run_execution(sfn, definition, {"run": "slow"})

    assert described["status"] == "FAILED"
    assert described["error"] == "States.Timeout"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = sm.describe_processing_job(ProcessingJobName="slow-sfn")
        if job["ProcessingJobStatus"] == "Stopped":
            break
        time.sleep(0.05)
    assert job["ProcessingJobStatus"] == "Stopped"


def test_request_response_sagemaker_task_still_works(engine: Emulator) -> None:
    sfn = engine.client("stepfunctions")
    definition = {
        "StartAt": "CreateModel",
        "States": {
            "CreateModel": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createModel",
                "Parameters": {
                    "ModelName": "m1",
                    "ExecutionRoleArn": ROLE,
                    "PrimaryContainer": {"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"},
                },
                "End": True,
            }
        },
    }

    described = run_execution(sfn, definition, {"run": "model"})

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert json.loads(described["output"])["ModelArn"].endswith(":model/m1")
