"""One drift reading: a model version's baselines against a window of its prediction logs.

Shared by `mlops drift` (on demand) and the scheduled drift job (`lambdas/drift_job`), so both
read the same objects the same way; clients are passed in (boto3 on AWS and on the engine).

- `resolve_target` finds the version (the champion, through its pointer, unless one is named)
  and reads the `baselines` of its evaluation report (`ModelMetrics.ModelQuality.Statistics`).
  A version that cannot be read against raises `TargetError`, whose message says why.
- `Window` is a half-open UTC interval. The log bucket is partitioned by *arrival* day
  (`predictions/dt=YYYY-MM-DD/`), so a window reads every partition it touches and keeps the
  records whose `ts` falls inside (`compute_drift(between=...)`).
- `read_window` streams the objects (gzip or plain JSON lines), one open body at a time.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common import split_s3_uri
from monitoring.drift import DriftReport, Thresholds, compute_drift
from monitoring.logs import LogLines, read_log_lines
from monitoring.psi import Baseline, BaselineError

PREFIX = "predictions/dt="
PAGE_SIZE = 1000  # ListObjectsV2 MaxKeys at most
_TINY = timedelta(microseconds=1)


class TargetError(ValueError):
    """The model or version cannot be read against (no champion, no report, bad baselines)."""


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware (UTC)")
        if not self.start < self.end:
            raise ValueError(f"empty window: {self.start.isoformat()} .. {self.end.isoformat()}")

    @classmethod
    def days_ending(cls, last: date, days: int) -> Window:
        """Whole UTC days: the `days` days ending with `last` (inclusive)."""
        if days < 1:
            raise ValueError(f"days must be >= 1, got {days}")
        start = datetime.combine(last - timedelta(days=days - 1), time(), UTC)
        return cls(start, datetime.combine(last + timedelta(days=1), time(), UTC))

    @classmethod
    def hours_before(cls, end: datetime, hours: int) -> Window:
        """The `hours` hours before `end` (a rolling window, e.g. the last 24 hours)."""
        if hours < 1:
            raise ValueError(f"hours must be >= 1, got {hours}")
        return cls(end - timedelta(hours=hours), end)

    @property
    def days(self) -> list[date]:
        first, last = self.start.date(), (self.end - _TINY).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    @property
    def partitions(self) -> list[str]:
        return [f"{PREFIX}{day:%Y-%m-%d}/" for day in self.days]

    @property
    def between(self) -> tuple[float, float]:
        return self.start.timestamp(), self.end.timestamp()

    @property
    def label(self) -> str:
        return f"{_iso(self.start)}..{_iso(self.end)}"

    def to_dict(self, objects: int) -> dict[str, Any]:
        return {"start": _iso(self.start), "end": _iso(self.end), "partitions": self.partitions,
                "objects": objects}  # fmt: skip


@dataclass(frozen=True)
class Target:
    """The version read against, and its baselines."""

    model: str
    version: int
    package_arn: str
    report_uri: str
    baseline: Baseline


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _package_arn(sagemaker: Any, pointer: Any, model: str, version: int | None) -> tuple[int, str]:
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=model)
    except ClientError as error:
        if _code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        raise TargetError(f"no model {model!r} in the registry") from None
    champion = pointer.get(model)
    if version is None:
        if champion is None:
            raise TargetError(f"{model!r} has no champion ({pointer.name(model)} is not set); "
                              "name a version")  # fmt: skip
        return int(champion.version), str(champion.package_arn)
    if champion is not None and champion.version == version:
        return version, str(champion.package_arn)
    pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=model)
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            if summary.get("ModelPackageVersion") == version:
                return version, str(summary["ModelPackageArn"])
    raise TargetError(f"{model!r} has no version {version}")


def resolve_target(
    sagemaker: Any, s3: Any, pointer: Any, model: str, version: int | None = None
) -> Target:
    """The version (default: the champion `pointer` names) and its report's baselines."""
    number, arn = _package_arn(sagemaker, pointer, model, version)
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    uri = uri.get("S3Uri")
    if not uri:
        raise TargetError(f"{model} v{number} ({arn}) has no evaluation report "
                          "(ModelQuality statistics)")  # fmt: skip
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError as error:
        raise TargetError(f"{model} v{number}: the evaluation report location: {error}") from None
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if _code(error) not in ("NoSuchKey", "404"):
            raise
        missing = f"{model} v{number}: the evaluation report {uri} does not exist"
        raise TargetError(missing) from None
    try:
        baseline = Baseline.from_evaluation(json.loads(body))
    except BaselineError as error:
        raise TargetError(f"{model} v{number}: {error} ({uri})") from None
    except ValueError as error:  # JSONDecodeError
        invalid = f"{model} v{number}: the evaluation report {uri} is not JSON: {error}"
        raise TargetError(invalid) from None
    return Target(model=model, version=number, package_arn=arn, report_uri=uri, baseline=baseline)


class _LazyObject(io.RawIOBase):
    """One S3 object's body, requested on the first read and closed at its end."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._s3, self._bucket, self._key = s3, bucket, key
        self._body: Any = None
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:  # readers may ask again after the end; the body is closed by then
            return 0
        if self._body is None:
            self._body = self._s3.get_object(Bucket=self._bucket, Key=self._key)["Body"]
        data: bytes = self._body.read(len(buffer))
        if not data:
            self._done = True
            self._body.close()
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


def log_keys(s3: Any, bucket: str, window: Window) -> list[str]:
    """Every object of the window's partitions, listed page by page."""
    paginator = s3.get_paginator("list_objects_v2")
    keys: list[str] = []
    for prefix in window.partitions:
        pages = paginator.paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        keys.extend(o["Key"] for page in pages for o in page.get("Contents", []))
    return keys


def window_lines(s3: Any, bucket: str, keys: list[str]) -> LogLines:
    return read_log_lines(io.BufferedReader(_LazyObject(s3, bucket, key)) for key in keys)


@dataclass(frozen=True)
class Reading:
    """A drift report with where it came from."""

    report: DriftReport
    target: Target
    window: Window
    bucket: str
    objects: int

    def context(self) -> dict[str, str]:
        """Where the reading came from, as the HTML report's header rows."""
        return {"Window": self.window.label, "Package": self.target.package_arn,
                "Logs": f"s3://{self.bucket}/ ({self.objects} objects)",
                "Baselines": self.target.report_uri}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        body = self.report.to_dict()
        body["window"] = {**body["window"], **self.window.to_dict(self.objects)}
        body["package_arn"] = self.target.package_arn
        body["evaluation_report"] = self.target.report_uri
        body["log_bucket"] = self.bucket
        return body


def read_window(
    s3: Any, bucket: str, target: Target, window: Window, thresholds: Thresholds
) -> Reading:
    """Drift of `target`'s version over `window` of the logs in `bucket`."""
    keys = log_keys(s3, bucket, window)
    report = compute_drift(
        window_lines(s3, bucket, keys), target.baseline, model=target.model,
        version=target.version, thresholds=thresholds, between=window.between,
    )  # fmt: skip
    return Reading(report=report, target=target, window=window, bucket=bucket, objects=len(keys))
