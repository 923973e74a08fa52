"""From an uploaded bundle version to a started training run (or a recorded rejection).

The flow follows docs/training-pipeline.md: record the upload (at most once per object
version: a second delivery of the same S3 event finds the record and stops), check the key
and the model, read exactly the uploaded version, validate it with the same code as
`mlops bundle validate`, stage the code under `runs/<run_id>/code/`, and start the workflow
with `name=<run_id>`. Every rejection is recorded with its reason and announced; the
uploaded object is only ever read.

AWS clients are passed in, so this module knows nothing about Lambda.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdas.training_trigger.execution import (
    ExecutionPlan,
    FeatureStoreSettings,
    build_execution_input,
    staged_code,
)
from mlops.bundle import ArchiveLimits, validate_archive
from mlops.images import ImageNotFoundError
from mlops.runs import RunRecord, RunsRepository, RunStatus, run_id_for

logger = Logger(service="training-trigger", child=True)

# People upload under bundles/; the retraining function of the monitoring stack copies a
# champion's bundle under continuous-training/ (a prefix the code bucket's policy lets only that
# function write), so a run's origin is known from its key, never from claimable metadata.
CONTINUOUS_TRAINING_PREFIX = "continuous-training/"
BUNDLE_KEY = re.compile(
    r"^(?P<source>bundles|continuous-training)/(?P<model>[a-z][a-z0-9-]{1,29})/"
    r"(?P<name>[^/]+)\.tar\.gz$"
)
EXPECTED_KEY = "bundles/<model>/<name>.tar.gz"
UNKNOWN = "unknown"
MAX_REASON = 2000
MAX_SUBJECT = 100


class TriggerSettings(BaseSettings):
    """The trigger's environment, read when an invocation needs it (never at import)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    runs_table: str = Field(min_length=1)
    artifacts_bucket: str = Field(min_length=1)
    state_machine_arn: str = Field(min_length=1)
    notification_topic_arn: str = Field(min_length=1)
    allowed_models: str = "*"
    max_bundle_bytes: int = Field(default=ArchiveLimits().max_bytes, gt=0)
    max_bundle_files: int = Field(default=ArchiveLimits().max_files, gt=0)
    aws_region: str = Field(
        min_length=1, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # The feature store training sets are built from (from the feature-store stack).
    feature_store_offline: Literal["athena", "file"] | None = None
    feast_project: str = Field(default="credit_risk", pattern=r"^[A-Za-z0-9_]+$")
    data_lake_bucket: str | None = None
    offline_prefix: str = "offline/"
    glue_database: str | None = None
    athena_workgroup: str | None = None
    athena_results: str | None = Field(default=None, pattern=r"^s3://")

    @property
    def allowed(self) -> frozenset[str] | None:
        """The models this platform trains; None means any (`*`)."""
        names = frozenset(n.strip() for n in self.allowed_models.split(",") if n.strip())
        return None if "*" in names else names

    @property
    def feature_store(self) -> FeatureStoreSettings | None:
        """Where training sets come from; None when the feature store is not wired in."""
        if self.feature_store_offline is None or self.data_lake_bucket is None:
            return None
        return FeatureStoreSettings(
            offline_store=self.feature_store_offline, project=self.feast_project,
            data_lake_bucket=self.data_lake_bucket, offline_prefix=self.offline_prefix,
            database=self.glue_database, workgroup=self.athena_workgroup,
            athena_results=self.athena_results,
        )  # fmt: skip

    @property
    def limits(self) -> ArchiveLimits:
        return ArchiveLimits(max_bytes=self.max_bundle_bytes, max_files=self.max_bundle_files)


@dataclass(frozen=True)
class UploadedObject:
    """The object version an S3 "Object Created" event announces."""

    bucket: str
    key: str
    version_id: str | None
    size: int | None
    etag: str | None
    time: str


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str  # a RunStatus, or "DUPLICATE" for a repeated delivery
    reason: str | None = None
    execution_arn: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Rejected(Exception):
    """The upload cannot be trained; `reason` is what the data scientist reads."""

    def __init__(self, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}


def model_of_key(key: str) -> str | None:
    """The model a key belongs to, when it has the bundle layout."""
    match = BUNDLE_KEY.match(key)
    return match.group("model") if match else None


def _record_model(key: str) -> str:
    """Best-effort model name for the record of a key that may be malformed."""
    parts = key.split("/")
    prefixes = ("bundles", CONTINUOUS_TRAINING_PREFIX.rstrip("/"))
    return parts[1] if len(parts) >= 3 and parts[0] in prefixes and parts[1] else UNKNOWN


def trigger_of(key: str, metadata: dict[str, str]) -> dict[str, str]:
    """`trigger` ("upload" or "continuous-training") and, for a retraining run, why and of
    which version (the retraining function's metadata; only trusted under its prefix)."""
    if not key.startswith(CONTINUOUS_TRAINING_PREFIX):
        return {"trigger": "upload"}
    found = {"trigger": "continuous-training"}
    for name in ("retrain-reason", "retrain-of"):
        if metadata.get(name):
            found[name.replace("-", "_")] = metadata[name]
    return found


@dataclass
class TrainingTrigger:
    """The use case; construct with clients for S3, Step Functions and SNS."""

    settings: TriggerSettings
    runs: RunsRepository
    s3: Any
    sfn: Any
    sns: Any

    def handle(self, upload: UploadedObject) -> Outcome:
        model = model_of_key(upload.key) or _record_model(upload.key)
        version = upload.version_id or "null"
        run_id = run_id_for(model, upload.bucket, upload.key, version)
        record = RunRecord(
            run_id=run_id, model_name=model, bucket=upload.bucket, key=upload.key,
            version_id=version,
        )  # fmt: skip
        if not self.runs.create(record):
            logger.info("duplicate delivery: the run already exists", extra={"run_id": run_id})
            return Outcome(run_id=run_id, status="DUPLICATE")
        logger.append_keys(run_id=run_id)
        try:
            return self._process(run_id, upload)
        except Rejected as rejection:
            return self._reject(run_id, model, upload, rejection)
        except Exception as error:
            reason = _truncate(f"trigger error: {type(error).__name__}: {error}")
            logger.exception("unexpected error; recording the run as FAILED")
            self.runs.update_status(run_id, RunStatus.FAILED, reason=reason)
            raise

    def _process(self, run_id: str, upload: UploadedObject) -> Outcome:
        model = self._check_key(upload)
        data, metadata = self._read_version(upload)
        report = validate_archive(data, expected_model=model, limits=self.settings.limits)
        bundle = {
            "bucket": upload.bucket, "key": upload.key, "version_id": str(upload.version_id),
            "git_commit": metadata.get("git-commit") or UNKNOWN,
            "uploaded_by": metadata.get("uploaded-by") or UNKNOWN, "sha256": report.sha256,
            **trigger_of(upload.key, metadata),
        }  # fmt: skip
        if not report.ok or report.manifest is None:
            raise Rejected(f"invalid bundle: {'; '.join(report.errors)}", {"errors": report.errors})
        feature_store = self._feature_store(report.manifest)
        claimed = metadata.get("bundle-sha256")
        if claimed and claimed != report.sha256:
            raise Rejected(
                f"bundle-sha256 metadata {claimed} does not match the object's sha256 "
                f"{report.sha256}: the upload was altered or truncated; upload it again"
            )
        plan = ExecutionPlan(
            run_id=run_id, manifest=report.manifest, bundle=bundle,
            artifacts_bucket=self.settings.artifacts_bucket, region=self.settings.aws_region,
            feature_store=feature_store,
        )  # fmt: skip
        try:
            execution_input = build_execution_input(plan)
        except ImageNotFoundError as error:
            raise Rejected(f"model.framework_version: {error}") from None
        self._stage(plan, report.files)
        arn = self._start(run_id, execution_input)
        self.runs.update_status(
            run_id, RunStatus.RUNNING, execution_arn=arn,
            details={k: bundle[k] for k in ("git_commit", "uploaded_by", "sha256")},
        )  # fmt: skip
        logger.info("training started", extra={"execution_arn": arn})
        return Outcome(run_id=run_id, status=str(RunStatus.RUNNING), execution_arn=arn)

    def _feature_store(self, manifest: dict[str, Any]) -> FeatureStoreSettings | None:
        """The feature store a `feature_service` input trains from (None for a dataset input)."""
        if "feature_service" not in manifest["input"]:
            return None
        settings = self.settings.feature_store
        if settings is None:
            raise Rejected(
                "input.feature_service: this platform's trigger has no feature store configured "
                "(FEATURE_STORE_* settings); use input.dataset or deploy the feature-store stack"
            )
        return settings

    def _check_key(self, upload: UploadedObject) -> str:
        model = model_of_key(upload.key)
        if model is None:
            raise Rejected(
                f"wrong key prefix: {upload.key!r} does not match {EXPECTED_KEY} "
                "(model: 2-30 lowercase letters, digits or '-'); `mlops bundle upload` "
                "chooses the key for you"
            )
        allowed = self.settings.allowed
        if allowed is not None and model not in allowed:
            raise Rejected(
                f"model {model!r} is not allowed on this platform "
                f"(allowed: {', '.join(sorted(allowed)) or 'none'}); ask the platform team "
                "to add it to ALLOWED_MODELS"
            )
        if not upload.version_id or upload.version_id == "null":
            raise Rejected(
                "the object has no version id: the code bucket must be versioned so the "
                "platform trains exactly the uploaded bytes"
            )
        return model

    def _read_version(self, upload: UploadedObject) -> tuple[bytes, dict[str, str]]:
        """Size check, then the bytes and metadata of exactly this version (never latest)."""
        where = {"Bucket": upload.bucket, "Key": upload.key, "VersionId": upload.version_id}
        head = self.s3.head_object(**where)
        size, limit = int(head["ContentLength"]), self.settings.limits
        if size > limit.max_bytes:
            raise Rejected(
                f"bundle too large: {size} bytes; the limit is {limit.describe_bytes()} "
                "(MAX_BUNDLE_BYTES)"
            )
        body = self.s3.get_object(**where)["Body"]
        data: bytes = body.read(limit.max_bytes + 1)
        body.close()
        return data, {k.lower(): v for k, v in head.get("Metadata", {}).items()}

    def _stage(self, plan: ExecutionPlan, files: dict[str, bytes]) -> None:
        for key, body, content_type in staged_code(plan, files):
            self.s3.put_object(
                Bucket=self.settings.artifacts_bucket, Key=key, Body=body,
                ContentType=content_type,
            )  # fmt: skip

    def _start(self, run_id: str, execution_input: dict[str, Any]) -> str:
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.settings.state_machine_arn,
                name=run_id,
                input=json.dumps(execution_input),
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            logger.info("execution already exists: a duplicate start of the same run")
            arn = self.settings.state_machine_arn.replace(":stateMachine:", ":execution:", 1)
            return f"{arn}:{run_id}"
        return str(response["executionArn"])

    def _reject(
        self, run_id: str, model: str, upload: UploadedObject, rejection: Rejected
    ) -> Outcome:
        reason = _truncate(rejection.reason)
        logger.warning("bundle rejected", extra={"reason": reason})
        self.runs.update_status(
            run_id, RunStatus.REJECTED, reason=reason, details=rejection.details or None
        )
        message = {
            "event": "bundle.rejected", "status": str(RunStatus.REJECTED), "run_id": run_id,
            "model_name": model, "bucket": upload.bucket, "key": upload.key,
            "version_id": upload.version_id, "reason": reason,
        }  # fmt: skip
        self.sns.publish(
            TopicArn=self.settings.notification_topic_arn,
            Subject=_truncate(f"[mlops] bundle rejected: {model} ({run_id})", MAX_SUBJECT),
            Message=json.dumps(message),
            MessageAttributes={
                "status": {"DataType": "String", "StringValue": str(RunStatus.REJECTED)},
                "model": {"DataType": "String", "StringValue": model},
            },
        )
        return Outcome(run_id=run_id, status=str(RunStatus.REJECTED), reason=reason)


def _truncate(text: str, limit: int = MAX_REASON) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
