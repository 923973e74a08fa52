"""Run an EventBridge Scheduler schedule now, the way its next occurrence would.

moto 5.2.5 stores schedules (the engine creates `AWS::Scheduler::Schedule` resources in it) but
has no clock to fire them. `run_schedule` reads a schedule back from moto's scheduler backend
and delivers its target at once, so the engine can show what a schedule does without waiting
for its expression:

* Lambda target: the function runs synchronously through the engine's Lambda runtime and the
  decoded response payload is returned (EventBridge Scheduler invokes asynchronously, retrying
  per the target's RetryPolicy; running it in the caller gives the result to look at). A
  function error raises `ScheduleTargetError` with the error type and message.
* Step Functions target: StartExecution; the execution ARN is returned.
* Anything else (SQS, SNS, EventBridge, universal `aws-sdk` targets...): NotImplementedError
  naming the target type.

The input is the target's `Input` after replacing the context attributes EventBridge Scheduler
fills in (`<aws.scheduler.schedule-arn>`, `<aws.scheduler.scheduled-time>`,
`<aws.scheduler.execution-id>`, `<aws.scheduler.attempt-number>`), parsed as JSON as these
templated targets require. Without `Input`, AWS documents only that Scheduler "delivers a default
notification to the target"; for Lambda and Step Functions that arrives as the empty JSON object,
which is what the engine sends (`{}`).

A DISABLED schedule would never fire, so running one raises `ScheduleDisabledError` unless
`force=True`; an unknown schedule raises `UnknownScheduleError` listing the known ones.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from localaws import lambda_runtime
from localaws.emulator import ACCOUNT_ID, DEFAULT_REGION


class UnknownScheduleError(KeyError):
    """No schedule of that name in that group; the message lists the known schedules."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


class ScheduleDisabledError(RuntimeError):
    """The schedule's State is DISABLED, so EventBridge Scheduler would not run it."""


class ScheduleTargetError(RuntimeError):
    """The target ran and failed (a Lambda function error)."""


def run_schedule(
    name: str,
    group: str = "default",
    *,
    account_id: str | None = None,
    region: str | None = None,
    force: bool = False,
) -> Any:
    """Deliver the schedule's target now: a Lambda's decoded payload or an execution ARN."""
    from moto.scheduler.models import scheduler_backends

    account = account_id or ACCOUNT_ID
    region = region or os.environ.get("AWS_REGION") or DEFAULT_REGION
    backend = scheduler_backends[account][region]
    schedule = getattr(backend.schedule_groups.get(group), "schedules", {}).get(name)
    if schedule is None:
        known = sorted(
            f"{group_name}/{schedule_name}"
            for group_name, candidate in backend.schedule_groups.items()
            for schedule_name in candidate.schedules
        )
        raise UnknownScheduleError(
            f"no schedule {name!r} in group {group!r} ({account}, {region}); "
            f"known schedules: {', '.join(known) or 'none'}"
        )
    if schedule.state == "DISABLED" and not force:
        raise ScheduleDisabledError(
            f"schedule {group}/{name} is DISABLED, so EventBridge Scheduler would not run it; "
            "pass force=True to run it anyway"
        )
    target = schedule.target
    payload = target_input(schedule.arn, target.get("Input"))
    _, _, service, target_region, target_account = target["Arn"].split(":")[:5]
    if service == "lambda":
        return _invoke(target_account, target_region, target["Arn"], payload)
    if service == "states":
        from moto.stepfunctions.responses import get_backend

        execution = get_backend(target_account, target_region).start_execution(
            target["Arn"], str(uuid.uuid4()), json.dumps(payload)
        )
        return str(execution.execution_arn)
    kind = target["Arn"].split(":", 5)[-1] if service == "scheduler" else service
    raise NotImplementedError(
        f"schedule {group}/{name} targets {kind} ({target['Arn']}); the engine runs only "
        "Lambda and Step Functions targets"
    )


def target_input(schedule_arn: str, text: str | None) -> Any:
    """The target's input with the scheduler's context attributes filled in, as JSON."""
    if not text:
        return {}
    context = {
        "schedule-arn": schedule_arn,
        "scheduled-time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "execution-id": str(uuid.uuid4()),
        "attempt-number": "1",
    }
    for attribute, value in context.items():
        text = text.replace(f"<aws.scheduler.{attribute}>", value)
    return json.loads(text)


def _invoke(account: str, region: str, function_arn: str, event: Any) -> Any:
    from moto.awslambda.utils import get_backend

    function = get_backend(account, region).get_function(function_arn)
    result = lambda_runtime.RUNTIME.execute(function, event, "RequestResponse")
    payload = json.loads(result.payload) if result.payload else None
    if result.function_error:
        raise ScheduleTargetError(
            f"{function.function_name} failed: {result.record.error_type}: "
            f"{result.record.error_message}"
        )
    return payload
