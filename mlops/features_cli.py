"""`mlops features`: run the materialization job on demand and look at freshness.

`materialize` runs the scheduled job's own code (`features.job_run.run`) in this process, either
purely locally (`--redis-url` + `--offline-dir`, a directory of `dt=` Parquet partitions as
`pipelines.sample_data.write_parquet` lays them out) or against a deployed environment
(`--env`: the feature-store stack's outputs and the environment's configuration in cdk.json;
Redis must be reachable from here -- inside the VPC, or through a tunnel given as
`--redis-url`). The local engine's Redis is a plain `redis-server` standing in for ElastiCache,
so `--env local` talks to it without TLS or AUTH.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli_errors import failure as _failed
from mlops.cli_errors import usage_error as _usage

if TYPE_CHECKING:
    from features.job_report import RunRecord
    from features.job_run import RedisEndpoint, RedisUrl, Target

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_PROJECT = "credit_risk"
ATHENA_RESULTS_PREFIX = "materialization/"

features_app = typer.Typer(
    help="The feature store: materialize offline → online, check freshness.",
    no_args_is_help=True,
)
RedisUrlOption = Annotated[
    str | None, typer.Option("--redis-url", help="redis:// or rediss:// URL (local run, tunnel).")
]
EnvOption = Annotated[
    str | None, typer.Option("--env", help="Deployed environment whose stacks to read.")
]
ProjectOption = Annotated[
    str | None,
    typer.Option(help="Feast project (default: the environment's, or credit_risk locally)."),
]


def _environment(env: str) -> tuple[Any, str]:
    """The environment's configuration and its feature-store stack name."""
    from mlops.config import ENVIRONMENT_NAMES, ConfigError, load_platform_config, read_cdk_context

    if env not in ENVIRONMENT_NAMES:
        _usage(f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENT_NAMES)}")
    try:
        config = load_platform_config(read_cdk_context(REPO_ROOT / "cdk.json").get("platform"))
    except (ConfigError, OSError, ValueError, KeyError) as error:
        _usage(str(error))
    env_config = config.environments[env]  # type: ignore[index]
    # The environment's stacks live in its configured region, whatever the profile's default.
    os.environ.setdefault("AWS_DEFAULT_REGION", env_config.region)
    return env_config, f"{config.project}-{env}-feature-store"


def _outputs(stack: str, *keys: str) -> dict[str, str]:
    from mlops.stack_outputs import StackOutputError, stack_output

    try:
        return {key: stack_output(stack, key) for key in keys}
    except StackOutputError as error:
        _usage(str(error))


def _redis(env: str | None, redis_url: str | None) -> RedisEndpoint | RedisUrl:
    from features.job_run import RedisEndpoint, RedisUrl

    if redis_url is not None:
        if not redis_url.startswith(("redis://", "rediss://")):
            _usage(f"--redis-url must start with redis:// or rediss://, got {redis_url!r}")
        return RedisUrl(redis_url)
    if env is None:
        _usage("give --redis-url (and --offline-dir) for a local run, or --env ENV")
    env_config, stack = _environment(env)
    out = _outputs(stack, "RedisEndpointAddress", "RedisEndpointPort", "RedisAuthSecretArn")
    secured = env != "local"
    return RedisEndpoint(
        out["RedisEndpointAddress"], int(out["RedisEndpointPort"]), tls=secured,
        secret_arn=out["RedisAuthSecretArn"] if secured else None, region=env_config.region,
    )  # fmt: skip


def _target(
    env: str | None,
    redis_url: str | None,
    offline_dir: Path | None,
    project: str | None,
    views: list[str] | None,
    lookback_days: int | None,
) -> Target:
    from datetime import timedelta

    from features.job_run import AthenaOffline, DirOffline, LakeOffline, Target
    from features.repo import VIEWS

    unknown = sorted(set(views or ()) - set(VIEWS))
    if unknown:
        _usage(f"unknown feature views {unknown}; valid: {', '.join(VIEWS)}")
    if env is None and (redis_url is None or offline_dir is None):
        _usage("a local run needs both --redis-url and --offline-dir (or use --env ENV)")
    if offline_dir is not None and not offline_dir.is_dir():
        _usage(f"--offline-dir {offline_dir} is not a directory")
    redis = _redis(env, redis_url)
    offline: AthenaOffline | LakeOffline | DirOffline
    lookback, name = 2, project or LOCAL_PROJECT
    if offline_dir is not None:
        offline = DirOffline(offline_dir)
    if env is not None:
        env_config, stack = _environment(env)
        store = env_config.feature_store
        lookback, name = store.materialization_lookback_days, project or store.feast_project
        if offline_dir is None and store.offline_store == "athena":
            out = _outputs(stack, "GlueDatabaseName", "AthenaWorkGroupName",
                           "AthenaResultsBucketName")  # fmt: skip
            offline = AthenaOffline(
                env_config.region, out["GlueDatabaseName"], out["AthenaWorkGroupName"],
                f"s3://{out['AthenaResultsBucketName']}/{ATHENA_RESULTS_PREFIX}",
            )  # fmt: skip
        elif offline_dir is None:
            bucket = _outputs(stack, "DataLakeBucketName")["DataLakeBucketName"]
            offline = LakeOffline(bucket, "offline/", env_config.region)
    return Target(name, redis, offline, timedelta(days=lookback_days or lookback),
                  tuple(views) if views else VIEWS)  # fmt: skip


def _reporter(env: str | None, runs_uri: str | None, publish_metrics: bool) -> Any:
    """For `--env` runs: the run record where the scheduled runs' go (the stack's
    `MaterializationRunsUri`, or `--runs-uri`), metrics only with `--publish-metrics` (a
    manual run's failure would otherwise page whoever watches the schedule's alarm)."""
    if env is None:
        if runs_uri is not None or publish_metrics:
            _usage("--runs-uri and --publish-metrics need --env (local runs record nothing)")
        return None
    import boto3

    from features.job_report import AwsReporter, RunRecords
    from mlops.stack_outputs import StackOutputError, stack_output

    if runs_uri is None:
        try:
            runs_uri = stack_output(_environment(env)[1], "MaterializationRunsUri")
        except StackOutputError:
            typer.secho("warning: no MaterializationRunsUri output and no --runs-uri: this "
                        "run is not recorded", fg="yellow", err=True)  # fmt: skip
    try:
        records = RunRecords(runs_uri, boto3.client("s3")) if runs_uri else None
    except ValueError as error:
        _usage(f"--runs-uri: {error}")
    return AwsReporter(records, boto3.client("cloudwatch") if publish_metrics else None)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _duration(seconds: float) -> str:
    """`3d 04h`, `2h 05m`, `7m`; negative when the moment lies ahead."""
    sign, whole = ("-" if seconds < 0 else ""), int(abs(seconds))
    days, hours, minutes = whole // 86_400, whole % 86_400 // 3600, whole % 3600 // 60
    if days:
        return f"{sign}{days}d {hours:02d}h"
    return f"{sign}{hours}h {minutes:02d}m" if hours else f"{sign}{minutes}m"


def _summary(record: RunRecord, dry_run: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    if dry_run:
        table = Table("view", "window (UTC)", "from", "partitions (dt)")
        for name, view in record.views.items():
            listed = ", ".join(view.partitions) or view.status
            table.add_row(name, f"{_when(view.start)} → {_when(view.end)}", view.start_from,
                          listed)  # fmt: skip
    else:
        table = Table("view", "status", "window (UTC)", "from", "partitions", "read", "written",
                      "rejected")  # fmt: skip
        for name, view in record.views.items():
            days = view.partitions
            spread = f"{days[0]} .. {days[-1]} ({len(days)})" if days else "none"
            table.add_row(name, view.status, f"{_when(view.start)} → {_when(view.end)}",
                          view.start_from, spread, str(view.rows_read), str(view.rows_written),
                          str(view.rejected_rows))  # fmt: skip
    Console().print(table)
    seconds = ((record.finished_at or record.started_at) - record.started_at).total_seconds()
    typer.echo(f"run {record.run_id} {record.status} in {seconds:.1f}s")
    for warning in record.warnings:
        typer.secho(f"warning: {warning}", fg="yellow")


@features_app.command("materialize")
def materialize_command(
    redis_url: RedisUrlOption = None,
    offline_dir: Annotated[
        Path | None, typer.Option(help="Local root of <view>/dt=YYYY-MM-DD/*.parquet.")
    ] = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    start: Annotated[str | None, typer.Option(help="Window start, ISO-8601 (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601 (UTC); now.")] = None,
    view: Annotated[list[str] | None, typer.Option(help="Only this view (repeatable).")] = None,
    lookback_days: Annotated[int | None, typer.Option(min=1, max=365)] = None,
    dry_run: Annotated[bool, typer.Option(help="Print windows and partitions only.")] = False,
    runs_uri: Annotated[
        str | None, typer.Option(help="s3://bucket/prefix/ for the run record (--env).")
    ] = None,
    publish_metrics: Annotated[bool, typer.Option(help="CloudWatch metrics (--env).")] = False,
) -> None:
    """Materialize each view's window (from its freshness end to now) into Redis."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from features.job import parse_time
    from features.job_run import JobError, check_window, run

    try:
        window = (parse_time(start) if start else None, parse_time(end) if end else None)
        check_window(*window)
    except ValueError as error:
        _usage(str(error))
    target = _target(env, redis_url, offline_dir, project, view, lookback_days)
    reporter = None if dry_run else _reporter(env, runs_uri, publish_metrics)
    bar = Progress(TextColumn("{task.description:24}"), BarColumn(),
                   TextColumn("{task.completed:,.0f} entities"), TimeElapsedColumn(),
                   disable=dry_run)  # fmt: skip
    tasks = {name: bar.add_task(name, total=None) for name in target.views}
    try:
        with bar:
            record = run(target, start=window[0], end=window[1], dry_run=dry_run, reporter=reporter,
                         progress=lambda name, n: bar.advance(tasks[name], n))  # fmt: skip
            for task in tasks.values():  # a finished view's bar shows full, not pulsing
                bar.update(task, total=max(bar.tasks[task].completed, 1))
    except JobError as error:
        _failed(str(error))
    except Exception as error:
        _failed(f"unexpected {type(error).__name__}: {error}")
    if record.views:
        _summary(record, dry_run)
    if record.status == "FAILED":
        _failed(f"run {record.run_id} failed: {record.error}")


@features_app.command("freshness")
def freshness_command(
    redis_url: RedisUrlOption = None, env: EnvOption = None, project: ProjectOption = None
) -> None:
    """Each view's freshness record (the end of its last materialized window) and its age."""
    import redis
    from rich.console import Console
    from rich.table import Table

    from features.materialize import read_freshness
    from features.repo import TTLS, VIEWS

    endpoint = _redis(env, redis_url)
    name = project or (_environment(env)[0].feature_store.feast_project if env else LOCAL_PROJECT)
    try:
        client = redis.Redis.from_url(endpoint.url())
        records = {view: read_freshness(client, name, view) for view in VIEWS}
    except Exception as error:  # Redis or Secrets Manager: one line, no traceback
        _failed(f"reading freshness from Redis {endpoint.address}: {error}")
    table = Table("view", "fresh until (UTC)", "age", "ttl", "rows", "rejected",
                  "finished (UTC)", title=f"project {name}")  # fmt: skip
    now = datetime.now(UTC)
    for view, fresh in records.items():
        ttl = _duration(TTLS[view].total_seconds())
        if fresh is None:
            table.add_row(view, "never materialized", "-", ttl, "-", "-", "-")
            continue
        table.add_row(view, _when(fresh.end), _duration((now - fresh.end).total_seconds()), ttl,
                      str(fresh.rows), str(fresh.rejected_rows),
                      _when(fresh.finished_at))  # fmt: skip
    Console().print(table)
