"""Events moto does not emit or deliver: contract with its internals, then behaviour as AWS."""

from __future__ import annotations

import inspect
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localaws import events, lambda_runtime
from localaws.emulator import Emulator
from tests.integration.localaws.test_lambda_runtime import (
    forget_package,
    handler_module,
    package_zip,
    wait_for_execution,
)

pytestmark = pytest.mark.integration

PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture
def engine(emulator: Emulator) -> Iterator[Emulator]:
    lambda_runtime.install()
    events.install()
    lambda_runtime.RUNTIME.clear()
    lambda_runtime.RUNTIME.async_retry_delays = (0.0, 0.0)
    try:
        yield emulator
    finally:
        lambda_runtime.wait_for_async(10)
        events.uninstall()
        lambda_runtime.uninstall()


@pytest.fixture
def recorder(engine: Emulator, role: str) -> Iterator[Callable[[], tuple[str, list[Any]]]]:
    """Create a function whose handler records every event; returns (ARN, received events)."""
    packages: list[str] = []

    def create() -> tuple[str, list[Any]]:
        package = f"pkg_{uuid.uuid4().hex[:12]}"
        packages.append(package)
        arn: str = engine.client("lambda").create_function(
            FunctionName=f"fn-{package}",
            Runtime="python3.12",
            Role=role,
            Handler=f"{package}.handler.handler",
            Code={"ZipFile": package_zip(package)},
        )["FunctionArn"]
        # Importing runs the package's module once so the test can read its RECEIVED list.
        engine.client("lambda").invoke(FunctionName=arn, Payload=b'"warm-up"')
        received: list[Any] = handler_module(package).RECEIVED
        received.clear()
        return arn, received

    yield create
    for package in packages:
        forget_package(package)


def rule_to(engine: Emulator, pattern: dict[str, Any], *targets: dict[str, Any]) -> str:
    client = engine.client("events")
    name = f"rule-{uuid.uuid4().hex[:8]}"
    arn: str = client.put_rule(Name=name, EventPattern=json.dumps(pattern))["RuleArn"]
    client.put_targets(Rule=name, Targets=[{"Id": f"t{i}", **t} for i, t in enumerate(targets)])
    return arn


def eventbridge_bucket(engine: Emulator, *, versioned: bool) -> str:
    s3 = engine.client("s3")
    bucket = f"uploads-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": engine.region})
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return bucket


def queue(engine: Emulator) -> tuple[str, str]:
    sqs = engine.client("sqs")
    url: str = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def drain(engine: Emulator, url: str) -> list[dict[str, Any]]:
    messages = engine.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return list(messages.get("Messages", []))


# -- contract with moto internals ---------------------------------------------------------------
def test_contract_eventbridge_rule_dispatch() -> None:
    from moto.events.models import EventsBackend, Rule

    params = list(inspect.signature(Rule.send_to_targets).parameters)
    assert params == ["self", "original_event", "transform_input"], (
        "moto internal events.models.Rule.send_to_targets changed"
    )
    assert "rule.send_to_targets(event_msg)" in inspect.getsource(EventsBackend.put_events), (
        "moto internal EventsBackend.put_events no longer dispatches through Rule.send_to_targets"
    )


def test_contract_s3_notification_helpers_are_looked_up_by_name() -> None:
    from moto.s3 import notifications

    names = set(notifications.send_event.__code__.co_names)
    for helper in ("_get_s3_event", "_invoke_awslambda", "_send_event_bridge_message"):
        assert helper in names and callable(getattr(notifications, helper)), (
            f"moto internal moto.s3.notifications.{helper} changed"
        )
    assert notifications._detail_type("s3:ObjectCreated:Copy") == "Object Created"
    from moto.s3.models import FakeKey, S3Backend

    for method in ("put_object", "put_object_tagging", "complete_multipart_upload"):
        assert "notifications.send_event(" in inspect.getsource(getattr(S3Backend, method)), (
            f"moto internal S3Backend.{method} no longer calls notifications.send_event"
        )
    assert "self.multipart = multipart" in inspect.getsource(FakeKey.__init__), (
        "moto internal FakeKey.multipart changed"
    )
    assert "self.tagger = TaggingService()" in inspect.getsource(S3Backend.__init__), (
        "moto internal S3Backend.tagger changed"
    )


def test_contract_sagemaker_model_package_backend() -> None:
    from moto.sagemaker.models import ModelPackage, SageMakerModelBackend

    for method in ("create_model_package", "update_model_package", "describe_model_package"):
        assert callable(getattr(SageMakerModelBackend, method, None)), f"moto SageMaker {method}"
    assert list(inspect.signature(SageMakerModelBackend.describe_model_package).parameters) == [
        "self",
        "model_package_name",
    ], "moto internal SageMakerModelBackend.describe_model_package changed"
    assert callable(ModelPackage.gen_response_object)


def test_contract_step_functions_execution_lifecycle() -> None:
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )

    assert list(inspect.signature(Execution.start).parameters) == ["self"]
    assert list(inspect.signature(BaseExecutionWorkerCommunication.terminated).parameters) == [
        "self"
    ], "moto internal BaseExecutionWorkerCommunication.terminated changed"
    init = inspect.getsource(Execution.__init__)
    for attribute in ("exec_arn", "state_machine_arn", "input_data", "start_date", "error"):
        assert f"self.{attribute} =" in init, f"moto internal Execution.{attribute} changed"


def test_install_is_idempotent_and_reversible() -> None:
    from moto.events.models import Rule
    from moto.s3 import notifications

    originals = (Rule.send_to_targets, notifications._get_s3_event)
    events.install()
    events.install()
    assert Rule.send_to_targets is events._send_to_targets
    events.uninstall()
    events.uninstall()
    assert (Rule.send_to_targets, notifications._get_s3_event) == originals


# -- S3 ------------------------------------------------------------------------------------------
def test_s3_object_created_reaches_a_lambda_rule_target(
    engine: Emulator, recorder: Callable[[], tuple[str, list[Any]]]
) -> None:
    function_arn, received = recorder()
    bucket = eventbridge_bucket(engine, versioned=True)
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
    rule_to(engine, {**pattern, "detail": {"bucket": {"name": [bucket]}}}, {"Arn": function_arn})

    put = engine.client("s3").put_object(Bucket=bucket, Key="models/train.py", Body=b"code")

    assert lambda_runtime.wait_for_async(10)
    (event,) = received
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["resources"] == [f"arn:aws:s3:::{bucket}"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    detail = event["detail"]
    assert detail["bucket"] == {"name": bucket}
    assert detail["object"]["key"] == "models/train.py"
    assert detail["object"]["size"] == 4
    assert detail["object"]["etag"] == put["ETag"].strip('"')
    assert detail["object"]["version-id"] == put["VersionId"]
    assert (detail["reason"], detail["requester"], detail["version"]) == (
        "PutObject",
        "123456789012",
        "0",
    )


def test_copy_and_multipart_events_carry_their_reason_without_version_on_plain_buckets(
    engine: Emulator,
) -> None:
    bucket = eventbridge_bucket(engine, versioned=False)
    url, queue_arn = queue(engine)
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"]}
    rule_to(engine, {**pattern, "detail": {"bucket": {"name": [bucket]}}}, {"Arn": queue_arn})
    s3 = engine.client("s3")
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    s3.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="c")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="c", UploadId=upload, PartNumber=1, Body=b"y")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="c",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )

    details = [json.loads(m["Body"])["detail"] for m in drain(engine, url)]

    assert sorted((d["object"]["key"], d["reason"]) for d in details) == [
        ("a", "PutObject"),
        ("b", "CopyObject"),
        ("c", "CompleteMultipartUpload"),
    ]
    assert all("version-id" not in d["object"] for d in details)
    sequencers = [d["object"]["sequencer"] for d in details]
    assert len(set(sequencers)) == 3


def test_s3_lambda_notification_invokes_asynchronously_with_the_s3_record(
    engine: Emulator, recorder: Callable[[], tuple[str, list[Any]]]
) -> None:
    function_arn, received = recorder()
    s3 = engine.client("s3")
    bucket = f"direct-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": engine.region})
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "Id": "uploads",
                    "LambdaFunctionArn": function_arn,
                    "Events": ["s3:ObjectCreated:*"],
                }
            ]
        },
    )

    s3.put_object(Bucket=bucket, Key="models/my model.py", Body=b"abc")

    assert lambda_runtime.wait_for_async(10)
    (event,) = received
    (record,) = event["Records"]
    assert (record["eventSource"], record["eventName"]) == ("aws:s3", "ObjectCreated:Put")
    assert record["s3"]["configurationId"] == "uploads"
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["object"]["key"] == "models/my+model.py"  # URL-encoded, as AWS
    assert record["s3"]["object"]["size"] == 3
    assert "sequencer" in record["s3"]["object"] and "versionId" not in record["s3"]["object"]
    assert lambda_runtime.invocations()[-1].invocation_type == "Event"


# -- EventBridge targets -----------------------------------------------------------------------
def test_a_state_machine_target_starts_an_execution_with_each_input_form(
    engine: Emulator, role: str
) -> None:
    sfn = engine.client("stepfunctions")
    machines = [
        sfn.create_state_machine(name=f"m{i}", definition=PASS_MACHINE, roleArn=role)[
            "stateMachineArn"
        ]
        for i in range(4)
    ]
    transformer = {
        "InputPathsMap": {"bucket": "$.detail.bucket.name", "size": "$.detail.size"},
        "InputTemplate": '{"bucket": <bucket>, "size": <size>, "text": "in <bucket>"}',
    }
    rule_to(
        engine,
        {"source": ["platform.test"]},
        {"Arn": machines[0], "RoleArn": role},
        {"Arn": machines[1], "RoleArn": role, "Input": '{"fixed": true}'},
        {"Arn": machines[2], "RoleArn": role, "InputPath": "$.detail.bucket"},
        {"Arn": machines[3], "RoleArn": role, "InputTransformer": transformer},
    )
    detail = {"bucket": {"name": "models"}, "size": 7}

    engine.client("events").put_events(
        Entries=[{"Source": "platform.test", "DetailType": "Probe", "Detail": json.dumps(detail)}]
    )

    inputs = []
    for machine in machines:
        (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
        inputs.append(json.loads(wait_for_execution(sfn, execution["executionArn"])["input"]))
    assert inputs[0]["detail"] == detail and inputs[0]["source"] == "platform.test"
    assert inputs[1:] == [
        {"fixed": True},
        {"name": "models"},
        {"bucket": "models", "size": 7, "text": "in models"},
    ]


def test_an_undeliverable_target_goes_to_its_dead_letter_queue(engine: Emulator) -> None:
    url, queue_arn = queue(engine)
    missing = f"arn:aws:lambda:{engine.region}:123456789012:function:gone"
    rule_arn = rule_to(
        engine,
        {"source": ["platform.test"]},
        {"Arn": missing, "DeadLetterConfig": {"Arn": queue_arn}},
    )

    engine.client("events").put_events(
        Entries=[{"Source": "platform.test", "DetailType": "Probe", "Detail": '{"n": 1}'}]
    )

    (message,) = drain(engine, url)
    assert json.loads(message["Body"])["detail"] == {"n": 1}
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RULE_ARN"] == rule_arn and attributes["TARGET_ARN"] == missing
    assert attributes["ERROR_CODE"] == "UnknownFunctionException"


# -- SageMaker ---------------------------------------------------------------------------------
def test_model_approval_fires_the_approved_rule_exactly_once(
    engine: Emulator, recorder: Callable[[], tuple[str, list[Any]]]
) -> None:
    function_arn, received = recorder()
    sagemaker = engine.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="fraud-detector")
    sagemaker.create_model_package_group(ModelPackageGroupName="other-model")
    pattern = {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelApprovalStatus": ["Approved"],
            "ModelPackageGroupName": ["fraud-detector"],
        },
    }
    rule_to(engine, pattern, {"Arn": function_arn})
    every_change_url, every_change_queue = queue(engine)
    rule_to(engine, {"source": ["aws.sagemaker"]}, {"Arn": every_change_queue})

    def register(group: str) -> str:
        arn: str = sagemaker.create_model_package(
            ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval"
        )["ModelPackageArn"]
        return arn

    package_arn = register("fraud-detector")
    other_arn = register("other-model")
    assert lambda_runtime.wait_for_async(10) and received == []

    sagemaker.update_model_package(ModelPackageArn=package_arn, ModelApprovalStatus="Approved")
    sagemaker.update_model_package(ModelPackageArn=other_arn, ModelApprovalStatus="Approved")

    assert lambda_runtime.wait_for_async(10)
    (event,) = received
    assert (event["source"], event["resources"]) == ("aws.sagemaker", [package_arn])
    detail = event["detail"]
    assert detail["ModelPackageArn"] == package_arn and detail["ModelPackageVersion"] == 1
    assert detail["ModelApprovalStatus"] == "Approved"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", detail["CreationTime"])
    changes = [json.loads(m["Body"])["detail"] for m in drain(engine, every_change_url)]
    assert sorted((c["ModelPackageGroupName"], c["ModelApprovalStatus"]) for c in changes) == [
        ("fraud-detector", "Approved"),
        ("fraud-detector", "PendingManualApproval"),
        ("other-model", "Approved"),
        ("other-model", "PendingManualApproval"),
    ]


# -- Step Functions ----------------------------------------------------------------------------
def test_execution_status_changes_are_put_on_the_default_bus(engine: Emulator, role: str) -> None:
    url, queue_arn = queue(engine)
    sfn = engine.client("stepfunctions")
    machine = sfn.create_state_machine(name="status", definition=PASS_MACHINE, roleArn=role)[
        "stateMachineArn"
    ]
    pattern = {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"stateMachineArn": [machine]},
    }
    rule_to(engine, pattern, {"Arn": queue_arn})

    execution = sfn.start_execution(stateMachineArn=machine, name="run-1", input='{"a": 1}')
    wait_for_execution(sfn, execution["executionArn"])
    deadline = time.monotonic() + 5
    details: list[dict[str, Any]] = []
    while len(details) < 2 and time.monotonic() < deadline:
        details += [json.loads(m["Body"])["detail"] for m in drain(engine, url)]

    assert [d["status"] for d in details] == ["RUNNING", "SUCCEEDED"]
    running, succeeded = details
    assert running["executionArn"] == execution["executionArn"] and running["stopDate"] is None
    assert (succeeded["input"], succeeded["output"]) == ('{"a": 1}', '{"a": 1}')
    assert succeeded["stopDate"] >= succeeded["startDate"] > 0
