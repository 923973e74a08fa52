"""What a materialization run leaves behind: its run record and its CloudWatch metrics.

The record is one JSON object per run at `<runs uri><run_id>.json`, written as RUNNING before
any work starts and rewritten as SUCCEEDED or FAILED at the end, so a run that dies without
finishing still shows up (as RUNNING, with its start time). Run ids are a UTC timestamp plus a
short random suffix: listing the prefix returns runs in the order they started.

Metrics are what alarms watch: per view whose window was materialized `RowsWritten`,
`RejectedRows` and `FreshnessLagSeconds` (dimensions `Project`, `View`), and per run
`MaterializationFailed` (1 or 0, dimension `Project`). docs/feature-store.md has the shapes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

RunStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "DRY_RUN"]
# PENDING: not reached (yet); UP_TO_DATE: empty window; NO_DATA: no partition in the window.
ViewStatus = Literal["PENDING", "SUCCEEDED", "FAILED", "UP_TO_DATE", "NO_DATA"]
StartFrom = Literal["freshness", "lookback", "override"]
DEFAULT_NAMESPACE = "MLOps/FeatureStore"


def new_run_id(now: datetime | None = None) -> str:
    """`20261115T103000.123Z-3f9a1c`: sorts by start time (to the millisecond); the random
    suffix keeps two runs started in the same millisecond apart."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


@dataclass
class ViewRun:
    """One feature view's window in a run and what came of it."""

    view: str
    start: datetime
    end: datetime
    start_from: StartFrom
    previous_end: datetime | None
    partitions: list[str] = field(default_factory=list)
    status: ViewStatus = "PENDING"
    rows_read: int = 0
    rows_written: int = 0
    rejected_rows: int = 0
    rejected_batches: int = 0
    stale_rows: int = 0
    seconds: float = 0.0
    freshness_end: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "start_from": self.start_from,
            "previous_end": _iso(self.previous_end),
            "partitions": self.partitions,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rejected_rows": self.rejected_rows,
            "rejected_batches": self.rejected_batches,
            "stale_rows": self.stale_rows,
            "seconds": round(self.seconds, 3),
            "freshness_end": _iso(self.freshness_end),
        }


@dataclass
class RunRecord:
    """The run record; `to_dict` is exactly the JSON written."""

    run_id: str
    project: str
    offline_store: str
    redis: str  # host:port, never the password
    started_at: datetime
    status: RunStatus = "RUNNING"
    finished_at: datetime | None = None
    views: dict[str, ViewRun] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def finish(self, status: RunStatus, error: str | None = None) -> None:
        self.status, self.error, self.finished_at = status, error, datetime.now(UTC)

    @property
    def totals(self) -> dict[str, int]:
        names = ("rows_read", "rows_written", "rejected_rows", "rejected_batches")
        return {name: sum(getattr(v, name) for v in self.views.values()) for name in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "project": self.project,
            "offline_store": self.offline_store,
            "redis": self.redis,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            **self.totals,
            "views": {name: view.to_dict() for name, view in self.views.items()},
            "error": self.error,
            "warnings": self.warnings,
        }


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> (`bucket`, `a/b/`)."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class RunRecords:
    """Run records under an `s3://bucket/prefix/` URI."""

    def __init__(self, runs_uri: str, s3: Any) -> None:
        self.bucket, self.prefix = split_s3_uri(runs_uri)
        self._s3 = s3

    def key(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}.json"

    def put(self, record: RunRecord) -> None:
        body = json.dumps(record.to_dict(), indent=2).encode()
        self._s3.put_object(
            Bucket=self.bucket, Key=self.key(record.run_id), Body=body,
            ContentType="application/json",
        )  # fmt: skip

    def get(self, run_id: str) -> dict[str, Any]:
        body = self._s3.get_object(Bucket=self.bucket, Key=self.key(run_id))["Body"].read()
        return dict(json.loads(body))


def metric_data(record: RunRecord, now: datetime) -> list[dict[str, Any]]:
    """The CloudWatch datums for a finished run (see the module doc)."""
    project = {"Name": "Project", "Value": record.project}
    data: list[dict[str, Any]] = [{
        "MetricName": "MaterializationFailed", "Dimensions": [project],
        "Value": 1.0 if record.status == "FAILED" else 0.0, "Unit": "Count", "Timestamp": now,
    }]  # fmt: skip
    for name, view in record.views.items():
        if view.status not in ("SUCCEEDED", "UP_TO_DATE", "NO_DATA"):
            continue
        view_data: list[dict[str, Any]] = [
            {"MetricName": "RowsWritten", "Value": float(view.rows_written), "Unit": "Count"},
            {"MetricName": "RejectedRows", "Value": float(view.rejected_rows), "Unit": "Count"},
        ]
        if view.freshness_end is not None:
            lag = max((now - view.freshness_end).total_seconds(), 0.0)
            view_data.append({"MetricName": "FreshnessLagSeconds", "Value": lag,
                              "Unit": "Seconds"})  # fmt: skip
        for datum in view_data:
            datum.update(Dimensions=[project, {"Name": "View", "Value": name}], Timestamp=now)
        data += view_data
    return data


def publish_metrics(cloudwatch: Any, namespace: str, record: RunRecord) -> int:
    """Put the run's metrics; returns how many datums were sent."""
    data = metric_data(record, datetime.now(UTC))
    for first in range(0, len(data), 500):  # PutMetricData takes at most 1,000 per call
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[first : first + 500])
    return len(data)


class AwsReporter:
    """Run records in S3 and metrics in CloudWatch; either may be left out (None).

    Metrics go first at the end of a run, so a metrics failure can still be noted in the
    record (as a warning: the run's data is written, a failed put changes nothing about it).
    """

    def __init__(
        self, records: RunRecords | None, cloudwatch: Any | None, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        self.records, self.cloudwatch, self.namespace = records, cloudwatch, namespace

    def started(self, record: RunRecord) -> None:
        if self.records is not None:
            self.records.put(record)

    def finished(self, record: RunRecord) -> None:
        if self.cloudwatch is not None:
            try:
                publish_metrics(self.cloudwatch, self.namespace, record)
            except (ClientError, BotoCoreError) as error:
                record.warnings.append(f"metrics not published: {error}")
        if self.records is not None:
            self.records.put(record)
