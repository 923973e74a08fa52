"""EventBridge Scheduler schedules run on demand: Lambda and Step Functions targets."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localaws import lambda_runtime, scheduler
from localaws.emulator import Emulator
from localaws.engine import LocalEngine
from tests.integration.localaws.test_lambda_runtime import (
    forget_package,
    package_zip,
    wait_for_execution,
)

pytestmark = pytest.mark.integration
Maker = Callable[[str], str]

ECHO = """
def handler(event, context):
    return {"received": event, "function": context.function_name}
"""
FAILING = """
class MaterializationFailed(Exception):
    pass


def handler(event, context):
    raise MaterializationFailed("the offline store is empty")
"""
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture
def engine(emulator: Emulator) -> Iterator[Emulator]:
    lambda_runtime.install()
    lambda_runtime.RUNTIME.clear()
    try:
        yield emulator
    finally:
        lambda_runtime.uninstall()


@pytest.fixture
def function(engine: Emulator, role: str) -> Iterator[Maker]:
    """Create a function running `source`; returns its ARN."""
    packages: list[str] = []

    def create(source: str) -> str:
        package = f"pkg_{uuid.uuid4().hex[:12]}"
        packages.append(package)
        arn: str = engine.client("lambda").create_function(
            FunctionName=f"fn-{package}", Runtime="python3.12", Role=role,
            Handler=f"{package}.handler.handler", Code={"ZipFile": package_zip(package, source)},
        )["FunctionArn"]  # fmt: skip
        return arn

    yield create
    for package in packages:
        forget_package(package)


def schedule(engine: Emulator, role: str, name: str, target_arn: str, **more: Any) -> str:
    target = {"Arn": target_arn, "RoleArn": role, **more.pop("target", {})}
    arn: str = engine.client("scheduler").create_schedule(
        Name=name, ScheduleExpression="cron(0 3 * * ? *)", FlexibleTimeWindow={"Mode": "OFF"},
        Target=target, **more,
    )["ScheduleArn"]  # fmt: skip
    return arn


def test_a_lambda_target_runs_with_its_input_and_returns_the_payload(
    engine: Emulator, role: str, function: Maker
) -> None:
    echo = function(ECHO)
    schedule(engine, role, "nightly", echo, target={"Input": '{"trigger": "schedule", "n": 3}'})
    result = scheduler.run_schedule("nightly")
    assert result == {"received": {"trigger": "schedule", "n": 3}, "function": echo.split(":")[-1]}
    (record,) = lambda_runtime.invocations(echo.split(":")[-1])
    assert (record.invocation_type, record.outcome) == ("RequestResponse", "Succeeded")


def test_without_input_the_target_gets_an_empty_object_and_context_attributes_are_filled(
    engine: Emulator, role: str, function: Maker
) -> None:
    echo = function(ECHO)
    engine.client("scheduler").create_schedule_group(Name="features")
    schedule(engine, role, "bare", echo, GroupName="features")
    assert scheduler.run_schedule("bare", "features")["received"] == {}
    template = '{"arn": "<aws.scheduler.schedule-arn>", "at": "<aws.scheduler.scheduled-time>"}'
    arn = schedule(engine, role, "templated", echo, target={"Input": template})
    received = scheduler.run_schedule("templated")["received"]
    assert received["arn"] == arn
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", received["at"])


def test_a_failing_lambda_target_raises_with_the_error(
    engine: Emulator, role: str, function: Maker
) -> None:
    schedule(engine, role, "broken", function(FAILING))
    with pytest.raises(scheduler.ScheduleTargetError, match="MaterializationFailed: the offline"):
        scheduler.run_schedule("broken")


def test_a_state_machine_target_starts_an_execution(
    engine: Emulator, role: str, function: Maker
) -> None:
    sfn = engine.client("stepfunctions")
    machine = sfn.create_state_machine(name="materialize", definition=PASS_MACHINE, roleArn=role)
    template = '{"trigger": "schedule", "scheduled_time": "<aws.scheduler.scheduled-time>"}'
    target = {"Input": template}
    schedule(engine, role, "materialize", machine["stateMachineArn"], target=target)
    execution_arn = scheduler.run_schedule("materialize")
    assert execution_arn.startswith(
        machine["stateMachineArn"].replace(":stateMachine:", ":execution:")
    )
    finished = wait_for_execution(sfn, execution_arn)
    assert finished["status"] == "SUCCEEDED"
    output = json.loads(finished["output"])
    assert output["trigger"] == "schedule" and output["scheduled_time"].endswith("Z")


def test_a_disabled_schedule_needs_force(engine: Emulator, role: str, function: Maker) -> None:
    echo = function(ECHO)
    schedule(engine, role, "paused", echo, State="DISABLED", target={"Input": '{"n": 1}'})
    with pytest.raises(scheduler.ScheduleDisabledError, match="default/paused is DISABLED"):
        scheduler.run_schedule("paused")
    assert lambda_runtime.invocations(echo.split(":")[-1]) == []
    assert scheduler.run_schedule("paused", force=True)["received"] == {"n": 1}


def test_an_unknown_schedule_names_the_known_ones(
    engine: Emulator, role: str, function: Maker
) -> None:
    echo = function(ECHO)
    schedule(engine, role, "nightly", echo)
    with pytest.raises(scheduler.UnknownScheduleError) as raised:
        scheduler.run_schedule("hourly")
    assert str(raised.value) == (
        "no schedule 'hourly' in group 'default' (123456789012, ap-northeast-2); "
        "known schedules: default/nightly"
    )
    assert isinstance(raised.value, KeyError)


def test_other_target_types_are_refused_by_name(
    engine: Emulator, role: str, function: Maker
) -> None:
    queue = engine.client("sqs").create_queue(QueueName="scheduled")["QueueUrl"]
    queue_arn = engine.client("sqs").get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    schedule(engine, role, "to-queue", queue_arn)
    with pytest.raises(NotImplementedError, match=r"targets sqs \(arn:aws:sqs:"):
        scheduler.run_schedule("to-queue")
    schedule(engine, role, "universal", "arn:aws:scheduler:::aws-sdk:sqs:sendMessage")
    with pytest.raises(NotImplementedError, match="targets aws-sdk:sqs:sendMessage"):
        scheduler.run_schedule("universal")


def test_the_engine_runs_a_schedule_in_its_region(
    engine: Emulator, role: str, function: Maker
) -> None:
    echo = function(ECHO)
    schedule(engine, role, "nightly", echo, target={"Input": '{"via": "engine"}'})
    local = LocalEngine(emulator=engine)  # already started by the fixture; not deployed
    assert local.run_schedule("nightly")["received"] == {"via": "engine"}
