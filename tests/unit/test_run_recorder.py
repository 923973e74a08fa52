from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.common import ConfigurationError, InvalidInputError
from lambdas.run_recorder.domain import (
    MAX_REASON,
    console_links,
    failure_reason,
    run_reason,
    subject,
)
from lambdas.run_recorder.handler import UnknownRunError, handler
from mlops.runs import RunRecord, RunsRepository, RunStatus
from tests.helpers import create_runs_table, lambda_context

pytestmark = pytest.mark.unit

RUN = "credit-risk-20261121151629-1a2b3c4d"
EXECUTION = f"arn:aws:states:ap-northeast-2:123456789012:execution:training:{RUN}"
PACKAGE = "arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/credit-risk/4"

# What Step Functions puts in Cause when a createTrainingJob.sync task fails: the
# DescribeTrainingJob output as JSON (timestamps as epoch milliseconds).
SAGEMAKER_CAUSE = json.dumps({
    "AlgorithmSpecification": {"TrainingImage": "366743142698.dkr.ecr.ap-northeast-2."
                               "amazonaws.com/sagemaker-xgboost:3.0-5",
                               "TrainingInputMode": "File"},
    "CreationTime": 1795273000000,
    "FailureReason": "AlgorithmError: training failed: label column missing",
    "HyperParameters": {"max_depth": "3", "sagemaker_program": "train.py"},
    "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30},
    "SecondaryStatus": "Failed",
    "TrainingJobArn": f"arn:aws:sagemaker:ap-northeast-2:123456789012:training-job/{RUN}-train",
    "TrainingJobName": f"{RUN}-train",
    "TrainingJobStatus": "Failed",
})  # fmt: skip
# What Step Functions puts in Cause when a lambda:invoke task raises.
LAMBDA_CAUSE = json.dumps({
    "errorMessage": "metric 'auc' is not in s3://artifacts/runs/x/evaluation/evaluation.json; "
                    "available metrics: ks, logloss",
    "errorType": "EvaluationReportError",
    "requestId": "5a0e7a43-7d0c-4ac2-9d7c-0b0e8f1b2c3d",
    "stackTrace": ['  File "/var/task/lambdas/gate/handler.py", line 137, in handler\n'],
})  # fmt: skip


def test_sagemaker_failure_names_the_job_and_its_failure_reason() -> None:
    reason = failure_reason({"Error": "States.TaskFailed", "Cause": SAGEMAKER_CAUSE}, "Train")
    assert reason == (
        f"step Train failed: {RUN}-train: AlgorithmError: training failed: label column missing"
    )
    processing = json.dumps({"ProcessingJobName": f"{RUN}-pre", "ProcessingJobStatus": "Failed"})
    assert failure_reason({"Error": "States.TaskFailed", "Cause": processing}, "Preprocess") == (
        f"step Preprocess failed: {RUN}-pre: status Failed, no FailureReason"
    )


def test_lambda_failure_names_the_error_type_and_message() -> None:
    error = {"Error": "EvaluationReportError", "Cause": LAMBDA_CAUSE}
    assert failure_reason(error, "Gate") == (
        "step Gate failed: EvaluationReportError: metric 'auc' is not in "
        "s3://artifacts/runs/x/evaluation/evaluation.json; available metrics: ks, logloss"
    )


def test_other_failures_show_error_and_cause_truncated() -> None:
    timeout = {"Error": "States.Timeout", "Cause": ""}
    assert failure_reason(timeout, "Train") == "step Train failed: States.Timeout"
    api = {"Error": "SageMaker.AmazonSageMakerException",
           "Cause": "Resource limit exceeded (Service: AmazonSageMaker; Error Code: "
                    "ResourceLimitExceeded)"}  # fmt: skip
    assert failure_reason(api, None) == (
        "the workflow failed: SageMaker.AmazonSageMakerException: Resource limit exceeded "
        "(Service: AmazonSageMaker; Error Code: ResourceLimitExceeded)"
    )
    assert failure_reason({"Error": "X", "Cause": '["not", "an object"]'}, "S") == (
        'step S failed: X: ["not", "an object"]'
    )
    long = failure_reason({"Error": "States.Runtime", "Cause": "x" * 5000}, "Register")
    assert len(long) == MAX_REASON and long.endswith("...")
    assert long.startswith("step Register failed: States.Runtime: xxx")
    assert failure_reason(None, "Train") == "step Train failed (no error details were passed)"


def test_reason_per_status() -> None:
    assert run_reason("SUCCEEDED", reason=None, error=None, failed_step=None,
                      model_package_arn=PACKAGE) == f"registered {PACKAGE}"  # fmt: skip
    assert run_reason("GATED_OUT", reason="auc 0.6900 is below the threshold 0.7000",
                      error=None, failed_step=None, model_package_arn=None) == (
        "auc 0.6900 is below the threshold 0.7000")  # fmt: skip
    assert run_reason("FAILED", reason="cancelled by operator", error=None, failed_step=None,
                      model_package_arn=None) == "cancelled by operator"  # fmt: skip


def test_subject_and_links() -> None:
    assert subject("credit-risk", "FAILED") == "[mlops] credit-risk run FAILED"
    long = subject("m" * 200 + "\u00e9", "GATED_OUT")
    assert len(long) == 99 and long.isascii()
    links = console_links(EXECUTION, PACKAGE)
    assert links["execution_console"] == (
        "https://ap-northeast-2.console.aws.amazon.com/states/home?region=ap-northeast-2"
        f"#/v2/executions/details/{EXECUTION}"
    )
    assert links["model_package_arn"] == PACKAGE
    assert console_links(None, None) == {}


# --- handler against moto ------------------------------------------------------------------


CONTEXT = lambda_context("run-recorder")


@dataclass
class Env:
    runs: RunsRepository
    sqs: Any
    queue_url: str

    def notifications(self) -> list[dict[str, Any]]:
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in received.get("Messages", [])]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        create_runs_table()
        topic = boto3.client("sns").create_topic(Name="runs")["TopicArn"]
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs",
                                      Endpoint=queue_arn["Attributes"]["QueueArn"])  # fmt: skip
        monkeypatch.setenv("RUNS_TABLE", "runs")
        monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic)
        runs = RunsRepository("runs")
        runs.create(RunRecord(run_id=RUN, model_name="credit-risk", bucket="code",
                              key="bundles/credit-risk/x.tar.gz", version_id="v1",
                              status=RunStatus.RUNNING, execution_arn=EXECUTION,
                              details={"bundle_sha256": "f" * 64}))  # fmt: skip
        yield Env(runs=runs, sqs=sqs, queue_url=queue_url)


def test_succeeded_run_is_recorded_and_announced(env: Env) -> None:
    event = {"run_id": RUN, "status": "SUCCEEDED", "model_package_arn": PACKAGE,
             "execution_arn": EXECUTION}  # fmt: skip
    result = handler(event, CONTEXT)
    assert result == {"run_id": RUN, "status": "SUCCEEDED", "reason": f"registered {PACKAGE}"}
    record = env.runs.get(RUN)
    assert record is not None
    assert (record.status, record.model_package_arn) == (RunStatus.SUCCEEDED, PACKAGE)
    assert record.details == {"bundle_sha256": "f" * 64}
    [note] = env.notifications()
    assert note["Subject"] == "[mlops] credit-risk run SUCCEEDED"
    assert note["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    message = json.loads(note["Message"])
    assert message == {
        "run_id": RUN, "model": "credit-risk", "status": "SUCCEEDED",
        "reason": f"registered {PACKAGE}", "details": f"mlops runs show {RUN}",
        "links": console_links(EXECUTION, PACKAGE),
    }  # fmt: skip


def test_gated_out_run_keeps_the_gate_reason(env: Env) -> None:
    reason = "auc 0.6900 is below the threshold 0.7000"
    result = handler({"run_id": RUN, "status": "GATED_OUT", "reason": reason}, CONTEXT)
    assert result["reason"] == reason
    record = env.runs.get(RUN)
    assert record is not None and (record.status, record.reason) == (RunStatus.GATED_OUT, reason)
    [note] = env.notifications()
    assert note["Subject"] == "[mlops] credit-risk run GATED_OUT"
    message = json.loads(note["Message"])
    assert message["reason"] == reason
    assert message["links"]["execution_arn"] == EXECUTION  # taken from the record


@pytest.mark.parametrize(
    ("error", "step", "expected"),
    [
        ({"Error": "States.TaskFailed", "Cause": SAGEMAKER_CAUSE}, "Train",
         f"step Train failed: {RUN}-train: AlgorithmError: training failed: label column missing"),
        ({"Error": "EvaluationReportError", "Cause": LAMBDA_CAUSE}, "Gate",
         "step Gate failed: EvaluationReportError: metric 'auc' is not in "
         "s3://artifacts/runs/x/evaluation/evaluation.json; available metrics: ks, logloss"),
    ],
)  # fmt: skip
def test_failed_run_records_the_step_and_cause(
    env: Env, error: dict[str, str], step: str, expected: str
) -> None:
    event = {"run_id": RUN, "status": "FAILED", "error": error, "failed_step": step,
             "execution_arn": EXECUTION}  # fmt: skip
    assert handler(event, CONTEXT)["reason"] == expected
    record = env.runs.get(RUN)
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.FAILED, expected)
    assert record.details == {"bundle_sha256": "f" * 64, "failed_step": step,
                              "error": error["Error"]}  # fmt: skip
    [note] = env.notifications()
    assert note["Subject"] == "[mlops] credit-risk run FAILED"
    message = json.loads(note["Message"])
    assert (message["reason"], message["failed_step"]) == (expected, step)


def test_unknown_run_is_an_error_and_creates_nothing(env: Env) -> None:
    with pytest.raises(UnknownRunError, match="no run record for 'nope'"):
        handler({"run_id": "nope", "status": "GATED_OUT", "reason": "x"}, CONTEXT)
    assert env.runs.get("nope") is None
    assert env.notifications() == []


def test_bad_input_and_missing_settings_are_typed_errors(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInputError, match="needs model_package_arn"):
        handler({"run_id": RUN, "status": "SUCCEEDED"}, CONTEXT)
    with pytest.raises(InvalidInputError, match=r"invalid RunEvent: status"):
        handler({"run_id": RUN, "status": "DONE"}, CONTEXT)
    monkeypatch.delenv("NOTIFICATION_TOPIC_ARN")
    with pytest.raises(ConfigurationError, match="notification_topic_arn"):
        handler({"run_id": RUN, "status": "GATED_OUT"}, CONTEXT)
    record = env.runs.get(RUN)
    assert record is not None and record.status is RunStatus.RUNNING
