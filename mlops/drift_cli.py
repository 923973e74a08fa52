"""`mlops drift MODEL`: PSI of one model version's prediction logs against its baselines.

Found through stack outputs: the logs (`PredictionLogBucket` of `mlops-<env>-serving`, objects
`predictions/dt=YYYY-MM-DD/<name>`), the serving version (the champion pointer under
`ChampionParameterPrefix` of `mlops-<env>-registry`) and, through the version's package, its
evaluation report (`ModelMetrics.ModelQuality.Statistics.S3Uri`) holding the `baselines`.

Exit codes: 0 whenever a report was produced, whatever its drift status (`act` included: a
report, not a gate); 2 bad input or a version that cannot be read against (unknown model, no
champion, no such version, no evaluation report, no valid baselines); 1 AWS refused. Every check
runs, and the whole window is read, before anything is printed.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table

from mlops.cli_errors import aws_errors as _aws_errors
from mlops.cli_errors import usage_error as _usage
from mlops.deployments import ChampionPointer
from mlops.models_cli import ModelArgument
from mlops.models_view import check_model_name
from monitoring.drift import DriftReport, Thresholds, compute_drift, read_log_lines
from monitoring.psi import Baseline, BaselineError

PREFIX = "predictions/dt="
PAGE_SIZE = 1000  # ListObjectsV2 MaxKeys at most


@dataclass(frozen=True)
class Window:
    """The `days` daily partitions ending with `end` (inclusive), oldest first."""

    end: date
    days: int

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.days - 1)

    @property
    def partitions(self) -> list[str]:
        return [f"{PREFIX}{self.start + timedelta(days=i):%Y-%m-%d}/" for i in range(self.days)]

    def to_dict(self, objects: int) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days,
                "partitions": self.partitions, "objects": objects}  # fmt: skip


def _day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).date()
    except ValueError:
        raise ValueError(f"--end must be a day as YYYY-MM-DD, got {text!r}") from None


def _output(env: str, stack: str, key: str) -> str:
    from mlops.stack_outputs import StackOutputError, stack_output

    try:
        return stack_output(f"mlops-{env}-{stack}", key)
    except StackOutputError as error:
        _usage(str(error))


def _client_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _package_arn(sagemaker: Any, model: str, version: int | None, env: str) -> tuple[int, str]:
    """The version asked for, or the champion's; exit 2 if there is none (see module doc)."""
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=model)
    except ClientError as error:
        if _client_code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
        _usage(f"no model {model!r} in the registry of {sagemaker.meta.region_name}")
    pointer = ChampionPointer(_output(env, "registry", "ChampionParameterPrefix"))
    champion = pointer.get(model)
    if version is None:
        if champion is None:
            _usage(f"{model!r} has no champion ({pointer.name(model)} is not set); "
                   "name a version with --version")  # fmt: skip
        return champion.version, champion.package_arn
    if champion is not None and champion.version == version:
        return version, champion.package_arn
    pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=model)
    for page in pages:
        for summary in page.get("ModelPackageSummaryList", []):
            if summary.get("ModelPackageVersion") == version:
                return version, str(summary["ModelPackageArn"])
    _usage(f"{model!r} has no version {version}")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        _usage(f"the evaluation report location is not an s3:// object: {uri!r}")
    return bucket, key


def _target(model: str, version: int | None, env: str) -> tuple[int, str, Baseline]:
    """Resolve the version and read its evaluation report's baselines (exit 2 if unusable)."""
    sagemaker, s3 = boto3.client("sagemaker"), boto3.client("s3")
    number, arn = _package_arn(sagemaker, model, version, env)
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    metrics = package.get("ModelMetrics", {}).get("ModelQuality", {})
    uri = metrics.get("Statistics", {}).get("S3Uri")
    if not uri:
        _usage(f"{model} v{number} ({arn}) has no evaluation report (ModelQuality statistics)")
    bucket, key = _split_s3(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if _client_code(error) not in ("NoSuchKey", "404"):
            raise
        _usage(f"{model} v{number}: the evaluation report {uri} does not exist")
    try:
        baseline = Baseline.from_evaluation(json.loads(body))
    except ValueError as error:  # JSONDecodeError
        _usage(f"{model} v{number}: the evaluation report {uri} is not JSON: {error}")
    except BaselineError as error:
        _usage(f"{model} v{number}: {error} ({uri})")
    return number, arn, baseline


class _LazyObject(io.RawIOBase):
    """One S3 object's body, requested on the first read and closed at its end."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._s3, self._bucket, self._key = s3, bucket, key
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._body is None:
            self._body = self._s3.get_object(Bucket=self._bucket, Key=self._key)["Body"]
        data: bytes = self._body.read(len(buffer))
        if not data:
            self._body.close()
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


def _log_keys(s3: Any, bucket: str, window: Window) -> list[str]:
    """Every object of the window's partitions, listed page by page."""
    paginator = s3.get_paginator("list_objects_v2")
    keys: list[str] = []
    for prefix in window.partitions:
        pages = paginator.paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        keys.extend(o["Key"] for page in pages for o in page.get("Contents", []))
    return keys


def _table(report: DriftReport) -> Table:
    table = Table("column", "PSI", "status", "rows", "missing", title=f"{report.model} drift")
    ranked = sorted(report.columns, key=lambda c: -1.0 if c.psi is None else c.psi, reverse=True)
    for column in ranked:
        name = f"{column.name} (score)" if column is report.score else column.name
        share = column.missing_share
        table.add_row(
            name, "-" if column.psi is None else f"{column.psi:.4f}", column.status.value,
            str(column.rows), "-" if share is None else f"{share:.1%}",
        )  # fmt: skip
    return table


def _summary(report: DriftReport, window: Window, objects: int) -> str:
    counts = report.window
    bad = counts.malformed_records + (counts.malformed_lines or 0)
    broken = f", {counts.broken_sources} unreadable objects" if counts.broken_sources else ""
    return (
        f"{report.model} v{report.version} · window {window.start}..{window.end} "
        f"({window.days} day(s), {objects} objects) · records: {counts.records} used, "
        f"{counts.skipped} skipped, {bad} malformed{broken} · status: {report.status.value}"
    )


def drift_command(
    model: ModelArgument,
    env: Annotated[str, typer.Option("--env", help="Environment whose stacks to read.")] = "dev",
    days: Annotated[int, typer.Option(min=1, max=366, help="Daily partitions read.")] = 1,
    end: Annotated[
        str | None, typer.Option(help="Last day read, YYYY-MM-DD (default: today, UTC).")
    ] = None,  # fmt: skip
    version: Annotated[
        int | None, typer.Option(min=1, help="Version (default: the champion).")
    ] = None,  # fmt: skip
    warn: Annotated[float, typer.Option(help="PSI from which a column is `warn`.")] = 0.1,
    act: Annotated[float, typer.Option(help="PSI from which a column is `act`.")] = 0.25,
    min_rows: Annotated[int, typer.Option(help="Fewest values a PSI is read on.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """PSI per feature and for the score of MODEL's prediction logs over a window of days,
    against the baselines of the version's evaluation report. Exits 0 whatever the drift
    status (it is a report); 2 on bad input or an unusable version; 1 if AWS refused."""
    try:
        check_model_name(model)
        last = datetime.now(UTC).date() if end is None else _day(end)
        thresholds = Thresholds(warn=warn, act=act, min_rows=min_rows)
    except ValueError as error:
        _usage(str(error))
    window = Window(last, days)
    bucket = _output(env, "serving", "PredictionLogBucket")
    with _aws_errors():
        number, arn, baseline = _target(model, version, env)
        s3 = boto3.client("s3")
        keys = _log_keys(s3, bucket, window)
        lines = read_log_lines(io.BufferedReader(_LazyObject(s3, bucket, k)) for k in keys)
        report = compute_drift(lines, baseline, model=model, version=number, thresholds=thresholds)
    if as_json:
        body = report.to_dict()
        body["window"] = {**body["window"], **window.to_dict(len(keys))}
        body["package_arn"] = arn
        typer.echo(json.dumps(body, indent=2, allow_nan=False))
        return
    console = Console()
    if report.window.records:
        console.print(_table(report))
    else:
        console.print(f"no prediction records of {model} v{number} in s3://{bucket}/"
                      f"{PREFIX}{window.start}..{window.end}")  # fmt: skip
    console.print(_summary(report, window, len(keys)))
