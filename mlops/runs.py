"""The runs table: one record per uploaded bundle version and what became of it.

Every upload gets a record, valid or not, so a data scientist can always answer "what
happened to my upload?" (`mlops runs list/show`). The record's key is derived from the
uploaded object (bucket, key, version), which also makes the trigger idempotent: S3 and
EventBridge deliver at least once, and only the first delivery can create the record.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import boto3
from botocore.exceptions import ClientError

from mlops.dynamo import from_dynamo, to_dynamo

MODEL_INDEX = "by-model"


class RunStatus(StrEnum):
    RECEIVED = "RECEIVED"  # upload seen, not yet validated
    REJECTED = "REJECTED"  # invalid bundle: nothing started
    RUNNING = "RUNNING"  # workflow execution started
    SUCCEEDED = "SUCCEEDED"  # a model package was registered
    GATED_OUT = "GATED_OUT"  # trained and evaluated, but did not pass the gate
    FAILED = "FAILED"  # a step failed; `reason` says which and why

    @property
    def terminal(self) -> bool:
        return self in {RunStatus.REJECTED, RunStatus.SUCCEEDED, RunStatus.GATED_OUT,
                        RunStatus.FAILED}  # fmt: skip


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_id_for(model_name: str, bucket: str, key: str, version_id: str) -> str:
    """A stable, SageMaker-job-name-safe id for one uploaded object version.

    `<model>-<16 hex of sha256(bucket/key?versionId=...)>`: a function of the object
    version alone, so every delivery of its upload event -- EventBridge retries, S3's rare
    duplicate notifications, replays -- maps to the same run and execution name. At most
    30 + 1 + 16 = 47 characters, leaving room for job-name suffixes (limit 63).
    """
    digest = hashlib.sha256(f"{bucket}/{key}?versionId={version_id}".encode()).hexdigest()[:16]
    safe_model = re.sub(r"[^a-zA-Z0-9-]", "-", model_name)[:30].strip("-") or "model"
    return f"{safe_model}-{digest}"


@dataclass
class RunRecord:
    run_id: str
    model_name: str
    bucket: str
    key: str
    version_id: str
    status: RunStatus = RunStatus.RECEIVED
    reason: str | None = None
    execution_arn: str | None = None
    model_package_arn: str | None = None
    git_commit: str | None = None
    uploaded_by: str | None = None
    received_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}

    def to_item(self) -> dict[str, Any]:
        item = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
        item["status"] = str(self.status)
        return dict(to_dynamo(item))

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> RunRecord:
        item = from_dynamo(item)
        known = {k: item[k] for k in cls.__dataclass_fields__ if k in item}
        known["status"] = RunStatus(known.get("status", RunStatus.RECEIVED))
        return cls(**known)


class RunsRepository:
    """DynamoDB access for run records (table: PK `run_id`; GSI `by-model`)."""

    def __init__(self, table_name: str, *, endpoint_url: str | None = None) -> None:
        self._table = boto3.resource("dynamodb", endpoint_url=endpoint_url).Table(table_name)

    def create(self, record: RunRecord) -> bool:
        """Insert a new record; False (and no change) if this run id already exists."""
        try:
            self._table.put_item(
                Item=record.to_item(), ConditionExpression="attribute_not_exists(run_id)"
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        reason: str | None = None,
        execution_arn: str | None = None,
        model_package_arn: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Move a run to `status`, setting only the fields given. The run must exist."""
        values: dict[str, Any] = {"status": str(status), "updated_at": now_iso()}
        for name, value in (
            ("reason", reason),
            ("execution_arn", execution_arn),
            ("model_package_arn", model_package_arn),
            ("details", details),
        ):
            if value is not None:
                values[name] = value  # fmt: skip
        assignments = ", ".join(f"#{name} = :{name}" for name in values)
        self._table.update_item(
            Key={"run_id": run_id},
            UpdateExpression=f"SET {assignments}",
            ConditionExpression="attribute_exists(run_id)",
            ExpressionAttributeNames={f"#{name}": name for name in values},
            ExpressionAttributeValues={f":{n}": to_dynamo(v) for n, v in values.items()},
        )

    def get(self, run_id: str) -> RunRecord | None:
        item = self._table.get_item(Key={"run_id": run_id}).get("Item")
        return RunRecord.from_item(item) if item else None

    def list(self, model_name: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Newest first; all models unless `model_name` is given."""
        if model_name:
            response = self._table.query(
                IndexName=MODEL_INDEX,
                KeyConditionExpression="model_name = :m",
                ExpressionAttributeValues={":m": model_name},
                ScanIndexForward=False,
                Limit=limit,
            )
            items = response.get("Items", [])
        else:
            items = self._table.scan().get("Items", [])
        records = [RunRecord.from_item(i) for i in items]
        return sorted(records, key=lambda r: r.received_at, reverse=True)[:limit]
