"""Continuous training against in-process moto: a drift alarm or a schedule copies exactly the
champion's bundle version under continuous-training/, once per trigger, and never while another
run of the model is in flight."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.common import InvalidInputError
from lambdas.register_model.domain import GateSummary, Provenance, package_request
from lambdas.retrain.domain import RequestError, parse_request
from lambdas.retrain.handler import handler
from mlops.deployments import Champion, ChampionPointer
from mlops.runs import RunRecord, RunsRepository, RunStatus, run_id_for
from tests.helpers import create_runs_table, lambda_context

pytestmark = pytest.mark.integration
REGION, CODE, MODEL, PREFIX = "ap-northeast-2", "mlops-code", "credit-risk", "/mlops/t/champions/"
SOURCE = "bundles/credit-risk/credit-risk-20261101-abc.tar.gz"
POLICIES = {
    MODEL: {"policy": "retrain", "schedule": True},
    "fraud": {"policy": "notify", "schedule": False},
}


def alarm_event(value: str = "ALARM", at: str = "2026-11-22T00:31:07.123+0000") -> dict[str, Any]:
    """EventBridge's "CloudWatch Alarm State Change" for the model's `act` alarm."""
    return {
        "version": "0", "id": "c4c1c1c9", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-22T00:31:07Z",
        "region": REGION, "resources": ["arn:aws:cloudwatch:ap-northeast-2:123456789012:alarm:x"],
        "detail": {
            "alarmName": "mlops-dev-monitoring-CreditRiskDriftAct",
            "state": {"value": value, "reason": "Threshold Crossed: 1 datapoint [0.41]",
                      "timestamp": at},
            "previousState": {"value": "OK", "timestamp": "2026-11-21T00:31:02.000+0000"},
            "configuration": {"metrics": [{"id": "m1", "returnData": True, "metricStat": {
                "metric": {"namespace": "MLOps/Drift", "name": "MaxPSI",
                           "dimensions": {"Model": MODEL}},
                "period": 86400, "stat": "Maximum"}}]},
        },
    }  # fmt: skip


@dataclass
class World:
    s3: Any
    runs: RunsRepository
    pointer: ChampionPointer
    trained: str  # the version id the champion was trained from
    champion_arn: str
    inbox: str

    def retrain(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler(event, lambda_context("retrain"))
        return result

    def copies(self) -> list[dict[str, Any]]:
        listing = self.s3.list_object_versions(Bucket=CODE, Prefix="continuous-training/")
        return list(listing.get("Versions", []))

    def announcements(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10)
        return [json.loads(json.loads(m["Body"])["Message"]) for m in messages.get("Messages", [])]


def _register(sagemaker: Any, run_id: str | None) -> str:
    source = Provenance(run_id=run_id or "unrecorded", model_name=MODEL, bundle_bucket=CODE,
                        bundle_key=SOURCE)  # fmt: skip
    gate = GateSummary(metric="auc", reason="passes", champion_arn=None, improvement=None,
                       metrics={"auc": 0.8})  # fmt: skip
    request = package_request(MODEL, source, gate, image="img:1",
                              model_data_url="s3://a/runs/r/model.tar.gz",
                              report_uri="s3://a/runs/r/evaluation/evaluation.json")  # fmt: skip
    if run_id is None:
        request["CustomerMetadataProperties"].pop("run_id")
    return str(sagemaker.create_model_package(**request)["ModelPackageArn"])


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)  # fmt: skip
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=CODE, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=CODE, VersioningConfiguration={"Status": "Enabled"})
        meta = {"git-commit": "abc1234", "uploaded-by": "alice", "bundle-sha256": "f" * 64}
        trained = s3.put_object(Bucket=CODE, Key=SOURCE, Body=b"trained bytes", Metadata=meta)
        s3.put_object(Bucket=CODE, Key=SOURCE, Body=b"a later upload of the same key")
        create_runs_table()
        runs = RunsRepository("runs")
        run = RunRecord(run_id="credit-risk-run1", model_name=MODEL, bucket=CODE, key=SOURCE,
                        version_id=trained["VersionId"], status=RunStatus.SUCCEEDED,
                        received_at="2026-11-01T00:00:00.000Z")  # fmt: skip
        runs.create(run)
        sagemaker = boto3.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName=MODEL)
        arn = _register(sagemaker, run.run_id)
        pointer = ChampionPointer(PREFIX, ssm=boto3.client("ssm"))
        pointer.put(Champion(MODEL, 1, arn, "s3://a/runs/r/model.tar.gz",
                             since="2026-11-02T09:00:00.000Z"))  # fmt: skip
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="notifications")["TopicArn"]
        inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs",
                      Endpoint=queue_arn["Attributes"]["QueueArn"])  # fmt: skip
        for name, value in {"CODE_BUCKET": CODE, "RUNS_TABLE": "runs", "CHAMPION_PREFIX": PREFIX,
                            "NOTIFICATION_TOPIC_ARN": topic,
                            "POLICIES": json.dumps(POLICIES)}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        yield World(s3, runs, pointer, trained["VersionId"], arn, inbox)


def test_a_drift_alarm_copies_the_champions_bundle_version_once(world: World) -> None:
    outcome = world.retrain(alarm_event())
    key = "continuous-training/credit-risk/credit-risk-drift-20261122T003107Z.tar.gz"
    assert outcome["status"] == "started" and outcome["key"] == key
    assert outcome["run_id"] == run_id_for(MODEL, CODE, key, outcome["version_id"])
    copied = world.s3.get_object(Bucket=CODE, Key=key, VersionId=outcome["version_id"])
    assert copied["Body"].read() == b"trained bytes"  # the version trained, not the latest
    assert copied["Metadata"] == {
        "git-commit": "abc1234", "bundle-sha256": "f" * 64, "uploaded-by": "continuous-training",
        "retrain-reason": "drift", "retrain-of": world.champion_arn,
        "retrain-source": f"s3://{CODE}/{SOURCE}",
    }  # fmt: skip
    (message,) = world.announcements()
    assert message["event"] == "retraining.started" and message["run_id"] == outcome["run_id"]
    assert "Threshold Crossed" in message["detail"]

    again = world.retrain(alarm_event())  # EventBridge delivers at least once
    assert again["status"] == "duplicate" and len(world.copies()) == 1


def test_no_second_run_while_one_is_in_flight(world: World) -> None:
    first = world.retrain(alarm_event())
    world.runs.create(RunRecord(run_id=first["run_id"], model_name=MODEL, bucket=CODE,
                                key=first["key"], version_id=first["version_id"],
                                status=RunStatus.RUNNING))  # fmt: skip
    later = world.retrain(alarm_event(at="2026-11-23T00:31:05.000+0000"))
    assert later == {
        "status": "in_progress",
        "model": MODEL,
        "detail": f"run {first['run_id']} of {MODEL} is still in flight",
    }
    world.runs.update_status(first["run_id"], RunStatus.GATED_OUT)
    assert world.retrain(alarm_event(at="2026-11-24T00:31:05.000+0000"))["status"] == "started"
    assert len(world.copies()) == 2


def test_a_schedule_retrains_and_policies_are_honoured(world: World) -> None:
    scheduled = {"model": MODEL, "reason": "schedule", "scheduled_time": "2026-11-23T03:00:00Z"}
    outcome = world.retrain(scheduled)
    assert outcome["key"].endswith("credit-risk-schedule-20261123T030000Z.tar.gz")
    ignored = {
        "the alarm left ALARM": alarm_event(value="OK"),
        "policy is 'notify', not 'retrain'": _for_model(alarm_event(), "fraud"),
        "the model has no retrain_schedule": {**scheduled, "model": "fraud"},
        "'churn' is not a watched model": {**scheduled, "model": "churn"},
    }
    for detail, event in ignored.items():
        assert world.retrain(event) == {"status": "ignored", "model": _model(event),
                                        "detail": detail}  # fmt: skip
    assert len(world.copies()) == 1


def test_without_a_champion_or_its_run_nothing_is_copied(world: World) -> None:
    boto3.client("ssm").delete_parameter(Name=f"{PREFIX}{MODEL}")
    assert world.retrain(alarm_event())["status"] == "no_champion"
    arn = _register(boto3.client("sagemaker"), None)
    world.pointer.put(Champion(MODEL, 2, arn, "s3://a/m.tar.gz", since="2026-11-03T00:00:00Z"))
    with pytest.raises(LookupError, match="no run record for run_id None"):
        world.retrain(alarm_event())
    assert world.copies() == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "not an object"),
        ({"source": "aws.s3"}, "neither a CloudWatch alarm state change"),
        ({**alarm_event(), "detail": {"alarmName": "a"}}, "without detail.state"),
        ({"reason": "schedule", "scheduled_time": "2026-11-23T03:00:00Z"}, "needs a `model`"),
        ({"reason": "schedule", "model": MODEL, "scheduled_time": "soon"}, "not an ISO 8601"),
    ],
)
def test_malformed_events_are_refused_by_what_is_wrong(event: Any, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_request(event)


def test_an_alarm_without_a_model_dimension_is_a_wiring_error(world: World) -> None:
    event = alarm_event()
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] = {}
    with pytest.raises(InvalidInputError, match="has no metric with a Model dimension"):
        world.retrain(event)


def _for_model(event: dict[str, Any], model: str) -> dict[str, Any]:
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] = {
        "Model": model
    }
    return event


def _model(event: dict[str, Any]) -> str:
    return str(parse_request(event).model)
