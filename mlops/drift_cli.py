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

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from rich.console import Console
from rich.table import Table

from mlops.cli_errors import aws_errors as _aws_errors
from mlops.cli_errors import usage_error as _usage
from mlops.deployments import ChampionPointer
from mlops.models_cli import ModelArgument
from mlops.models_view import check_model_name
from monitoring.drift import DriftReport, Thresholds
from monitoring.job import PREFIX, Reading, TargetError, Window, read_window, resolve_target
from monitoring.report import render_html


def _day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).date()
    except ValueError:
        raise ValueError(f"--end must be a day as YYYY-MM-DD, got {text!r}") from None


def _output(env: str, stack: str, key: str, *, required: bool = True) -> str | None:
    from mlops.stack_outputs import StackOutputError, stack_output

    try:
        return stack_output(f"mlops-{env}-{stack}", key)
    except StackOutputError as error:
        if not required:
            return None
        _usage(str(error))


def _required(env: str, stack: str, key: str) -> str:
    value = _output(env, stack, key)
    assert value is not None  # _usage exits otherwise
    return value


def _latest_report(env: str, model: str) -> str | None:
    """The newest scheduled report of `model` (None without a monitoring stack or report)."""
    bucket = _output(env, "monitoring", "DriftReportBucket", required=False)
    prefix = _output(env, "monitoring", "DriftReportPrefix", required=False)
    if bucket is None or prefix is None:
        return None
    pages = (
        boto3.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=f"{prefix}{model}/dt=")
    )
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])
            if o["Key"].endswith(".html")]  # fmt: skip
    return f"s3://{bucket}/{max(keys)}" if keys else None


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


def _summary(report: DriftReport, days: int, reading: Reading) -> str:
    counts, window = report.window, reading.window
    bad = counts.malformed_records + (counts.malformed_lines or 0)
    broken = f", {counts.broken_sources} unreadable objects" if counts.broken_sources else ""
    outside = f", {counts.outside_window} outside the window" if counts.outside_window else ""
    return (
        f"{report.model} v{report.version} · window {window.days[0]}..{window.days[-1]} "
        f"({days} day(s), {reading.objects} objects) · records: {counts.records} used, "
        f"{counts.skipped} skipped{outside}, {bad} malformed{broken} · "
        f"status: {report.status.value}"
    )


def _json(reading: Reading, days: int) -> dict[str, Any]:
    body = reading.to_dict()
    window = reading.window
    body["window"] |= {"start": window.days[0].isoformat(), "end": window.days[-1].isoformat(),
                       "days": days}  # fmt: skip
    return body


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
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write this reading as an HTML report to this file."),
    ] = None,
) -> None:
    """PSI per feature and for the score of MODEL's prediction logs over a window of days,
    against the baselines of the version's evaluation report, and where the latest scheduled
    report is. Exits 0 whatever the drift status (it is a report); 2 on bad input or an
    unusable version; 1 if AWS refused."""
    try:
        check_model_name(model)
        last = datetime.now(UTC).date() if end is None else _day(end)
        thresholds = Thresholds(warn=warn, act=act, min_rows=min_rows)
    except ValueError as error:
        _usage(str(error))
    if html is not None and html.is_dir():
        _usage(f"--html {html} is a directory; name the file to write")
    window = Window.days_ending(last, days)
    bucket = _required(env, "serving", "PredictionLogBucket")
    pointer = ChampionPointer(_required(env, "registry", "ChampionParameterPrefix"))
    with _aws_errors():
        s3 = boto3.client("s3")
        try:
            target = resolve_target(boto3.client("sagemaker"), s3, pointer, model, version)
        except TargetError as error:
            _usage(str(error))
        reading = read_window(s3, bucket, target, window, thresholds)
        latest = _latest_report(env, model)
    report = reading.report
    if html is not None:
        page = render_html(_json(reading, days), context=reading.context())
        html.write_text(page, encoding="utf-8")
    if as_json:
        body = _json(reading, days)
        body["latest_report"] = latest
        typer.echo(json.dumps(body, indent=2, allow_nan=False))
        return
    console = Console()
    if report.window.records:
        console.print(_table(report))
    else:
        console.print(f"no prediction records of {model} v{target.version} in s3://{bucket}/"
                      f"{PREFIX}{window.days[0]}..{window.days[-1]}")  # fmt: skip
    console.print(_summary(report, days, reading))
    if html is not None:
        console.print(f"report: {html}")
    console.print(f"latest scheduled report: {latest or 'none yet'}")
