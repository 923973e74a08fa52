"""SageMaker processing/training jobs run for real in the local engine."""

from __future__ import annotations

import inspect
import io
import json
import tarfile
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from localaws import sagemaker_jobs
from localaws.emulator import ACCOUNT_ID, Emulator

pytestmark = pytest.mark.integration

BUCKET = "sm-jobs-test"
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/sagemaker"
ECR = "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com"

PREPROCESS = """
import argparse, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--input")
parser.add_argument("--output")
args = parser.parse_args()
rows = [line.split(",") for line in pathlib.Path(args.input, "raw.csv").read_text().split()]
out = pathlib.Path(args.output)
(out / "train.csv").write_text("".join(f"{x},{int(y) * 2}\\n" for x, y in rows))
(out / "stage.txt").write_text(os.environ["STAGE"])
print("preprocessed", len(rows), "rows")
"""

TRAIN = """
import argparse, json, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--max_depth", type=int)
parser.add_argument("--eta", type=float)
parser.add_argument("--objective")
args = parser.parse_args()
rows = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"], "train.csv").read_text().split()
config = pathlib.Path(os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json")
seen = {
    "argv": vars(args),
    "rows": rows,
    "sm_hp_max_depth": os.environ["SM_HP_MAX_DEPTH"],
    "sm_hps": json.loads(os.environ["SM_HPS"]),
    "channels": json.loads(os.environ["SM_CHANNELS"]),
    "host": os.environ["SM_CURRENT_HOST"],
    "num_cpus": int(os.environ["SM_NUM_CPUS"]),
    "hyperparameters_json": json.loads(config.read_text()),
    "job_name": os.environ["TRAINING_JOB_NAME"],
}
pathlib.Path(os.environ["SM_MODEL_DIR"], "model.json").write_text(json.dumps(seen))
pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt").write_text("ok")
print("[0]#011train-rmse:0.50000")
print("[1]#011train-rmse:0.25000")
"""

FAIL_WITH_REASON = """
import os, pathlib, sys
pathlib.Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("ValueError: label column missing")
sys.exit(1)
"""

CRASH = """
import sys
print("about to fail", file=sys.stderr)
raise RuntimeError("boom in preprocessing")
"""

SLEEP = """
import time
print("sleeping", flush=True)
time.sleep(60)
"""


def put_source(s3: Any, key: str, files: dict[str, str]) -> str:
    """Upload a sourcedir.tar.gz as the SageMaker SDK does for script mode; returns its URI."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    return f"s3://{BUCKET}/{key}"


def processing_request(name: str, script_uri: str, **overrides: Any) -> dict[str, Any]:
    code, raw, out = (
        "/opt/ml/processing/input/code",
        "/opt/ml/processing/input/raw",
        "/opt/ml/processing/output/train",
    )
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": f"{ECR}/sagemaker-scikit-learn:1.2-1",
            "ContainerEntrypoint": ["python3", f"{code}/preprocessing.py"],
            "ContainerArguments": ["--input", raw, "--output", out],
        },
        "ProcessingInputs": [
            {"InputName": "code", "S3Input": _s3_input(script_uri, code)},
            {"InputName": "raw", "S3Input": _s3_input(f"s3://{BUCKET}/raw", raw)},
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "train",
                    "S3Output": {
                        "S3Uri": f"s3://{BUCKET}/processed/{name}/train",
                        "LocalPath": out,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 5,
            }
        },
        "Environment": {"STAGE": "unit"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    return request | overrides


def _s3_input(uri: str, local: str) -> dict[str, str]:
    return {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix", "S3InputMode": "File"}


def training_request(
    name: str, source_uri: str, train_uri: str, max_runtime: int = 60
) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": f"{ECR}/sagemaker-xgboost:1.7-1",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:rmse", "Regex": "train-rmse:([0-9\\.]+)"}],
        },
        "HyperParameters": {
            "max_depth": "3",
            "eta": "0.3",
            "objective": '"reg:squarederror"',
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": json.dumps(source_uri),
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": train_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def wait_status(describe: Any, key: str, timeout: float = 30.0, **name: str) -> dict[str, Any]:
    """Poll Describe* until the job leaves InProgress/Stopping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = describe(**name)
        if described[key] not in ("InProgress", "Stopping"):
            return described
        time.sleep(0.05)
    raise AssertionError(f"job {name} still running after {timeout} s")


def seed_bucket(s3: Any, region: str) -> None:
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_object(Bucket=BUCKET, Key="raw/raw.csv", Body=b"1,10\n2,20\n3,30\n")
    s3.put_object(Bucket=BUCKET, Key="code/preprocessing.py", Body=PREPROCESS.encode())
    s3.put_object(Bucket=BUCKET, Key="code/crash.py", Body=CRASH.encode())
    s3.put_object(Bucket=BUCKET, Key="code/sleep.py", Body=SLEEP.encode())


@pytest.fixture
def engine(emulator: Emulator) -> Iterator[Emulator]:
    sagemaker_jobs.install()
    seed_bucket(emulator.client("s3"), emulator.region)
    try:
        yield emulator
    finally:
        sagemaker_jobs.uninstall()


def test_contract_moto_sagemaker_internals() -> None:
    """Fails loudly when a moto upgrade changes what sagemaker_jobs patches."""
    from moto.sagemaker.models import FakeProcessingJob, FakeTrainingJob, SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    for method, name_param in (
        (SageMakerModelBackend.create_processing_job, "processing_job_name"),
        (SageMakerModelBackend.create_training_job, "training_job_name"),
    ):
        params = inspect.signature(method).parameters
        assert name_param in params, f"moto {method.__qualname__} lost parameter {name_param}"
    assert "algorithm_specification" in inspect.signature(FakeTrainingJob).parameters
    assert hasattr(SageMakerModelBackend, "stop_processing_job"), "moto stop_processing_job gone"
    assert not hasattr(SageMakerModelBackend, "stop_training_job"), (
        "moto now implements stop_training_job: wrap it instead of adding one"
    )
    for action in ("create_processing_job", "create_training_job", "_get_param"):
        assert callable(getattr(SageMakerResponse, action, None)), f"SageMakerResponse.{action}"
    backend = SageMakerModelBackend("ap-northeast-2", ACCOUNT_ID)
    assert isinstance(backend.processing_jobs, dict) and isinstance(backend.training_jobs, dict)
    src = inspect.getsource(FakeProcessingJob.__init__) + inspect.getsource(
        FakeTrainingJob.__init__
    )
    for attribute in (
        "self.processing_job_status", "self.processing_end_time", "self.stopping_condition",
        "self.processing_inputs", "self.processing_output_config", "self.app_specification",
        "self.training_job_status", "self.secondary_status", "self.model_artifacts",
        "self.final_metric_data_list", "self.hyper_parameters", "self.input_data_config",
        "self.output_data_config", "self.resource_config", "self.secondary_status_transitions",
    ):  # fmt: skip
        assert attribute in src, f"moto Fake*Job no longer sets {attribute}"


def test_install_twice_then_uninstall_restores_moto() -> None:
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.create_training_job
    sagemaker_jobs.install()
    patched = SageMakerModelBackend.create_training_job
    sagemaker_jobs.install()
    assert SageMakerModelBackend.create_training_job is patched is not original
    sagemaker_jobs.uninstall()
    sagemaker_jobs.uninstall()
    assert SageMakerModelBackend.create_training_job is original
    assert not hasattr(SageMakerModelBackend, "stop_training_job")


def test_processing_job_reads_input_and_uploads_output(engine: Emulator) -> None:
    sm, s3 = engine.client("sagemaker"), engine.client("s3")
    request = processing_request("prep-ok", f"s3://{BUCKET}/code/preprocessing.py")

    sm.create_processing_job(**request)
    assert sm.describe_processing_job(ProcessingJobName="prep-ok")["ProcessingJobStatus"] == (
        "InProgress"
    )
    described = wait_status(
        sm.describe_processing_job, "ProcessingJobStatus", ProcessingJobName="prep-ok"
    )

    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["Environment"] == {"STAGE": "unit"}
    assert described["AppSpecification"]["ImageUri"].endswith("sagemaker-scikit-learn:1.2-1")
    assert described["ProcessingStartTime"] <= described["ProcessingEndTime"]
    body = s3.get_object(Bucket=BUCKET, Key="processed/prep-ok/train/train.csv")["Body"].read()
    assert body == b"1,20\n2,40\n3,60\n"
    stage = s3.get_object(Bucket=BUCKET, Key="processed/prep-ok/train/stage.txt")["Body"].read()
    assert stage == b"unit"
    assert sagemaker_jobs.job_logs("prep-ok").stdout == "preprocessed 3 rows\n"


def test_training_job_script_mode(engine: Emulator) -> None:
    sm, s3 = engine.client("sagemaker"), engine.client("s3")
    s3.put_object(Bucket=BUCKET, Key="train/train.csv", Body=b"1,20\n2,40\n")
    source = put_source(s3, "source/ok.tar.gz", {"train.py": TRAIN})

    sm.create_training_job(**training_request("train-ok", source, f"s3://{BUCKET}/train"))
    described = wait_status(
        sm.describe_training_job, "TrainingJobStatus", TrainingJobName="train-ok"
    )

    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    model_uri = f"s3://{BUCKET}/models/train-ok/output/model.tar.gz"
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == model_uri
    assert described["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "train:rmse"
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert metrics == {"train:rmse": 0.25}
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed",
    ]  # fmt: skip
    archive = s3.get_object(Bucket=BUCKET, Key="models/train-ok/output/model.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(archive.read()), mode="r:gz") as tar:
        assert tar.getnames() == ["model.json"]
        seen = json.loads(tar.extractfile("model.json").read())  # type: ignore[union-attr]
    assert seen["argv"] == {"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror"}
    assert seen["rows"] == ["1,20", "2,40"]
    assert seen["sm_hp_max_depth"] == "3"
    assert seen["sm_hps"] == {"eta": 0.3, "max_depth": 3, "objective": "reg:squarederror"}
    assert seen["channels"] == ["train"]
    assert seen["host"] == "algo-1" and seen["num_cpus"] >= 1
    assert seen["hyperparameters_json"]["sagemaker_program"] == '"train.py"'
    assert seen["job_name"] == "train-ok"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="models/train-ok/output/")["Contents"]
    assert {o["Key"].rsplit("/", 1)[-1] for o in listed} == {"model.tar.gz", "output.tar.gz"}


def test_failure_file_becomes_failure_reason(engine: Emulator) -> None:
    sm, s3 = engine.client("sagemaker"), engine.client("s3")
    s3.put_object(Bucket=BUCKET, Key="train/train.csv", Body=b"1,2\n")
    source = put_source(s3, "source/fail.tar.gz", {"train.py": FAIL_WITH_REASON})

    sm.create_training_job(**training_request("train-fail", source, f"s3://{BUCKET}/train"))
    described = wait_status(
        sm.describe_training_job, "TrainingJobStatus", TrainingJobName="train-fail"
    )

    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == "ValueError: label column missing"
    assert "ModelArtifacts" not in described
    assert described["SecondaryStatus"] == "Failed"


def test_crash_without_failure_file_reports_algorithm_error(engine: Emulator) -> None:
    sm = engine.client("sagemaker")
    request = processing_request("prep-crash", f"s3://{BUCKET}/code/crash.py")
    request["AppSpecification"]["ContainerEntrypoint"][1] = "/opt/ml/processing/input/code/crash.py"

    sm.create_processing_job(**request)
    described = wait_status(
        sm.describe_processing_job, "ProcessingJobStatus", ProcessingJobName="prep-crash"
    )

    assert described["ProcessingJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith("AlgorithmError: ")
    assert "RuntimeError: boom in preprocessing" in reason and "exit code: 1" in reason
    assert "about to fail" in sagemaker_jobs.job_logs("prep-crash").stderr
    logs = engine.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs")
    stream = next(s for s in streams["logStreams"] if s["logStreamName"].startswith("prep-crash/"))
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/ProcessingJobs", logStreamName=stream["logStreamName"]
    )["events"]
    assert any("boom in preprocessing" in event["message"] for event in events)


def test_max_runtime_stops_the_job_quickly(engine: Emulator) -> None:
    sm = engine.client("sagemaker")
    request = processing_request(
        "prep-slow", f"s3://{BUCKET}/code/sleep.py", StoppingCondition={"MaxRuntimeInSeconds": 1}
    )
    request["AppSpecification"]["ContainerEntrypoint"][1] = "/opt/ml/processing/input/code/sleep.py"
    started = time.monotonic()

    sm.create_processing_job(**request)
    described = wait_status(
        sm.describe_processing_job, "ProcessingJobStatus", ProcessingJobName="prep-slow"
    )

    assert described["ProcessingJobStatus"] == "Stopped"
    assert described["FailureReason"].startswith("MaxRuntimeExceeded")
    assert time.monotonic() - started < 5
    assert sagemaker_jobs.job_logs("prep-slow").stdout == "sleeping\n"


def test_stop_training_job_stops_a_running_job(engine: Emulator) -> None:
    sm, s3 = engine.client("sagemaker"), engine.client("s3")
    s3.put_object(Bucket=BUCKET, Key="train/train.csv", Body=b"1,2\n")
    source = put_source(s3, "source/sleep.tar.gz", {"train.py": SLEEP})
    sm.create_training_job(**training_request("train-stop", source, f"s3://{BUCKET}/train"))

    sm.stop_training_job(TrainingJobName="train-stop")
    described = wait_status(
        sm.describe_training_job, "TrainingJobStatus", TrainingJobName="train-stop"
    )

    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "Stopped"


def test_duplicate_job_name_is_rejected(engine: Emulator) -> None:
    sm = engine.client("sagemaker")
    request = processing_request("prep-dup", f"s3://{BUCKET}/code/preprocessing.py")
    sm.create_processing_job(**request)

    with pytest.raises(sm.exceptions.ClientError, match="already exists"):
        sm.create_processing_job(**request)
    sagemaker_jobs.wait_for_jobs(30)
