"""The training trigger against in-process moto: every bad upload is recorded, announced and
starts nothing; a good one starts exactly one execution with the documented input."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from lambdas.training_trigger import handler as trigger_handler
from lambdas.training_trigger.execution import PLATFORM_FILES
from mlops.bundle import ArchiveLimits, write_archive
from mlops.bundle.archive import collect_directory
from mlops.runs import RunsRepository, RunStatus
from tests.helpers import create_runs_table, lambda_context

pytestmark = pytest.mark.integration

REGION = "ap-northeast-2"
CODE, ARTIFACTS = "mlops-code", "mlops-artifacts"
REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "pipelines" / "samples" / "credit_risk"
EVENT_TIME = "2026-11-21T15:16:29Z"
LAKE = "mlops-datalake"
FEATURE_STORE_ENV = {
    "FEATURE_STORE_OFFLINE": "file", "FEAST_PROJECT": "credit_risk", "DATA_LAKE_BUCKET": LAKE,
    "GLUE_DATABASE": "mlops_db", "ATHENA_WORKGROUP": "mlops-wg",
    "ATHENA_RESULTS": "s3://mlops-athena/training-sets/",
}  # fmt: skip
PASS_DEFINITION = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


@dataclass
class Platform:
    s3: Any
    sfn: Any
    sqs: Any
    queue_url: str
    state_machine_arn: str
    runs: RunsRepository

    def upload(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        response = self.s3.put_object(Bucket=CODE, Key=key, Body=data, Metadata=metadata or {})
        return str(response["VersionId"])

    def deliver(self, key: str, version_id: str | None, time: str = EVENT_TIME) -> dict[str, Any]:
        obj: dict[str, Any] = {"key": key, "size": 1, "etag": "0" * 32, "sequencer": "1"}
        if version_id:
            obj["version-id"] = version_id
        event = {
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
            "time": time, "region": REGION, "resources": [f"arn:aws:s3:::{CODE}"],
            "detail": {"version": "0", "bucket": {"name": CODE}, "object": obj,
                       "request-id": "R", "requester": "123456789012", "reason": "PutObject"},
        }  # fmt: skip
        context: Any = lambda_context("training-trigger")
        result: dict[str, Any] = trigger_handler.handler(event, context)
        return result

    def executions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.sfn.list_executions(
            stateMachineArn=self.state_machine_arn
        )["executions"]
        return found

    def notifications(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def staged(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=ARTIFACTS, Prefix="runs/")
        return [o["Key"] for o in listing.get("Contents", [])]


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    aws = {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (CODE, ARTIFACTS):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        s3.put_bucket_versioning(Bucket=CODE, VersioningConfiguration={"Status": "Enabled"})
        create_runs_table()
        sns, sqs, sfn = boto3.client("sns"), boto3.client("sqs"), boto3.client("stepfunctions")
        topic = sns.create_topic(Name="mlops-notifications")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs",
                      Endpoint=queue_arn["Attributes"]["QueueArn"])  # fmt: skip
        machine = sfn.create_state_machine(
            name="training", definition=json.dumps(PASS_DEFINITION),
            roleArn="arn:aws:iam::123456789012:role/training-workflow",
        )["stateMachineArn"]  # fmt: skip
        for name, value in {"RUNS_TABLE": "runs", "ARTIFACTS_BUCKET": ARTIFACTS,
                            "STATE_MACHINE_ARN": machine, "NOTIFICATION_TOPIC_ARN": topic,
                            "ALLOWED_MODELS": "credit-risk,other-model",
                            **FEATURE_STORE_ENV}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        yield Platform(s3, sfn, sqs, queue_url, machine, RunsRepository("runs"))


@pytest.fixture(scope="module")
def sample_files() -> dict[str, bytes]:
    return collect_directory(SAMPLE, ArchiveLimits())


def _manifest_change(
    change: Callable[[dict[str, Any]], None],
) -> Callable[[dict[str, bytes]], bytes]:
    def build(files: dict[str, bytes]) -> bytes:
        manifest = yaml.safe_load(files["manifest.yaml"])
        change(manifest)
        return write_archive({**files, "manifest.yaml": yaml.safe_dump(manifest).encode()})

    return build


def _files_change(change: Callable[[dict[str, bytes]], Any]) -> Callable[[dict[str, bytes]], bytes]:
    def build(files: dict[str, bytes]) -> bytes:
        files = dict(files)
        change(files)
        return write_archive(files)

    return build


def _with_entry(
    info: tarfile.TarInfo, data: bytes | None = None
) -> Callable[[dict[str, bytes]], bytes]:
    def build(files: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, body in sorted(files.items()):
                member = tarfile.TarInfo(name)
                member.size = len(body)
                tar.addfile(member, io.BytesIO(body))
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buffer.getvalue()

    return build


def _entry(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


def _feature_service(m: dict[str, Any]) -> None:
    m["input"] = {"feature_service": "credit_risk_v1", "entity": "customer_id",
                  "label": {"source": "credit_labels", "column": "defaulted_90d",
                            "timestamp_column": "event_timestamp"}}  # fmt: skip


GOOD = "bundles/credit-risk/credit-risk-1.tar.gz"
BAD_UPLOADS = [
    ("missing-manifest", GOOD, _files_change(lambda f: f.pop("manifest.yaml")), {},
     "invalid bundle: no manifest"),
    ("malformed-yaml", GOOD, _files_change(lambda f: f.update({"manifest.yaml": b"a: [b\n"})), {},
     "invalid bundle: manifest.yaml: not valid YAML"),
    ("unknown-framework", GOOD, _manifest_change(lambda m: m["model"].update(framework="lgbm")),
     {}, "model.framework: 'lgbm' is not one of ['xgboost', 'sklearn']"),
    ("negative-instance-count", GOOD,
     _manifest_change(lambda m: m["resources"]["training"].update(instance_count=-1)), {},
     "resources.training.instance_count: -1 is less than the minimum of 1"),
    ("threshold-wrong-type", GOOD,
     _manifest_change(lambda m: m["evaluation"].update(threshold="high")), {},
     "evaluation.threshold: 'high' is not of type 'number'"),
    ("unknown-direction", GOOD, _manifest_change(lambda m: m["evaluation"].update(direction="up")),
     {}, "evaluation.direction: 'up' is not one of ['max', 'min']"),
    ("missing-script", GOOD, _files_change(lambda f: f.pop("train.py")), {},
     "entry_points.training: train.py is not in the bundle"),
    ("non-compiling-script", GOOD,
     _files_change(lambda f: f.update({"evaluation.py": b"x = 1\nif x\n"})), {},
     "entry_points.evaluation: evaluation.py does not compile: expected ':' (line 2)"),
    ("dot-dot-path", GOOD, _with_entry(_entry("../escape.py", size=1), b"x"), {},
     "../escape.py: '..' is not allowed in bundle paths"),
    ("absolute-path", GOOD, _with_entry(_entry("/tmp/evil.py", size=1), b"x"), {},
     "/tmp/evil.py: absolute paths are not allowed in a bundle"),
    ("symlink", GOOD, _with_entry(_entry("link.py", tarfile.SYMTYPE, link="/etc/passwd")), {},
     "link.py: is a symbolic link (to /etc/passwd)"),
    ("oversize-archive", GOOD, write_archive, {"MAX_BUNDLE_BYTES": "2048"},
     "bundle too large: "),
    ("too-many-files", GOOD, write_archive, {"MAX_BUNDLE_FILES": "3"},
     "invalid bundle: too many files: more than the limit of 3"),
    ("wrong-key-prefix", "bundles/credit-risk.tar.gz", write_archive, {},
     "wrong key prefix: 'bundles/credit-risk.tar.gz' does not match bundles/<model>/<name>.tar.gz"),
    ("not-a-tar-gz", "bundles/credit-risk/notes.tar.gz", lambda f: b"just some text", {},
     "invalid bundle: not a gzip-compressed tar archive"),
    ("model-name-mismatch", "bundles/other-model/x.tar.gz", write_archive, {},
     "model.name: 'credit-risk' does not match the model 'other-model'"),
    ("model-not-allowed", "bundles/fraud/x.tar.gz", write_archive, {},
     "model 'fraud' is not allowed on this platform (allowed: credit-risk, other-model)"),
    ("feature-service-without-feature-store", GOOD, _manifest_change(_feature_service),
     {"FEATURE_STORE_OFFLINE": None},
     "input.feature_service: this platform's trigger has no feature store configured"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "build", "env", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_UPLOADS],
)
def test_bad_uploads_are_rejected_recorded_and_announced(
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    sample_files: dict[str, bytes],
    key: str,
    build: Callable[[dict[str, bytes]], bytes],
    env: dict[str, str | None],
    reason: str,
) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    data = build(sample_files)
    version = platform.upload(key, data)

    outcome = platform.deliver(key, version)

    assert outcome["status"] == "REJECTED"
    assert reason in outcome["reason"]
    record = platform.runs.get(outcome["run_id"])
    assert record is not None
    assert record.status is RunStatus.REJECTED
    assert record.reason == outcome["reason"]
    assert (record.key, record.version_id) == (key, version)
    assert platform.executions() == []
    assert platform.staged() == []
    [note] = platform.notifications()
    message = json.loads(note["Message"])
    assert note["Subject"].startswith("[mlops] bundle rejected: ")
    assert message["run_id"] == outcome["run_id"]
    assert message["key"] == key
    assert message["reason"] == outcome["reason"]
    _assert_untouched(platform, key, version, data)


def _assert_untouched(platform: Platform, key: str, version: str, data: bytes) -> None:
    versions = platform.s3.list_object_versions(Bucket=CODE, Prefix=key)
    assert [v["VersionId"] for v in versions.get("Versions", [])] == [version]
    assert "DeleteMarkers" not in versions
    body = platform.s3.get_object(Bucket=CODE, Key=key, VersionId=version)["Body"].read()
    assert body == data


def test_a_valid_bundle_starts_exactly_one_execution(
    platform: Platform, sample_files: dict[str, bytes]
) -> None:
    data = write_archive(sample_files)
    metadata = {"git-commit": "abc1234", "uploaded-by": "alice"}
    version = platform.upload(GOOD, data, metadata)

    outcome = platform.deliver(GOOD, version)

    assert outcome["status"] == "RUNNING"
    run_id = outcome["run_id"]
    assert re.fullmatch(r"credit-risk-[0-9a-f]{16}", run_id)
    [execution] = platform.executions()
    assert execution["name"] == run_id
    assert execution["executionArn"] == outcome["execution_arn"]
    record = platform.runs.get(run_id)
    assert record is not None
    assert record.status is RunStatus.RUNNING
    assert record.execution_arn == execution["executionArn"]
    assert record.details["git_commit"] == "abc1234"
    described = platform.sfn.describe_execution(executionArn=execution["executionArn"])
    given = json.loads(described["input"])
    _assert_execution_input(given, run_id, version)
    assert given["data"]["input"] == f"s3://{ARTIFACTS}/runs/{run_id}/data/training_set/"
    _assert_training_set_step(given["feature_store"], run_id)
    _assert_staged_code(platform, run_id, sample_files, with_platform=True)
    assert platform.notifications() == []
    _assert_untouched(platform, GOOD, version, data)


def test_a_dataset_input_reads_the_prepared_frame_and_stages_no_platform_code(
    platform: Platform, sample_files: dict[str, bytes]
) -> None:
    dataset = _manifest_change(lambda m: m.update(input={"dataset": "credit-risk/frame/"}))
    files = {**sample_files}
    data = dataset(files)
    version = platform.upload(GOOD, data)

    outcome = platform.deliver(GOOD, version)

    assert outcome["status"] == "RUNNING"
    [execution] = platform.executions()
    given = json.loads(platform.sfn.describe_execution(executionArn=execution["executionArn"])[
        "input"
    ])  # fmt: skip
    assert given["data"]["input"] == f"s3://{ARTIFACTS}/datasets/credit-risk/frame/"
    assert "feature_store" not in given
    staged = platform.staged()
    assert not [key for key in staged if "_mlops_platform" in key or "training_set" in key]


def _assert_training_set_step(block: dict[str, Any], run_id: str) -> None:
    assert block["entry"] == "_mlops_training_set.py"
    registry = "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com"
    assert block["image"] == f"{registry}/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
    assert block["labels"] == f"s3://{LAKE}/offline/credit_labels/"
    environment = block["environment"]
    assert environment["MLOPS_REQUIREMENTS"] == "_mlops_platform/features/requirements.txt"
    assert environment["RUN_ID"] == run_id
    assert json.loads(environment["MLOPS_FEATURE_STORE"]) == {
        "project": "credit_risk", "feature_service": "credit_risk_v1",
        "entity": "customer_id", "label_column": "defaulted_90d",
        "timestamp_column": "event_timestamp", "offline_store": "file", "region": REGION,
        "data_lake_bucket": LAKE, "offline_prefix": "offline/", "database": "mlops_db",
        "workgroup": "mlops-wg", "athena_results": "s3://mlops-athena/training-sets/",
    }  # fmt: skip


def _assert_execution_input(given: dict[str, Any], run_id: str, version: str) -> None:
    run = f"s3://{ARTIFACTS}/runs/{run_id}"
    assert given["run_id"] == run_id
    assert given["model_name"] == given["model_package_group"] == "credit-risk"
    assert given["bundle"]["version_id"] == version
    assert given["bundle"]["git_commit"] == "abc1234"
    assert given["bundle"]["uploaded_by"] == "alice"
    assert given["code"] == {
        "processing": f"{run}/code/processing/",
        "launcher": "_mlops_launch.py",
        "source_dir": f"{run}/code/sourcedir.tar.gz",
        "preprocessing_entry": "preprocessing.py",
        "evaluation_entry": "evaluation.py",
    }
    assert given["data"]["train"] == f"{run}/data/train/"
    assert given["output"] == {"model": f"{run}/model/", "evaluation": f"{run}/evaluation/"}
    image = "366743142698.dkr.ecr.ap-northeast-2.amazonaws.com/sagemaker-xgboost:3.0-5"
    assert given["images"] == {"processing": image, "training": image, "inference": image}
    assert given["resources"]["training"] == {
        "instance_type": "ml.m5.xlarge", "instance_count": 1, "volume_gb": 30,
        "max_runtime_seconds": 3600,
    }  # fmt: skip
    hyperparameters = given["hyperparameters"]
    assert all(isinstance(v, str) for v in hyperparameters.values())
    assert hyperparameters["max_depth"] == "3" and hyperparameters["eta"] == "0.05"
    assert hyperparameters["sagemaker_program"] == "train.py"
    assert hyperparameters["sagemaker_submit_directory"] == f"{run}/code/sourcedir.tar.gz"
    assert {"Name": "validation:auc", "Regex": "validation-auc=([0-9.]+);"} in given[
        "metric_definitions"
    ]
    assert given["evaluation"] == {
        "metric": "auc", "direction": "max", "threshold": 0.7, "min_improvement": 0.005,
        "report_uri": f"{run}/evaluation/evaluation.json",
    }  # fmt: skip


def _assert_staged_code(
    platform: Platform, run_id: str, files: dict[str, bytes], *, with_platform: bool
) -> None:
    code = f"runs/{run_id}/code"
    processing = [f"processing/{name}" for name in (*files, "_mlops_launch.py", "manifest.json")]
    platform_files = [f"_mlops_platform/{name}" for name in PLATFORM_FILES]
    if with_platform:
        processing += [f"processing/{n}" for n in ("_mlops_training_set.py", *platform_files)]
    assert sorted(platform.staged()) == sorted(
        f"{code}/{name}" for name in ("manifest.json", "sourcedir.tar.gz", *processing)
    )

    def read(name: str) -> bytes:
        body: bytes = platform.s3.get_object(Bucket=ARTIFACTS, Key=f"{code}/{name}")["Body"].read()
        return body

    for name, body in files.items():
        assert read(f"processing/{name}") == body
    launcher = REPO_ROOT / "pipelines/container/launch.py"
    assert read("processing/_mlops_launch.py") == launcher.read_bytes()
    for name in PLATFORM_FILES if with_platform else ():
        assert read(f"processing/_mlops_platform/{name}") == (REPO_ROOT / name).read_bytes()
    assert json.loads(read("manifest.json"))["model"]["name"] == "credit-risk"
    assert read("processing/manifest.json") == read("manifest.json")
    with tarfile.open(fileobj=io.BytesIO(read("sourcedir.tar.gz")), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == sorted(files)


def test_a_duplicate_delivery_starts_nothing_more(
    platform: Platform, sample_files: dict[str, bytes]
) -> None:
    version = platform.upload(GOOD, write_archive(sample_files))
    first = platform.deliver(GOOD, version)
    second = platform.deliver(GOOD, version)
    # S3 may also send a second, distinct notification for the same write, with its own time.
    third = platform.deliver(GOOD, version, time="2026-11-21T15:16:31Z")
    assert second == third == {"run_id": first["run_id"], "status": "DUPLICATE"}
    assert len(platform.executions()) == 1
    record = platform.runs.get(first["run_id"])
    assert record is not None and record.status is RunStatus.RUNNING


def test_two_versions_of_one_key_start_two_runs(
    platform: Platform, sample_files: dict[str, bytes]
) -> None:
    first_version = platform.upload(GOOD, write_archive(sample_files))
    changed = {**sample_files, "README.md": b"second upload\n"}
    second_version = platform.upload(GOOD, write_archive(changed))
    outcomes = [platform.deliver(GOOD, v) for v in (first_version, second_version)]
    assert [o["status"] for o in outcomes] == ["RUNNING", "RUNNING"]
    assert outcomes[0]["run_id"] != outcomes[1]["run_id"]
    assert sorted(e["name"] for e in platform.executions()) == sorted(o["run_id"] for o in outcomes)
    for outcome, version in zip(outcomes, (first_version, second_version), strict=True):
        described = platform.sfn.describe_execution(executionArn=outcome["execution_arn"])
        assert json.loads(described["input"])["bundle"]["version_id"] == version


def test_the_version_in_the_event_is_trained_not_the_latest(
    platform: Platform, sample_files: dict[str, bytes]
) -> None:
    good_version = platform.upload(GOOD, write_archive(sample_files))
    platform.upload(GOOD, b"a later, broken upload")
    assert platform.deliver(GOOD, good_version)["status"] == "RUNNING"


def test_tampered_content_and_unversioned_objects_are_rejected(
    platform: Platform, sample_files: dict[str, bytes]
) -> None:
    version = platform.upload(GOOD, write_archive(sample_files), {"bundle-sha256": "0" * 64})
    tampered = platform.deliver(GOOD, version)
    assert tampered["status"] == "REJECTED"
    assert "bundle-sha256 metadata 0000" in tampered["reason"]
    unversioned = platform.deliver(GOOD, None, time="2026-11-21T15:16:30Z")
    assert unversioned["status"] == "REJECTED"
    assert "the code bucket must be versioned" in unversioned["reason"]
    assert platform.executions() == []


def test_an_unexpected_error_records_failed_and_is_raised(
    platform: Platform, sample_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = platform.state_machine_arn.replace(":training", ":missing")
    monkeypatch.setenv("STATE_MACHINE_ARN", missing)
    version = platform.upload(GOOD, write_archive(sample_files))
    with pytest.raises(Exception, match="StateMachineDoesNotExist|does not exist"):
        platform.deliver(GOOD, version)
    [record] = platform.runs.list("credit-risk")
    assert record.status is RunStatus.FAILED
    assert record.reason is not None and record.reason.startswith("trigger error: ")
    assert platform.executions() == []


def test_off_contract_events_and_settings_fail_loudly(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    context: Any = lambda_context("training-trigger")
    with pytest.raises(trigger_handler.InvalidEventError, match="detail: Field required"):
        trigger_handler.handler({"source": "aws.s3", "detail-type": "Object Created",
                                 "time": EVENT_TIME}, context)  # fmt: skip
    monkeypatch.delenv("RUNS_TABLE")
    with pytest.raises(trigger_handler.ConfigurationError, match="runs_table: Field required"):
        platform.deliver(GOOD, "v1")
    assert platform.runs.list() == []


def test_a_runs_origin_comes_from_its_key_never_from_its_metadata(
    platform: Platform, sample_files: dict[str, bytes]
) -> None:
    """Only the retraining function may write under continuous-training/ (the code bucket's
    policy), so that prefix -- not metadata anyone can set -- marks a continuous-training run,
    which is what `auto_approve` trusts."""
    data = write_archive(sample_files)
    claims = {"retrain-reason": "drift", "retrain-of": "arn:aws:sagemaker:x:1:model-package/a/1"}
    forged = platform.upload(GOOD, data, claims)
    key = "continuous-training/credit-risk/credit-risk-drift-20261122T003000Z.tar.gz"
    retrained = platform.upload(key, data, {**claims, "uploaded-by": "continuous-training"})

    assert platform.deliver(GOOD, forged)["status"] == "RUNNING"
    assert platform.deliver(key, retrained)["status"] == "RUNNING"

    inputs = [platform.sfn.describe_execution(executionArn=e["executionArn"])["input"]
              for e in platform.executions()]  # fmt: skip
    bundles = {b["key"]: b for b in (json.loads(i)["bundle"] for i in inputs)}
    assert bundles[GOOD]["trigger"] == "upload"
    assert "retrain_reason" not in bundles[GOOD]
    assert {k: bundles[key][k] for k in ("trigger", "retrain_reason", "retrain_of")} == {
        "trigger": "continuous-training", "retrain_reason": "drift",
        "retrain_of": "arn:aws:sagemaker:x:1:model-package/a/1",
    }  # fmt: skip
    assert bundles[key]["uploaded_by"] == "continuous-training"
