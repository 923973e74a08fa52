"""The in-process Lambda runtime: contract with moto's internals, then behaviour as AWS."""

from __future__ import annotations

import base64
import inspect
import io
import json
import sys
import textwrap
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localaws import lambda_runtime
from localaws.emulator import Emulator

pytestmark = pytest.mark.integration

ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": []})

HANDLER_SOURCE = """
import os
import time

RECEIVED = []


class TrainingRejected(Exception):
    pass


def handler(event, context):
    RECEIVED.append(event)
    if isinstance(event, dict) and event.get("raise"):
        raise TrainingRejected(event["raise"])
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(event["sleep"])
    print("handled", context.aws_request_id)
    return {
        "marker": os.environ.get("MARKER"),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "version": context.function_version,
        "label": LABEL,
    }
"""


def package_zip(package: str, source: str = HANDLER_SOURCE, label: str = "v1") -> bytes:
    """A deployment package laid out like the project's: ``<package>/handler.py``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr(f"{package}/handler.py", f"{source}\nLABEL = {label!r}\n")
    return buffer.getvalue()


def forget_package(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        del sys.modules[name]


def handler_module(package: str) -> Any:
    return sys.modules[f"{package}.handler"]


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] != "RUNNING":
            return description
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_arn} still running after {timeout}s")


@pytest.fixture
def engine(emulator: Emulator) -> Iterator[Emulator]:
    """The (empty) emulator with the runtime installed."""
    lambda_runtime.install()
    lambda_runtime.RUNTIME.clear()
    lambda_runtime.RUNTIME.async_retry_delays = (0.0, 0.0)
    try:
        yield emulator
    finally:
        lambda_runtime.wait_for_async(10)
        lambda_runtime.uninstall()


@pytest.fixture
def make_function(engine: Emulator, role: str) -> Iterator[Callable[..., tuple[str, str]]]:
    """Create a function from a fresh, uniquely named package; returns (name, package)."""
    packages: list[str] = []

    def create(**overrides: Any) -> tuple[str, str]:
        package = f"pkg_{uuid.uuid4().hex[:12]}"
        packages.append(package)
        name = overrides.pop("FunctionName", f"fn-{package}")
        spec = {
            "FunctionName": name,
            "Runtime": "python3.12",
            "Role": role,
            "Handler": f"{package}.handler.handler",
            "Code": {"ZipFile": package_zip(package, **overrides.pop("zip", {}))},
            **overrides,
        }
        engine.client("lambda").create_function(**spec)
        return name, package

    yield create
    for package in packages:
        forget_package(package)


# -- contract with moto internals ---------------------------------------------------------------
def test_contract_lambda_function_invoke_is_the_single_entry_point() -> None:
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    params = list(inspect.signature(LambdaFunction.invoke).parameters)
    assert params == ["self", "body", "request_headers", "response_headers"], (
        "moto internal LambdaFunction.invoke(body, request_headers, response_headers) changed"
    )
    assert "fn.invoke(" in inspect.getsource(LambdaBackend.invoke), (
        "moto internal LambdaBackend.invoke no longer delegates to LambdaFunction.invoke"
    )


def test_contract_lambda_function_model_attributes(
    make_function: Callable[..., tuple[str, str]],
) -> None:
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda.utils import get_backend

    name, _ = make_function(Environment={"Variables": {"MARKER": "m"}}, Timeout=7)
    backend = get_backend("123456789012", "ap-northeast-2")
    assert type(backend) is LambdaBackend, "moto internal awslambda.utils.get_backend changed"
    function = backend.get_function(name)
    expected = {
        "code_bytes": bytes,
        "code_digest": str,
        "environment_vars": dict,
        "handler": str,
        "run_time": str,
        "region": str,
        "logs_group_name": str,
        "function_arn": str,
        "event_invoke_config": list,
        "package_type": str,
    }
    for attribute, kind in expected.items():
        assert isinstance(getattr(function, attribute, None), kind), (
            f"moto internal LambdaFunction.{attribute} changed"
        )
    assert (function.timeout, function.memory_size, function.version) == (7, 128, "$LATEST")
    assert zipfile.is_zipfile(io.BytesIO(function.code_bytes))
    for method in ("ensure_log_group", "create_log_stream", "put_log_events"):
        assert callable(getattr(function.logs_backend, method, None)), f"moto logs {method}"
    assert issubclass(LambdaClientError, Exception)


def test_contract_invoke_api_reads_the_qualifier_from_the_query_string() -> None:
    from moto.awslambda.responses import LambdaResponse
    from moto.core.responses import BaseResponse

    source = inspect.getsource(LambdaResponse.invoke)
    assert "self._get_param(" in source and "qualifier" in source.lower(), (
        "moto internal LambdaResponse.invoke no longer reads the qualifier parameter"
    )
    assert "self.querystring.get(param_name)" in inspect.getsource(BaseResponse._get_param), (
        "moto internal BaseResponse._get_param no longer reads self.querystring"
    )


def test_install_is_idempotent_and_reversible() -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda.responses import LambdaResponse

    originals = (LambdaFunction.invoke, LambdaResponse.invoke)
    lambda_runtime.install()
    lambda_runtime.install()
    assert LambdaFunction.invoke is lambda_runtime._invoke
    assert LambdaResponse.invoke is lambda_runtime._invoke_response
    lambda_runtime.uninstall()
    lambda_runtime.uninstall()
    assert (LambdaFunction.invoke, LambdaResponse.invoke) == originals


# -- behaviour -------------------------------------------------------------------------------------
def test_sync_invoke_returns_the_result_with_env_vars_context_and_logs(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    name, _ = make_function(Environment={"Variables": {"MARKER": "from-config"}}, Timeout=5)
    client = engine.client("lambda")

    response = client.invoke(FunctionName=name, Payload=b'{"x": 1}', LogType="Tail")

    result = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert result["marker"] == "from-config" and result["function_name"] == name
    assert 0 < result["remaining_ms"] <= 5000
    assert "MARKER" not in __import__("os").environ, "the function's environment leaked"
    (record,) = lambda_runtime.invocations(name)
    assert (record.outcome, record.invocation_type, record.attempt) == (
        "Succeeded",
        "RequestResponse",
        1,
    )
    assert f"handled {record.request_id}" in base64.b64decode(response["LogResult"]).decode()
    events = engine.client("logs").get_log_events(
        logGroupName=f"/aws/lambda/{name}", logStreamName=record.log_stream_name
    )["events"]
    messages = [e["message"] for e in events]
    assert messages[0] == f"START RequestId: {record.request_id} Version: $LATEST"
    assert f"handled {record.request_id}" in messages
    assert messages[-1].startswith(f"REPORT RequestId: {record.request_id}\tDuration: ")


def test_a_raised_exception_is_an_unhandled_function_error(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    name, _ = make_function()

    response = engine.client("lambda").invoke(FunctionName=name, Payload=b'{"raise": "no"}')

    payload = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "TrainingRejected" and payload["errorMessage"] == "no"
    assert payload["requestId"] == lambda_runtime.invocations(name)[0].request_id
    assert 'raise TrainingRejected(event["raise"])' in payload["stackTrace"][-1]
    assert lambda_runtime.invocations(name)[0].outcome == "Failed"


def test_exceeding_the_timeout_fails_like_aws(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    name, _ = make_function(Timeout=1)

    started = time.monotonic()
    response = engine.client("lambda").invoke(FunctionName=name, Payload=b'{"sleep": 1.5}')
    elapsed = time.monotonic() - started

    payload = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
    assert 1.0 <= elapsed < 1.4
    assert lambda_runtime.invocations(name)[0].outcome == "TimedOut"


def test_event_invocations_run_in_the_background_and_failures_are_retried(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    ok_name, ok_package = make_function()
    failing_name, _ = make_function()
    sqs = engine.client("sqs")
    queue_url = sqs.create_queue(QueueName="failed-invocations")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    client = engine.client("lambda")
    client.put_function_event_invoke_config(
        FunctionName=failing_name,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )

    accepted = client.invoke(FunctionName=ok_name, InvocationType="Event", Payload=b'{"n": 1}')
    client.invoke(FunctionName=failing_name, InvocationType="Event", Payload=b'{"raise": "x"}')

    assert accepted["StatusCode"] == 202
    assert lambda_runtime.wait_for_async(10)
    assert handler_module(ok_package).RECEIVED == [{"n": 1}]
    attempts = lambda_runtime.invocations(failing_name)
    assert [(r.attempt, r.outcome, r.invocation_type) for r in attempts] == [
        (1, "Failed", "Event"),
        (2, "Failed", "Event"),
        (3, "Failed", "Event"),
    ]
    (message,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"] == {"raise": "x"}
    assert record["responsePayload"]["errorType"] == "TrainingRejected"


def test_dry_run_validates_without_running(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    name, _ = make_function()

    response = engine.client("lambda").invoke(FunctionName=name, InvocationType="DryRun")

    assert response["StatusCode"] == 204
    assert lambda_runtime.invocations(name) == []


def test_versions_and_aliases_run_their_own_code(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    name, package = make_function()
    client = engine.client("lambda")
    client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    client.update_function_code(FunctionName=name, ZipFile=package_zip(package, label="v2"))

    live = client.invoke(FunctionName=name, Qualifier="live")
    latest = client.invoke(FunctionName=name)
    by_arn = client.invoke(FunctionName=f"{name}:1")

    assert (live["ExecutedVersion"], json.loads(live["Payload"].read())["label"]) == ("1", "v1")
    assert (latest["ExecutedVersion"], json.loads(latest["Payload"].read())["label"]) == (
        "$LATEST",
        "v2",
    )
    assert json.loads(by_arn["Payload"].read())["version"] == "1"


def test_a_package_differing_from_the_imported_module_is_refused(
    engine: Emulator,
    make_function: Callable[..., tuple[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = f"repo_{uuid.uuid4().hex[:12]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "handler.py").write_text(f"{HANDLER_SOURCE}\nLABEL = 'repo'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__(f"{package}.handler")
    try:
        same = make_function(
            FunctionName="same-code",
            Handler=f"{package}.handler.handler",
            Code={"ZipFile": package_zip(package, label="repo")},
        )[0]
        stale = make_function(
            FunctionName="stale-code",
            Handler=f"{package}.handler.handler",
            Code={"ZipFile": package_zip(package, label="edited since")},
        )[0]
        client = engine.client("lambda")

        ok = client.invoke(FunctionName=same)
        refused = client.invoke(FunctionName=stale)

        assert json.loads(ok["Payload"].read())["label"] == "repo"
        payload = json.loads(refused["Payload"].read())
        assert refused["FunctionError"] == "Unhandled"
        assert payload["errorType"] == "LocalEngine.StaleDeploymentPackage"
        assert "deployment package is stale: redeploy" in payload["errorMessage"]
        assert f"{package}.handler" in payload["errorMessage"]
    finally:
        forget_package(package)


def test_powertools_logger_accepts_the_context(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    source = textwrap.dedent(
        """
        from aws_lambda_powertools import Logger

        logger = Logger(service="probe")


        @logger.inject_lambda_context
        def handler(event, context):
            logger.info("structured")
            return {"ok": True}
        """
    )
    name, _ = make_function(zip={"source": source})

    response = engine.client("lambda").invoke(FunctionName=name, LogType="Tail")

    assert json.loads(response["Payload"].read()) == {"ok": True}
    log = base64.b64decode(response["LogResult"]).decode()
    line = next(json.loads(x) for x in log.splitlines() if '"structured"' in x)
    assert line["function_name"] == name
    assert line["function_request_id"] == lambda_runtime.invocations(name)[0].request_id


def test_a_missing_module_is_an_import_error(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    name, _ = make_function(Handler="nowhere_to_be_found.handler")

    payload = json.loads(engine.client("lambda").invoke(FunctionName=name)["Payload"].read())

    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"].startswith("Unable to import module 'nowhere_to_be_found'")


def test_step_functions_catch_and_retry_on_the_function_error_type(
    engine: Emulator, make_function: Callable[..., tuple[str, str]]
) -> None:
    name, _ = make_function()
    configuration = engine.client("lambda").get_function(FunctionName=name)["Configuration"]
    arn = configuration["FunctionArn"]
    definition = {
        "StartAt": "Integration",
        "States": {
            "Integration": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload": {"raise": "metric below gate"}},
                "Catch": [
                    {
                        "ErrorEquals": ["TrainingRejected"],
                        "ResultPath": "$.caught",
                        "Next": "Legacy",
                    }
                ],
                "End": True,
            },
            "Legacy": {
                "Type": "Task",
                "Resource": arn,
                "Parameters": {"raise": "again"},
                "Retry": [{"ErrorEquals": ["TrainingRejected"], "MaxAttempts": 1}],
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.legacy", "Next": "Done"}
                ],
                "End": True,
            },
            "Done": {"Type": "Pass", "End": True},
        },
    }
    sfn = engine.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="gate", definition=json.dumps(definition), roleArn=configuration["Role"]
    )["stateMachineArn"]

    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    description = wait_for_execution(sfn, execution)

    assert description["status"] == "SUCCEEDED"
    output = json.loads(description["output"])
    assert output["caught"]["Error"] == "TrainingRejected"
    cause = json.loads(output["caught"]["Cause"])
    assert (cause["errorType"], cause["errorMessage"]) == ("TrainingRejected", "metric below gate")
    assert output["legacy"]["Error"] == "TrainingRejected"
    assert [r.outcome for r in lambda_runtime.invocations(name)] == ["Failed"] * 3
