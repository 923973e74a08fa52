"""Entry point of the training trigger: S3 "Object Created" (via EventBridge) → one run.

Event: the EventBridge form of an S3 "Object Created" notification from the code bucket
(rule on prefix `bundles/`): `time`, `detail.bucket.name`, `detail.object.{key,
version-id, size, etag}`. Output: `{"run_id", "status", "reason"?, "execution_arn"?}`
with status RUNNING, REJECTED, or DUPLICATE (a repeated delivery; nothing was done).

The function ships lambdas/training_trigger, mlops/bundle, mlops/images.py, mlops/runs.py and
mlops/dynamo.py (stacks/training.py), so it imports nothing else from the repository.

Environment: RUNS_TABLE, ARTIFACTS_BUCKET, STATE_MACHINE_ARN, NOTIFICATION_TOPIC_ARN,
ALLOWED_MODELS (comma list or `*`), MAX_BUNDLE_BYTES, MAX_BUNDLE_FILES, AWS_REGION.

An unexpected error records the run as FAILED and is re-raised, so the invocation counts
as a function error (alarms fire; retries find the record and stop).
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lambdas.training_trigger.domain import TrainingTrigger, TriggerSettings, UploadedObject
from mlops.runs import RunsRepository

logger = Logger(service="training-trigger")


class InvalidEventError(ValueError):
    """The event is not an S3 "Object Created" event (a wiring bug of the rule)."""


class ConfigurationError(RuntimeError):
    """The function's environment lacks a setting (a deployment bug)."""


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in error.errors()
    )


class _Bucket(BaseModel):
    name: str = Field(min_length=1)


class _Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    key: str = Field(min_length=1)
    version_id: str | None = Field(default=None, alias="version-id")
    size: int | None = None
    etag: str | None = None


class _Detail(BaseModel):
    bucket: _Bucket
    object: _Object


class ObjectCreatedEvent(BaseModel):
    """The fields of EventBridge's S3 "Object Created" event the trigger uses."""

    source: str = Field(pattern=r"^aws\.s3$")
    detail_type: str = Field(alias="detail-type", pattern=r"^Object Created$")
    time: str = Field(min_length=1)
    detail: _Detail

    def upload(self) -> UploadedObject:
        obj = self.detail.object
        return UploadedObject(
            bucket=self.detail.bucket.name, key=obj.key, version_id=obj.version_id,
            size=obj.size, etag=obj.etag, time=self.time,
        )  # fmt: skip


def trigger(settings: TriggerSettings) -> TrainingTrigger:
    """The use case wired to AWS clients in the function's region."""
    region = settings.aws_region
    return TrainingTrigger(
        settings=settings,
        runs=RunsRepository(settings.runs_table),
        s3=boto3.client("s3", region_name=region),
        sfn=boto3.client("stepfunctions", region_name=region),
        sns=boto3.client("sns", region_name=region),
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    try:
        upload = ObjectCreatedEvent.model_validate(event).upload()
    except ValidationError as error:
        raise InvalidEventError(f"not an S3 Object Created event: {_summary(error)}") from None
    logger.append_keys(bucket=upload.bucket, key=upload.key, version_id=upload.version_id)
    try:
        settings = TriggerSettings()  # type: ignore[call-arg]  # from the environment, now
    except ValidationError as error:
        raise ConfigurationError(f"trigger settings incomplete: {_summary(error)}") from None
    return trigger(settings).handle(upload).as_dict()
