"""The scheduled materialization job: offline store -> Redis, incrementally, with a run record.

The feature-store schedule starts it as a SageMaker Processing job inside the VPC (where Redis
is reachable), through the platform launcher: `features/materialize_entry.py`, or
`python -m features.job`. Settings come from the environment (`JobSettings`, variables
`MLOPS_*` and `AWS_REGION`); flags override some of them (`--help`). What a run does is
`features.job_run.run`; what it leaves behind is `features.job_report`.

Exit codes: 0 succeeded; 1 the run failed (the reason on stderr, in the run record and in the
SageMaker failure file, shown as the job's FailureReason) -- rerunning resumes from the
unchanged freshness records; 2 bad settings or arguments, every problem listed, nothing done.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.job_report import DEFAULT_NAMESPACE, AwsReporter, RunRecord, RunRecords
from features.job_run import (
    AthenaOffline,
    JobError,
    LakeOffline,
    RedisEndpoint,
    Target,
    check_window,
    run,
)
from features.repo import VIEWS

logger = logging.getLogger("materialization")

FAILURE_FILE = "/opt/ml/output/failure"
EXIT_FAILED, EXIT_USAGE = 1, 2
_ATHENA_NEEDS = ("glue_database", "athena_workgroup", "athena_results")


class JobSettings(BaseSettings):
    """The job's environment; each field is `MLOPS_<FIELD>` except `region` (`AWS_REGION`)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", extra="ignore", frozen=True)

    project: str = Field(pattern=r"^[A-Za-z0-9_]+$", description="the Feast project")
    offline_store: Literal["athena", "file"] = Field(description="athena or file")
    data_lake_bucket: str | None = Field(default=None, min_length=3)
    offline_prefix: str = Field(
        default="offline/", pattern=r"^([^/].*/)?$", description="a key prefix ending in /"
    )
    glue_database: str | None = Field(default=None, min_length=1)
    athena_workgroup: str | None = Field(default=None, min_length=1)
    athena_results: str | None = Field(
        default=None, pattern=r"^s3://[^/]+", description="an s3:// URI for query results"
    )
    region: str = Field(
        min_length=1,
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="the AWS region",
    )
    redis_host: str = Field(min_length=1, description="the Redis primary endpoint")
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_tls: bool = True
    redis_secret_arn: str | None = Field(default=None, min_length=1)
    runs_uri: str = Field(
        pattern=r"^s3://[^/]+/(.+/)?$", description="s3://bucket/prefix/ for run records"
    )
    lookback_days: int = Field(default=2, ge=1, le=365)
    views: str | None = None
    metrics_namespace: str = Field(default=DEFAULT_NAMESPACE, min_length=1)
    publish_metrics: bool = True

    @field_validator("views")
    @classmethod
    def _known_views(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(VIEWS))
        if not names or unknown:
            raise ValueError(f"unknown feature views {unknown}; valid: {', '.join(VIEWS)}")
        return ",".join(names)

    @property
    def view_names(self) -> tuple[str, ...]:
        return tuple(self.views.split(",")) if self.views else VIEWS

    def target(self) -> Target:
        offline: AthenaOffline | LakeOffline
        if self.offline_store == "athena":
            offline = AthenaOffline(
                self.region, str(self.glue_database), str(self.athena_workgroup),
                str(self.athena_results),
            )  # fmt: skip
        else:
            offline = LakeOffline(str(self.data_lake_bucket), self.offline_prefix, self.region)
        redis = RedisEndpoint(self.redis_host, self.redis_port, self.redis_tls,
                              self.redis_secret_arn, self.region)  # fmt: skip
        return Target(self.project, redis, offline, timedelta(days=self.lookback_days),
                      self.view_names)  # fmt: skip


def variable(name: str) -> str:
    """The environment variable behind a `JobSettings` field."""
    return "AWS_REGION" if name == "region" else f"MLOPS_{name.upper()}"


class SettingsError(ValueError):
    """Every problem with the settings, one per line, each naming its variable."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = list(problems)


def load_settings(**overrides: Any) -> JobSettings:
    """`JobSettings` from the environment (`overrides` win); SettingsError lists every problem.

    The variables only the chosen offline store needs are checked on the raw values, so a
    missing one is reported together with any malformed other.
    """
    problems: list[str] = []
    try:
        settings: JobSettings | None = JobSettings(**overrides)
    except ValidationError as error:
        settings = None
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "?"
            name = "region" if name in ("AWS_REGION", "AWS_DEFAULT_REGION") else name
            field = JobSettings.model_fields.get(name)
            if item["type"] == "missing":
                hint = f" ({field.description})" if field and field.description else ""
                problems.append(f"{variable(name)} is not set{hint}")
            elif item["type"] == "string_pattern_mismatch" and field and field.description:
                problems.append(f"{variable(name)}: expected {field.description} "
                                f"(got {item.get('input')!r})")  # fmt: skip
            else:
                problems.append(f"{variable(name)}: {item['msg']} (got {item.get('input')!r})")

    def given(name: str) -> bool:
        return bool(overrides.get(name) or os.environ.get(variable(name)))

    kind = overrides.get("offline_store") or os.environ.get(variable("offline_store"))
    needed = _ATHENA_NEEDS if kind == "athena" else ("data_lake_bucket",) if kind == "file" else ()
    problems += [f"{variable(n)} is not set (the {kind} offline store needs it)"
                 for n in needed if not given(n)]  # fmt: skip
    if problems or settings is None:
        raise SettingsError(problems)
    return settings


def parse_time(text: str) -> datetime:
    """ISO-8601 date or date-time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO-8601 date or time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def failure_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_FAILURE", FAILURE_FILE))


def fail(message: str, code: int) -> int:
    """Leave the reason on stderr and where SageMaker (or the local engine) reports it."""
    sys.stderr.write(message + "\n")
    try:
        path = failure_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message[:1024], encoding="utf-8")
    except OSError as error:
        logger.error("could not write the failure reason to %s: %s", failure_file(), error)
    return code


def _time_argument(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="features.job", allow_abbrev=False,
                     description="Materialize the offline feature store into Redis.")  # fmt: skip
    parser.add_argument("--start", type=_time_argument, help="window start (backfill); UTC")
    parser.add_argument("--end", type=_time_argument, help="window end; default now; UTC")
    parser.add_argument("--view", action="append", choices=VIEWS, help="repeatable")
    parser.add_argument("--lookback-days", type=int, help="overrides MLOPS_LOOKBACK_DAYS")
    parser.add_argument("--dry-run", action="store_true", help="print the windows; write nothing")
    return parser


def _reporter(settings: JobSettings) -> AwsReporter:
    import boto3

    records = RunRecords(settings.runs_uri, boto3.client("s3", region_name=settings.region))
    cloudwatch = (boto3.client("cloudwatch", region_name=settings.region)
                  if settings.publish_metrics else None)  # fmt: skip
    return AwsReporter(records, cloudwatch, settings.metrics_namespace)


def _log_summary(record: RunRecord) -> None:
    for name, view in record.views.items():
        logger.info(
            "%s %s [%s, %s] from %s: partitions=%d read=%d written=%d rejected=%d",
            name, view.status, view.start.isoformat(), view.end.isoformat(), view.start_from,
            len(view.partitions), view.rows_read, view.rows_written, view.rejected_rows,
        )  # fmt: skip
    logger.info("run %s %s %s", record.run_id, record.status, record.totals)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")  # fmt: skip
    try:
        args = _parser().parse_args(argv)
        overrides: dict[str, Any] = {}
        if args.view:
            overrides["views"] = ",".join(args.view)
        if args.lookback_days is not None:
            overrides["lookback_days"] = args.lookback_days
        settings = load_settings(**overrides)
        check_window(args.start, args.end)
    except ValueError as error:
        return fail(f"materialization: {error}", EXIT_USAGE)
    try:
        record = run(settings.target(), start=args.start, end=args.end, dry_run=args.dry_run,
                     reporter=None if args.dry_run else _reporter(settings))  # fmt: skip
    except JobError as error:
        return fail(f"materialization: {error}", EXIT_FAILED)
    except Exception as error:
        logger.exception("materialization failed unexpectedly")
        return fail(f"materialization: unexpected {type(error).__name__}: {error}", EXIT_FAILED)
    _log_summary(record)
    if record.status == "FAILED":
        return fail(f"materialization run {record.run_id} failed: {record.error}", EXIT_FAILED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
