"""One materialization run: windows from the freshness records, the offline partitions of those
windows, a Feast store over them, the bulk writes, and the run record around it all.

Used by the scheduled job (`features.job`, settings from the environment) and by
`mlops features materialize` (settings from flags or stack outputs) alike, so an on-demand run
is the scheduled run. Window per view: from the view's freshness `end` (else now minus the
lookback) to now, unless overridden. Offline data comes from Athena over the Glue tables, from
the data-lake bucket's `dt=YYYY-MM-DD` partitions copied to a scratch directory (the local
engine has no Athena), or from a local directory of such partitions. The Feast definitions are
code (`features.repo`), applied to a throwaway registry in the scratch directory, so a run
always uses the definitions shipped with it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import quote, urlsplit

import redis
from botocore.exceptions import BotoCoreError, ClientError

from features.job_report import RunRecord, ViewRun, new_run_id
from features.lake import download_files, partition_files, window_days
from features.materialize import MaterializationError, Progress, materialize, read_freshness
from features.repo import VIEWS, athena_sources, build_repo, file_sources
from features.store import (
    athena_offline_store,
    feature_store_config,
    open_store,
    redis_password_from_secret,
)

logger = logging.getLogger(__name__)

# Fail fast when Redis does not answer instead of hanging the job until its own timeout.
_TIMEOUTS = "socket_connect_timeout=10&socket_timeout=60"


class JobError(RuntimeError):
    """A run cannot go on; the message is the reason recorded, logged and shown."""


@contextmanager
def stage(what: str) -> Iterator[None]:
    """Turn infrastructure errors of one step into a `JobError` saying which step failed."""
    try:
        yield
    except (ClientError, BotoCoreError, redis.RedisError, OSError) as error:
        raise JobError(f"{what}: {error}") from error


@dataclass(frozen=True)
class AthenaOffline:
    region: str
    database: str
    workgroup: str
    results: str
    kind: ClassVar[str] = "athena"


@dataclass(frozen=True)
class LakeOffline:
    """`s3://<bucket>/<prefix><view>/dt=YYYY-MM-DD/*.parquet`, copied for the file store."""

    bucket: str
    prefix: str
    region: str | None = None
    kind: ClassVar[str] = "file"


@dataclass(frozen=True)
class DirOffline:
    """`<root>/<view>/dt=YYYY-MM-DD/*.parquet` (`pipelines.sample_data.write_parquet`)."""

    root: Path
    kind: ClassVar[str] = "dir"


@dataclass(frozen=True)
class RedisEndpoint:
    """ElastiCache: TLS and the AUTH token from Secrets Manager (read when the run starts)."""

    host: str
    port: int = 6379
    tls: bool = True
    secret_arn: str | None = None
    region: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self) -> str:
        password = None
        if self.secret_arn:
            password = redis_password_from_secret(self.secret_arn, region=self.region)
        auth = f":{quote(password, safe='')}@" if password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/0?{_TIMEOUTS}"


@dataclass(frozen=True)
class RedisUrl:
    """A `redis://` / `rediss://` URL given as is (local runs, tunnels)."""

    value: str = field(repr=False)

    @property
    def address(self) -> str:
        parts = urlsplit(self.value)
        return f"{parts.hostname}:{parts.port or 6379}"

    def url(self) -> str:
        return self.value


@dataclass(frozen=True)
class Target:
    """Everything a run needs to know, whichever way it was configured."""

    project: str
    redis: RedisEndpoint | RedisUrl
    offline: AthenaOffline | LakeOffline | DirOffline
    lookback: timedelta = timedelta(days=2)
    views: tuple[str, ...] = VIEWS


class Reporter(Protocol):
    """Where a run's record and metrics go (`features.job_report`); None for local runs."""

    def started(self, record: RunRecord) -> None: ...

    def finished(self, record: RunRecord) -> None: ...


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_window(start: datetime | None, end: datetime | None) -> None:
    """An explicit window must not be empty (ValueError otherwise)."""
    if start is not None and utc(start) >= utc(end or datetime.now(UTC)):
        raise ValueError(f"--start {start.isoformat()} is not before --end (or now)")


def plan_windows(
    client: redis.Redis,
    target: Target,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, ViewRun]:
    """Each view's window: [freshness end, else now - lookback; now], unless overridden."""
    plans: dict[str, ViewRun] = {}
    for name in target.views:
        previous = read_freshness(client, target.project, name)
        last_end = previous.end if previous else None
        if start is not None:
            view = ViewRun(name, utc(start), utc(end or now), "override", last_end)
        elif last_end is not None:
            view = ViewRun(name, last_end, utc(end or now), "freshness", last_end)
        else:
            view = ViewRun(name, now - target.lookback, utc(end or now), "lookback", None)
        view.freshness_end = last_end
        if view.start >= view.end:
            view.status = "UP_TO_DATE"
        plans[name] = view
    return plans


def locate_partitions(
    views: Sequence[ViewRun], target: Target, scratch: Path, s3: Any, *, copy: bool
) -> None:
    """Fill each pending view's `partitions`; copy lake partitions to `scratch` when `copy`.

    A file-based view with no partition in its window is NO_DATA: it is skipped and its
    freshness stays where it was, so the next run reads the same window again.
    """
    offline = target.offline
    for view in (v for v in views if v.status == "PENDING"):
        days = window_days(view.start, view.end)
        if isinstance(offline, AthenaOffline):
            view.partitions = days  # partition projection: Athena prunes to exactly these
            continue
        if isinstance(offline, DirOffline):
            found = [p.relative_to(offline.root / view.view).as_posix()
                     for p in (offline.root / view.view).glob("dt=*/*.parquet")
                     if p.parent.name.removeprefix("dt=") in days]  # fmt: skip
        else:
            found = partition_files(s3, offline.bucket, offline.prefix, view.view, set(days))
        view.partitions = sorted({relative.split("/", 1)[0].removeprefix("dt=")
                                  for relative in found})  # fmt: skip
        if not found:
            view.status = "NO_DATA"
        elif copy and isinstance(offline, LakeOffline):
            download_files(
                s3, offline.bucket, offline.prefix, view.view, found, scratch / "offline"
            )


def open_job_store(target: Target, redis_url: str, scratch: Path) -> Any:
    """A Feast store with the repo's definitions applied to a registry in `scratch`."""
    offline = target.offline
    config = feature_store_config(
        "local", project=target.project, registry_path=str(scratch / "registry.db"),
        redis_url=redis_url,
    )  # fmt: skip
    if isinstance(offline, AthenaOffline):
        config["offline_store"] = athena_offline_store(
            region=offline.region, database=offline.database, workgroup=offline.workgroup,
            s3_staging_location=offline.results,
        )  # fmt: skip
        sources = athena_sources(offline.database)
    elif isinstance(offline, LakeOffline):
        sources = file_sources(str(scratch / "offline"))
    else:
        sources = file_sources(str(offline.root.resolve()))
    store = open_store(config, scratch)
    store.apply(build_repo(sources).objects())
    return store


def _materialize_view(
    store: Any, client: redis.Redis, redis_url: str, view: ViewRun, progress: Progress | None
) -> None:
    view.status = "FAILED"  # until proven otherwise
    with stage(f"materializing {view.view} [{view.start.isoformat()}, {view.end.isoformat()}]"):
        result = materialize(store, view.start, view.end, redis_url=redis_url,
                             views=[view.view], progress=progress)  # fmt: skip
        counts = result.per_view[view.view]
        view.rows_read, view.rows_written = counts.rows_read, counts.rows_written
        view.rejected_rows, view.rejected_batches = counts.rejected_rows, counts.rejected_batches
        view.stale_rows, view.seconds = counts.stale_rows, counts.seconds
        fresh = read_freshness(client, store.config.project, view.view)
    view.freshness_end = fresh.end if fresh else None
    view.status = "SUCCEEDED"
    logger.info("%s: %s", view.view, view.to_dict())


def _execute(
    record: RunRecord,
    target: Target,
    *,
    start: datetime | None,
    end: datetime | None,
    dry_run: bool,
    progress: Progress | None,
    s3: Any,
) -> None:
    with stage("reading the Redis AUTH token"):
        redis_url = target.redis.url()
    client = redis.Redis.from_url(redis_url)
    with stage(f"reading the freshness records from Redis {target.redis.address}"):
        record.views = plan_windows(client, target, record.started_at, start, end)
    with tempfile.TemporaryDirectory(prefix="mlops-materialize-") as scratch:
        if isinstance(target.offline, LakeOffline) and s3 is None:
            import boto3

            s3 = boto3.client("s3", region_name=target.offline.region)
        with stage("finding the offline partitions of the windows"):
            locate_partitions(list(record.views.values()), target, Path(scratch), s3,
                              copy=not dry_run)  # fmt: skip
        if dry_run or all(v.status != "PENDING" for v in record.views.values()):
            return
        store = open_job_store(target, redis_url, Path(scratch))
        for view in record.views.values():
            if view.status == "PENDING":
                _materialize_view(store, client, redis_url, view, progress)


def run(
    target: Target,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    reporter: Reporter | None = None,
    s3: Any = None,
) -> RunRecord:
    """Run once; the returned record says SUCCEEDED, FAILED (with `error`) or DRY_RUN.

    A dry run reads the freshness records and lists partitions, and writes nothing (no copy,
    no Redis write, no run record, no metrics). `JobError` escapes only when the run record
    itself cannot be written; unexpected exceptions are recorded as FAILED, then re-raised.
    """
    check_window(start, end)
    now = datetime.now(UTC)
    record = RunRecord(new_run_id(now), target.project, target.offline.kind,
                       target.redis.address, now)  # fmt: skip
    if reporter is not None and not dry_run:
        try:
            with stage("writing the run record"):
                reporter.started(record)
        except JobError as error:  # no work without a record; still raise the failure metric
            record.finish("FAILED", str(error))
            _finished(reporter, record, quietly=True)
            raise
    try:
        _execute(record, target, start=start, end=end, dry_run=dry_run, progress=progress, s3=s3)
    except (JobError, MaterializationError) as error:
        record.finish("FAILED", str(error))
    except Exception as error:
        record.finish("FAILED", f"unexpected {type(error).__name__}: {error}")
        _finished(reporter, record, quietly=True)
        raise
    else:
        record.finish("DRY_RUN" if dry_run else "SUCCEEDED")
    if not dry_run:
        _finished(reporter, record)
    return record


def _finished(reporter: Reporter | None, record: RunRecord, *, quietly: bool = False) -> None:
    """Report the finished run; `quietly` logs a reporting failure instead of raising it (the
    run is failing already, and that error is the one to show)."""
    if reporter is None:
        return
    try:
        with stage(f"writing the {record.status} run record {record.run_id}"):
            reporter.finished(record)
    except JobError as error:
        if not quietly:
            raise
        logger.error("%s", error)
