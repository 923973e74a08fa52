"""CloudWatch alarms in the engine: evaluation on PutMetricData, state-change events, actions."""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localaws import cloudwatch_alarms, codedeploy, events, lambda_runtime
from localaws.emulator import Emulator
from tests.integration.localaws.test_lambda_runtime import (
    HANDLER_SOURCE,
    forget_package,
    handler_module,
    package_zip,
)

pytestmark = pytest.mark.integration
Maker = Callable[[str], tuple[str, list[Any]]]
Recorder = Callable[[], tuple[str, list[Any]]]

NAMESPACE = "MLOps/Drift"
MODEL = [{"Name": "Model", "Value": "churn"}]
STATE_CHANGES = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"]}
TO_ALARM = {**STATE_CHANGES, "detail": {"state": {"value": ["ALARM"]}}}
PUBLISHER = """
import boto3

def handler(event, context):
    if "warm-up" in event:
        return None
    boto3.client("cloudwatch").put_metric_data(Namespace=event["namespace"], MetricData=[
        {"MetricName": event["metric"], "Dimensions": event["dimensions"], "Value": event["value"]}
    ])
    return {"put": event["value"]}
"""


@pytest.fixture
def engine(emulator: Emulator) -> Iterator[Emulator]:
    lambda_runtime.install()
    events.install()
    cloudwatch_alarms.install()
    lambda_runtime.RUNTIME.clear()
    try:
        yield emulator
    finally:
        lambda_runtime.wait_for_async(10)
        cloudwatch_alarms.uninstall()
        events.uninstall()
        lambda_runtime.uninstall()


@pytest.fixture
def function(engine: Emulator, role: str) -> Iterator[Maker]:
    """Create a function from `source`; returns its ARN and the events its handler received."""
    packages: list[str] = []

    def create(source: str) -> tuple[str, list[Any]]:
        package = f"pkg_{uuid.uuid4().hex[:12]}"
        packages.append(package)
        arn: str = engine.client("lambda").create_function(
            FunctionName=f"fn-{package}", Runtime="python3.12", Role=role,
            Handler=f"{package}.handler.handler", Code={"ZipFile": package_zip(package, source)},
        )["FunctionArn"]  # fmt: skip
        engine.client("lambda").invoke(FunctionName=arn, Payload=b'{"warm-up": true}')
        received: list[Any] = getattr(handler_module(package), "RECEIVED", [])
        received.clear()
        return arn, received

    yield create
    for package in packages:
        forget_package(package)


@pytest.fixture
def recorder(function: Maker) -> Recorder:
    """Create a function recording every event it receives: (ARN, received events)."""
    return lambda: function(HANDLER_SOURCE)


def rule_to(engine: Emulator, pattern: dict[str, Any], function_arn: str) -> None:
    client, name = engine.client("events"), f"rule-{uuid.uuid4().hex[:8]}"
    client.put_rule(Name=name, EventPattern=json.dumps(pattern))
    client.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": function_arn}])


def subscribed_queue(engine: Emulator) -> tuple[str, str]:
    """A topic with an SQS subscription: (topic ARN, queue URL)."""
    sqs, suffix = engine.client("sqs"), uuid.uuid4().hex[:8]
    url = sqs.create_queue(QueueName=f"alarms-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    topic: str = engine.client("sns").create_topic(Name=f"alarms-{suffix}")["TopicArn"]
    engine.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
    return topic, url


def notifications(engine: Emulator, url: str) -> list[dict[str, Any]]:
    messages = engine.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def put_alarm(engine: Emulator, name: str, **overrides: Any) -> str:
    spec = {"AlarmName": name, "Namespace": NAMESPACE, "MetricName": "MaxPSI",
            "Dimensions": MODEL, "Period": 86400, "EvaluationPeriods": 1, "Threshold": 0.25,
            "ComparisonOperator": "GreaterThanThreshold", "Statistic": "Maximum",
            **overrides}  # fmt: skip
    engine.client("cloudwatch").put_metric_alarm(**spec)
    return f"arn:aws:cloudwatch:{engine.region}:123456789012:alarm:{name}"


def put(engine: Emulator, value: float | None, dimensions: Any = None, **more: Any) -> None:
    dimensions = MODEL if dimensions is None else dimensions
    datum = {"MetricName": "MaxPSI", "Dimensions": dimensions, **more}
    if value is not None:
        datum["Value"] = value
    engine.client("cloudwatch").put_metric_data(Namespace=NAMESPACE, MetricData=[datum])


def alarm(engine: Emulator, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = engine.client("cloudwatch").describe_alarms(AlarmNames=[name])[
        "MetricAlarms"
    ]
    return found[0]


def delivered(received: list[Any]) -> list[Any]:
    assert lambda_runtime.wait_for_async(10)
    return received


# -- contract with moto internals ---------------------------------------------------------------
def test_contract_cloudwatch_backend_and_alarm_model() -> None:
    from moto.cloudwatch.models import Alarm, CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse

    signature = list(inspect.signature(CloudWatchBackend.put_metric_data).parameters)
    assert signature == ["self", "namespace", "metric_data"]
    signature = list(inspect.signature(CloudWatchBackend.set_alarm_state).parameters)
    assert signature == ["self", "alarm_name", "reason", "reason_data", "state_value"]
    assert list(inspect.signature(Alarm.update_state).parameters) == [
        "self", "reason", "reason_data", "state_value"]  # fmt: skip
    assert "self.alarms[name] = alarm" in inspect.getsource(CloudWatchBackend.put_metric_alarm)
    assert "put_metric_alarm(" in inspect.getsource(CloudWatchResponse.put_metric_alarm)


def test_install_is_idempotent_and_reversible() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.put_metric_data
    cloudwatch_alarms.install()
    cloudwatch_alarms.install()
    assert CloudWatchBackend.put_metric_data is not original
    codedeploy.check_contract()  # CodeDeploy's alarm probe still sees moto's own alarm model
    cloudwatch_alarms.uninstall()
    assert CloudWatchBackend.put_metric_data is original


# -- behaviour ------------------------------------------------------------------------------------
def test_a_lambda_metric_drives_the_alarm_its_rule_and_its_sns_action(
    engine: Emulator, function: Maker, recorder: Recorder
) -> None:
    topic, queue_url = subscribed_queue(engine)
    name = f"drift-{uuid.uuid4().hex[:6]}"
    arn = put_alarm(engine, name, AlarmActions=[topic], AlarmDescription="PSI above 0.25")
    assert (alarm(engine, name)["StateValue"], alarm(engine, name)["StateReason"]) == (
        "INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")  # fmt: skip
    publisher, _ = function(PUBLISHER)
    every_change, every_change_events = recorder()
    to_alarm, to_alarm_events = recorder()
    rule_to(engine, STATE_CHANGES, every_change)
    rule_to(engine, TO_ALARM, to_alarm)

    def publish(value: float) -> None:
        payload = {"namespace": NAMESPACE, "metric": "MaxPSI", "dimensions": MODEL, "value": value}
        engine.client("lambda").invoke(FunctionName=publisher, Payload=json.dumps(payload))

    publish(0.1)
    assert alarm(engine, name)["StateValue"] == "OK"
    (first,) = delivered(every_change_events)
    assert (first["detail"]["previousState"]["value"], first["detail"]["state"]["value"]) == (
        "INSUFFICIENT_DATA", "OK")  # fmt: skip
    assert to_alarm_events == [] and notifications(engine, queue_url) == []

    publish(0.4)
    described = alarm(engine, name)
    assert described["StateValue"] == "ALARM"
    (event,) = delivered(to_alarm_events)
    assert (event["source"], event["detail-type"], event["resources"]) == (
        "aws.cloudwatch", "CloudWatch Alarm State Change", [arn])  # fmt: skip
    detail = event["detail"]
    assert detail["alarmName"] == name and detail["previousState"]["value"] == "OK"
    assert detail["state"]["value"] == "ALARM"
    assert detail["state"]["reason"] == described["StateReason"]
    day = datetime.now(UTC).strftime("%d/%m/%y")
    assert detail["state"]["reason"] == (
        f"Threshold Crossed: 1 out of the last 1 datapoints [0.4 ({day} 00:00:00)] was greater "
        "than the threshold (0.25) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    reason_data = json.loads(detail["state"]["reasonData"])
    assert (reason_data["statistic"], reason_data["period"], reason_data["threshold"]) == (
        "Maximum", 86400, 0.25)  # fmt: skip
    assert reason_data["recentDatapoints"] == [0.4]
    assert reason_data["evaluatedDatapoints"][0]["sampleCount"] == 2.0
    assert detail["configuration"]["description"] == "PSI above 0.25"
    assert detail["configuration"]["metrics"][0]["metricStat"] == {
        "metric": {"namespace": NAMESPACE, "name": "MaxPSI", "dimensions": {"Model": "churn"}},
        "period": 86400, "stat": "Maximum"}  # fmt: skip
    assert len(every_change_events) == 2

    publish(0.5)
    assert alarm(engine, name)["StateValue"] == "ALARM"
    assert len(delivered(every_change_events)) == 2 and len(to_alarm_events) == 1

    (sns,) = notifications(engine, queue_url)
    assert sns["Subject"] == f'ALARM: "{name}" in Asia Pacific (Seoul)'
    message = json.loads(sns["Message"])
    assert (message["AlarmName"], message["OldStateValue"], message["NewStateValue"]) == (
        name, "OK", "ALARM")  # fmt: skip
    assert message["AlarmDescription"] == "PSI above 0.25"
    assert message["NewStateReason"] == detail["state"]["reason"]
    assert message["Trigger"] == {
        "MetricName": "MaxPSI", "Namespace": NAMESPACE, "StatisticType": "Statistic",
        "Statistic": "MAXIMUM", "Unit": None, "Dimensions": [{"value": "churn", "name": "Model"}],
        "Period": 86400, "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.25,
        "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": "",
    }  # fmt: skip


def test_data_on_another_dimension_set_leaves_the_alarm_alone(engine: Emulator) -> None:
    put_alarm(engine, "churn-drift")
    put(engine, 0.9, [{"Name": "Model", "Value": "fraud"}])
    put(engine, 0.9, [*MODEL, {"Name": "Feature", "Value": "age"}])
    put(engine, 0.9, [])
    described = alarm(engine, "churn-drift")
    assert (described["StateValue"], described["StateReason"]) == (
        "INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")  # fmt: skip


def test_average_over_two_periods_needs_both_to_breach(
    engine: Emulator, recorder: Recorder
) -> None:
    changes, received = recorder()
    rule_to(engine, STATE_CHANGES, changes)
    put_alarm(engine, "latency", Statistic="Average", Period=3600, EvaluationPeriods=2,
              DatapointsToAlarm=2, Threshold=10.0)  # fmt: skip
    now = datetime.now(UTC)
    put(engine, 20.0, Timestamp=now - timedelta(hours=1))
    put(engine, 2.0, Timestamp=now - timedelta(hours=1))  # previous hour: average 11, breaching
    assert alarm(engine, "latency")["StateValue"] == "OK"
    put(engine, 4.0, Timestamp=now)  # this hour: 4
    assert alarm(engine, "latency")["StateValue"] == "OK"
    put(engine, 30.0, Timestamp=now)  # this hour: 17
    described = alarm(engine, "latency")
    assert described["StateValue"] == "ALARM"
    assert described["StateReason"].startswith(
        "Threshold Crossed: 2 out of the last 2 datapoints [17.0 ("
    )
    assert described["StateReason"].endswith(
        "were greater than the threshold (10.0) (minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert json.loads(described["StateReasonData"])["recentDatapoints"] == [11.0, 17.0]
    assert [e["detail"]["state"]["value"] for e in delivered(received)] == ["OK", "ALARM"]


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [("Average", 5.5), ("Sum", 55.0), ("Minimum", 1.0), ("Maximum", 10.0),
     ("SampleCount", 10.0), ("p90", 9.0)],
)  # fmt: skip
def test_each_statistic_aggregates_the_period(
    engine: Emulator, statistic: str, expected: float
) -> None:
    kind = "ExtendedStatistic" if statistic.startswith("p") else "Statistic"
    put_alarm(engine, "stat", Threshold=0.0, **{kind: statistic})
    put(engine, None, Values=[float(v) for v in range(1, 11)])
    described = alarm(engine, "stat")
    assert described["StateValue"] == "ALARM"
    assert json.loads(described["StateReasonData"])["recentDatapoints"] == [expected]


def test_set_alarm_state_announces_a_change_once_and_honours_actions_enabled(
    engine: Emulator, recorder: Recorder
) -> None:
    changes, received = recorder()
    rule_to(engine, STATE_CHANGES, changes)
    topic, queue_url = subscribed_queue(engine)
    put_alarm(engine, "errors", AlarmActions=[topic], OKActions=[topic])
    cloudwatch = engine.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="drill",
                               StateReasonData='{"drill": true}')  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="again")
    (event,) = delivered(received)
    state = event["detail"]["state"]
    assert (state["value"], state["reason"], state["reasonData"]) == (
        "ALARM", "drill", '{"drill": true}')  # fmt: skip
    assert event["detail"]["previousState"]["value"] == "INSUFFICIENT_DATA"

    cloudwatch.disable_alarm_actions(AlarmNames=["errors"])
    cloudwatch.set_alarm_state(AlarmName="errors", StateValue="OK", StateReason="muted")
    assert [e["detail"]["state"]["value"] for e in delivered(received)] == ["ALARM", "OK"]
    sent = [json.loads(n["Message"]) for n in notifications(engine, queue_url)]
    assert [(m["OldStateValue"], m["NewStateValue"]) for m in sent] == [
        ("INSUFFICIENT_DATA", "ALARM")]  # fmt: skip


def test_an_update_keeps_the_state_and_is_evaluated_again(
    engine: Emulator, recorder: Recorder
) -> None:
    changes, received = recorder()
    rule_to(engine, STATE_CHANGES, changes)
    put_alarm(engine, "drift")
    put(engine, 0.4)
    before = alarm(engine, "drift")
    assert before["StateValue"] == "ALARM"
    put_alarm(engine, "drift", AlarmDescription="reworded")
    after = alarm(engine, "drift")
    assert after["StateValue"] == "ALARM" and after["AlarmDescription"] == "reworded"
    assert (after["StateReason"], after["StateUpdatedTimestamp"]) == (
        before["StateReason"], before["StateUpdatedTimestamp"])  # fmt: skip
    put_alarm(engine, "drift", Threshold=0.5)
    assert alarm(engine, "drift")["StateValue"] == "OK"
    assert [e["detail"]["state"]["value"] for e in delivered(received)] == ["ALARM", "OK"]


def test_an_evaluation_error_is_logged_and_the_data_is_still_put(
    engine: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    put_alarm(engine, "broken")

    def fail(*_: Any) -> None:
        raise RuntimeError("evaluation exploded")

    monkeypatch.setattr(cloudwatch_alarms, "_evaluate", fail)
    with caplog.at_level(logging.ERROR, logger=cloudwatch_alarms.__name__):
        put(engine, 0.9)
    assert "evaluation exploded" in caplog.text
    assert alarm(engine, "broken")["StateValue"] == "INSUFFICIENT_DATA"
    listed = engine.client("cloudwatch").list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert [m["MetricName"] for m in listed] == ["MaxPSI"]
