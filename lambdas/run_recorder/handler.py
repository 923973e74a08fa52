"""RecordSucceeded / RecordGatedOut / RecordFailed tasks of the training workflow.

Input (docs/training-pipeline.md, "Lambda contracts"): `{"run_id", "status": "SUCCEEDED" |
"FAILED" | "GATED_OUT", "reason"?, "error"?: {"Error", "Cause"}, "failed_step"?,
"model_package_arn"?, "execution_arn"?}`. Output: `{"run_id", "status", "reason"}`.

Moves the run's record to its terminal status, then publishes a notification. Both are safe
to repeat, so Step Functions may retry the task. Records are only ever created by the
trigger: a run id without a record is an error, never a new record.

Environment: `RUNS_TABLE` (DynamoDB table name), `NOTIFICATION_TOPIC_ARN` (SNS topic).

Errors (Step Functions error names): `UnknownRunError` (no record for the run id),
`InvalidInputError` (event off-contract, e.g. SUCCEEDED without `model_package_arn`),
`ConfigurationError` (a setting is missing).
"""

from __future__ import annotations

from typing import Any, Literal, Self

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdas.common import load_settings, parse_event
from lambdas.run_recorder.domain import console_links, notification, run_reason
from mlops.runs import RunRecord, RunsRepository, RunStatus

logger = Logger(service="training-run-recorder")


class UnknownRunError(LookupError):
    """The runs table has no record for this run id (the recorder never creates one)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    runs_table: str = Field(min_length=1)
    notification_topic_arn: str = Field(min_length=1)


class StepError(BaseModel):
    """Step Functions' caught error object (`ResultPath` of a `Catch`)."""

    model_config = ConfigDict(extra="forbid")

    Error: str
    Cause: str | None = None


class RunEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    status: Literal["SUCCEEDED", "FAILED", "GATED_OUT"]
    reason: str | None = None
    error: StepError | None = None
    failed_step: str | None = None
    model_package_arn: str | None = None
    execution_arn: str | None = None

    @model_validator(mode="after")
    def _succeeded_names_the_package(self) -> Self:
        if self.status == "SUCCEEDED" and not self.model_package_arn:
            raise ValueError("a SUCCEEDED run needs model_package_arn")
        return self


def _record_of(runs: RunsRepository, run_id: str) -> RunRecord:
    record = runs.get(run_id)
    if record is None:
        raise UnknownRunError(f"no run record for {run_id!r}; the recorder never creates one")
    return record


def record(runs: RunsRepository, event: RunEvent, reason: str) -> RunRecord:
    """Update the run's record; returns it as it was before the update."""
    before = _record_of(runs, event.run_id)
    details = dict(before.details)
    if event.failed_step:
        details["failed_step"] = event.failed_step
    if event.error:
        details["error"] = event.error.Error
    try:
        runs.update_status(
            event.run_id,
            RunStatus(event.status),
            reason=reason,
            execution_arn=event.execution_arn,
            model_package_arn=event.model_package_arn,
            details=details or None,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            raise UnknownRunError(f"the run record {event.run_id!r} disappeared") from None
        raise
    return before


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    settings = load_settings(Settings)
    run = parse_event(RunEvent, event)
    logger.append_keys(run_id=run.run_id)
    reason = run_reason(
        run.status,
        reason=run.reason,
        error=run.error.model_dump() if run.error else None,
        failed_step=run.failed_step,
        model_package_arn=run.model_package_arn,
    )
    before = record(RunsRepository(settings.runs_table), run, reason)
    links = console_links(run.execution_arn or before.execution_arn, run.model_package_arn)
    subject, message = notification(
        run_id=run.run_id, model_name=before.model_name, status=run.status, reason=reason,
        links=links, failed_step=run.failed_step,
    )  # fmt: skip
    boto3.client("sns").publish(
        TopicArn=settings.notification_topic_arn,
        Subject=subject,
        Message=message,
        MessageAttributes={
            "status": {"DataType": "String", "StringValue": run.status},
            "model": {"DataType": "String", "StringValue": before.model_name},
        },
    )
    logger.info("run recorded", extra={"status": run.status, "reason": reason})
    return {"run_id": run.run_id, "status": run.status, "reason": reason}
