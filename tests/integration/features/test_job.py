"""The scheduled materialization job, run through `main` as the processing job runs it: moto S3
(data lake, run records) and CloudWatch, a real Redis, real Feast."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pandas as pd
import pytest
import redis
from moto import mock_aws

from features.job import load_settings, main
from features.job_report import AwsReporter, RunRecords
from features.job_run import AthenaOffline, RedisUrl, Target, open_job_store, run
from features.local_redis import free_port
from features.materialize import freshness_key, read_freshness
from features.online import OnlineFeatureReader
from features.repo import SERVICE_NAME, file_sources
from features.store import feature_store_config, open_store
from pipelines import sample_data as sd
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

REGION = "ap-northeast-2"
BUCKET = "lake-job-test"
RUNS = "materialization/runs/"
CUSTOMERS = 40
VIEWS = (sd.PROFILE_VIEW, sd.TRANSACTION_VIEW)
NAMES = {sd.PROFILE_VIEW: sd.PROFILE_FEATURES, sd.TRANSACTION_VIEW: sd.TRANSACTION_FEATURES}


@dataclass(frozen=True)
class Lake:
    """Sample partitions from today - 5 to tomorrow; tomorrow's is uploaded only on demand."""

    root: Path
    data: sd.SampleData
    today: date

    @property
    def tomorrow(self) -> str:
        return (self.today + timedelta(days=1)).isoformat()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    root = tmp_path_factory.mktemp("lake")
    today = datetime.now(UTC).date()
    data = sd.generate(CUSTOMERS, today - timedelta(days=5), 7, seed=5)
    sd.write_parquet(data, root)
    return Lake(root, data, today)


@dataclass
class JobEnv:
    lake: Lake
    s3: Any
    cloudwatch: Any
    redis_url: str
    project: str
    workdir: Path

    def upload(self, *, through: str) -> None:
        """Upload every partition up to day `through` (ISO date) under `offline/`."""
        for view in VIEWS:
            for path in sorted((self.lake.root / view).glob("dt=*/*.parquet")):
                if path.parent.name.removeprefix("dt=") <= through:
                    key = f"offline/{path.relative_to(self.lake.root).as_posix()}"
                    self.s3.upload_file(str(path), BUCKET, key)

    def records(self) -> list[dict[str, Any]]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=RUNS).get("Contents", [])
        keys = sorted(item["Key"] for item in listed)
        return [json.loads(self.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]

    def freshness_end(self, view: str) -> datetime | None:
        fresh = read_freshness(redis.Redis.from_url(self.redis_url), self.project, view)
        return fresh.end if fresh else None

    def online(self) -> list[dict[str, Any]]:
        config = feature_store_config("local", project=self.project, redis_url=self.redis_url,
                                      registry_path=str(self.workdir / "reader.db"))  # fmt: skip
        store = open_store(config, self.workdir)
        store.apply(_repo_objects(file_sources(str(self.lake.root))))
        ids = list(range(1_000_001, 1_000_001 + CUSTOMERS))
        return OnlineFeatureReader(store, self.redis_url, enforce_ttl=False).get(SERVICE_NAME, ids)


def _repo_objects(sources: Any) -> list[Any]:
    from features.repo import build_repo

    return build_repo(sources).objects()


@pytest.fixture
def job(
    lake: Lake, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[JobEnv]:
    """The job's environment: moto S3 + CloudWatch, the package's Redis, its own project."""
    for name in [n for n in os.environ if n.startswith("MLOPS_")]:
        monkeypatch.delenv(name)
    address = urlsplit(redis_url)
    project = f"job_{uuid.uuid4().hex[:10]}"
    for name, value in {
        "MLOPS_PROJECT": project, "MLOPS_OFFLINE_STORE": "file", "MLOPS_DATA_LAKE_BUCKET": BUCKET,
        "AWS_REGION": REGION, "MLOPS_REDIS_HOST": str(address.hostname),
        "MLOPS_REDIS_PORT": str(address.port or 6379), "MLOPS_REDIS_TLS": "false",
        "MLOPS_RUNS_URI": f"s3://{BUCKET}/{RUNS}", "SM_OUTPUT_FAILURE": str(tmp_path / "failure"),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        env = JobEnv(lake, s3, boto3.client("cloudwatch", region_name=REGION), redis_url, project,
                     tmp_path)  # fmt: skip
        env.upload(through=lake.today.isoformat())
        yield env


def _latest(lake: Lake, start: datetime, end: datetime) -> dict[int, dict[str, Any]]:
    """Per customer, the latest offline values with an event time in [start, end] (pandas)."""
    latest: dict[int, dict[str, Any]] = {}
    for view, frame in ((sd.PROFILE_VIEW, lake.data.profiles),
                        (sd.TRANSACTION_VIEW, lake.data.transactions)):  # fmt: skip
        window = frame[(frame[sd.TIMESTAMP] >= start) & (frame[sd.TIMESTAMP] <= end)]
        rows = window.sort_values(sd.TIMESTAMP).groupby(sd.ENTITY).tail(1)
        for record in rows[[sd.ENTITY, *NAMES[view]]].to_dict("records"):
            latest.setdefault(int(record.pop(sd.ENTITY)), {}).update(record)
    return latest


def _assert_online_equals(
    online: list[dict[str, Any]], expected: dict[int, dict[str, Any]]
) -> None:
    assert len(expected) == CUSTOMERS
    for row in online:
        for name, value in expected[row[sd.ENTITY]].items():
            if isinstance(value, float) and math.isnan(value):
                assert row[name] is None, (row[sd.ENTITY], name)
            else:
                assert row[name] == value, (row[sd.ENTITY], name, row[name], value)


def _rows_in(frame: pd.DataFrame, start: str, end: str) -> int:
    times = frame[sd.TIMESTAMP]
    return int(((times >= pd.Timestamp(start)) & (times <= pd.Timestamp(end))).sum())


def test_first_run_materializes_the_lookback_window(job: JobEnv) -> None:
    assert main([]) == 0

    [record] = job.records()
    assert record["status"] == "SUCCEEDED" and record["error"] is None
    assert record["project"] == job.project and record["offline_store"] == "file"
    started = datetime.fromisoformat(record["started_at"])
    assert started <= datetime.fromisoformat(record["finished_at"])
    days = [(started - timedelta(days=n)).date().isoformat() for n in (2, 1, 0)]
    for view, frame in ((sd.PROFILE_VIEW, job.lake.data.profiles),
                        (sd.TRANSACTION_VIEW, job.lake.data.transactions)):  # fmt: skip
        window = record["views"][view]
        assert window["status"] == "SUCCEEDED" and window["start_from"] == "lookback"
        assert datetime.fromisoformat(window["start"]) == started - timedelta(days=2)
        assert datetime.fromisoformat(window["end"]) == started
        assert window["partitions"] == days
        assert window["rows_read"] == _rows_in(frame, window["start"], window["end"])
        assert window["rows_written"] == CUSTOMERS and window["rejected_rows"] == 0
        assert job.freshness_end(view) == started
    assert record["rows_written"] == 2 * CUSTOMERS
    expected = _latest(job.lake, started - timedelta(days=2), started)
    _assert_online_equals(job.online(), expected)


def _next_day_run(job: JobEnv) -> tuple[dict[str, datetime | None], dict[str, Any], datetime]:
    """A run, tomorrow's batch landing, and the run just after midnight (the end is given:
    the clock cannot be moved). Returns the first ends, the second record and its end."""
    assert main([]) == 0
    first_end = {view: job.freshness_end(view) for view in VIEWS}
    job.upload(through=job.lake.tomorrow)
    end = datetime.fromisoformat(f"{job.lake.tomorrow}T00:30:00+00:00")
    assert main(["--end", end.isoformat()]) == 0
    return first_end, job.records()[1], end


def test_second_run_resumes_from_freshness_and_reads_only_newer_rows(job: JobEnv) -> None:
    first_end, second, end = _next_day_run(job)

    assert second["status"] == "SUCCEEDED"
    for view in VIEWS:
        window = second["views"][view]
        assert window["start_from"] == "freshness"
        assert datetime.fromisoformat(window["start"]) == first_end[view]
        assert window["partitions"] == [job.lake.today.isoformat(), job.lake.tomorrow]
        assert window["rows_read"] == CUSTOMERS  # today's rows lie before the window
        assert job.freshness_end(view) == end

    assert main([]) == 0  # now is before the stored end: nothing to do, nothing moves back
    third = job.records()[2]
    assert third["status"] == "SUCCEEDED" and third["rows_read"] == 0
    assert {v["status"] for v in third["views"].values()} == {"UP_TO_DATE"}
    assert job.freshness_end(sd.PROFILE_VIEW) == end


def test_second_run_replaces_older_online_values(job: JobEnv) -> None:
    _, second, end = _next_day_run(job)

    assert [second["views"][view]["rows_written"] for view in VIEWS] == [CUSTOMERS, CUSTOMERS]
    _assert_online_equals(job.online(), _latest(job.lake, end - timedelta(days=1), end))


class _RecordingS3:
    """The real (moto) client, noting which objects were downloaded."""

    def __init__(self, client: Any) -> None:
        self._client, self.downloaded = client, []

    def download_file(self, bucket: str, key: str, path: str) -> None:
        self.downloaded.append(key)
        self._client.download_file(bucket, key, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_only_the_windows_partitions_are_copied_from_the_lake(job: JobEnv) -> None:
    s3 = _RecordingS3(job.s3)
    start = datetime.combine(job.lake.today - timedelta(days=1), datetime.min.time(), UTC)

    record = run(load_settings().target(), start=start, s3=s3)

    assert record.status == "SUCCEEDED"
    days = [(job.lake.today - timedelta(days=1)).isoformat(), job.lake.today.isoformat()]
    assert sorted(s3.downloaded) == sorted(
        f"offline/{view}/dt={day}/part-0.parquet" for view in VIEWS for day in days
    )
    assert record.views[sd.PROFILE_VIEW].rows_read == 2 * CUSTOMERS
    assert job.records() == []  # no reporter given: nothing recorded


def _metric(job: JobEnv, name: str, stat: str = "Sum", **dims: str) -> list[float]:
    dimensions = [{"Name": k, "Value": v} for k, v in {"Project": job.project, **dims}.items()]
    now = datetime.now(UTC)
    result = job.cloudwatch.get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {
            "Namespace": "MLOps/FeatureStore", "MetricName": name, "Dimensions": dimensions},
            "Period": 60, "Stat": stat}}],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5),
    )  # fmt: skip
    return [float(v) for v in result["MetricDataResults"][0]["Values"]]


def test_metrics_are_published_per_view(job: JobEnv) -> None:
    assert main([]) == 0
    record = job.records()[0]

    for view in VIEWS:
        assert _metric(job, "RowsWritten", View=view) == [CUSTOMERS]
        assert _metric(job, "RejectedRows", View=view) == [0]
        [lag] = _metric(job, "FreshnessLagSeconds", View=view)
        took = datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(
            record["started_at"]
        )
        assert 0 <= lag <= took.total_seconds() + 5
    assert _metric(job, "MaterializationFailed") == [0]
    listed = job.cloudwatch.list_metrics(Namespace="MLOps/FeatureStore")["Metrics"]
    names = {m["MetricName"] for m in listed}
    assert names == {"RowsWritten", "RejectedRows", "FreshnessLagSeconds", "MaterializationFailed"}


def test_unreachable_redis_fails_the_run_and_a_rerun_resumes(
    job: JobEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 0
    before = {view: job.freshness_end(view) for view in VIEWS}
    monkeypatch.setenv("MLOPS_REDIS_PORT", str(free_port()))

    assert main([]) == 1

    failed = job.records()[1]
    assert failed["status"] == "FAILED"
    assert "reading the freshness records from Redis 127.0.0.1" in failed["error"]
    assert "Connection refused" in failed["error"]
    failure = (job.workdir / "failure").read_text()
    assert failed["run_id"] in failure and failed["error"] in failure
    assert failed["error"] in capsys.readouterr().err
    assert max(_metric(job, "MaterializationFailed", "Maximum")) == 1
    assert {view: job.freshness_end(view) for view in VIEWS} == before

    monkeypatch.setenv("MLOPS_REDIS_PORT", str(urlsplit(job.redis_url).port or 6379))
    job.upload(through=job.lake.tomorrow)
    assert main(["--end", f"{job.lake.tomorrow}T00:30:00Z"]) == 0
    rerun = job.records()[2]
    assert rerun["status"] == "SUCCEEDED"
    for view in VIEWS:
        assert datetime.fromisoformat(rerun["views"][view]["start"]) == before[view]
        assert rerun["views"][view]["rows_read"] == CUSTOMERS


def test_redis_failing_mid_run_keeps_that_views_freshness(job: JobEnv) -> None:
    reporter = AwsReporter(RunRecords(f"s3://{BUCKET}/{RUNS}", job.s3), job.cloudwatch)

    def connection_drops(view: str, entities: int) -> None:
        if view == sd.TRANSACTION_VIEW:
            raise redis.ConnectionError(f"connection reset after {entities} entities")

    record = run(load_settings().target(), reporter=reporter, progress=connection_drops)

    assert record.status == "FAILED"
    assert "'customer_transactions'" in str(record.error)
    assert "freshness record was not advanced" in str(record.error)
    stored = job.records()[0]
    assert stored["status"] == "FAILED" and stored["error"] == record.error
    assert stored["views"][sd.PROFILE_VIEW]["status"] == "SUCCEEDED"
    assert stored["views"][sd.TRANSACTION_VIEW]["status"] == "FAILED"
    assert job.freshness_end(sd.PROFILE_VIEW) == record.started_at
    assert job.freshness_end(sd.TRANSACTION_VIEW) is None
    assert _metric(job, "MaterializationFailed") == [1]
    assert _metric(job, "RowsWritten", View=sd.PROFILE_VIEW) == [CUSTOMERS]

    assert main([]) == 0
    rerun = job.records()[1]["views"]
    assert rerun[sd.PROFILE_VIEW]["start_from"] == "freshness"
    assert rerun[sd.PROFILE_VIEW]["rows_written"] == 0  # nothing newer than what it wrote
    # The batch written before the connection dropped is there; rewriting it changes nothing.
    assert rerun[sd.TRANSACTION_VIEW]["start_from"] == "lookback"
    assert (
        rerun[sd.TRANSACTION_VIEW]["rows_written"] + rerun[sd.TRANSACTION_VIEW]["stale_rows"]
        == CUSTOMERS
    )
    assert job.freshness_end(sd.TRANSACTION_VIEW) is not None


def test_bad_settings_exit_2_naming_every_variable(
    job: JobEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLOPS_PROJECT")
    for name, value in {"MLOPS_OFFLINE_STORE": "athena", "MLOPS_REDIS_PORT": "six",
                        "MLOPS_LOOKBACK_DAYS": "0", "MLOPS_VIEWS": "customer_profile,nope",
                        "MLOPS_REDIS_TLS": "maybe", "MLOPS_RUNS_URI": "runs/"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    assert main([]) == 2

    err = capsys.readouterr().err
    failure = (job.workdir / "failure").read_text()
    for variable in ("MLOPS_PROJECT", "MLOPS_REDIS_PORT", "MLOPS_LOOKBACK_DAYS", "MLOPS_VIEWS",
                     "MLOPS_REDIS_TLS", "MLOPS_RUNS_URI", "MLOPS_GLUE_DATABASE",
                     "MLOPS_ATHENA_WORKGROUP", "MLOPS_ATHENA_RESULTS"):  # fmt: skip
        assert variable in err and variable in failure, variable
    assert "valid: customer_profile, customer_transactions" in err
    assert job.records() == []
    assert main(["--start", "yesterday"]) == 2
    assert "not an ISO-8601 date or time: 'yesterday'" in capsys.readouterr().err


def test_dry_run_reads_freshness_and_writes_nothing(
    job: JobEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="materialization")

    assert main(["--dry-run", "--view", sd.TRANSACTION_VIEW, "--lookback-days", "3"]) == 0

    out = caplog.text
    assert f"{sd.TRANSACTION_VIEW} PENDING" in out and "from lookback: partitions=4" in out
    assert sd.PROFILE_VIEW not in out
    assert job.records() == []
    assert job.cloudwatch.list_metrics(Namespace="MLOps/FeatureStore")["Metrics"] == []
    client = redis.Redis.from_url(job.redis_url)
    assert not any(client.exists(freshness_key(job.project, view)) for view in VIEWS)


def test_athena_settings_open_an_athena_store_and_plan_by_partition_day(
    job: JobEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = "s3://results/materialization/"
    for name, value in {"MLOPS_OFFLINE_STORE": "athena", "MLOPS_GLUE_DATABASE": "features_db",
                        "MLOPS_ATHENA_WORKGROUP": "features",
                        "MLOPS_ATHENA_RESULTS": results}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    target = load_settings().target()
    assert target.offline == AthenaOffline(REGION, "features_db", "features", results)

    store = open_job_store(target, job.redis_url, job.workdir)
    assert store.config.offline_store.type == "athena"
    assert store.config.offline_store.workgroup == "features"
    source = store.get_feature_view(sd.PROFILE_VIEW).batch_source
    assert (source.database, source.table, source.date_partition_column) == (
        "features_db", sd.PROFILE_VIEW, "dt",
    )  # fmt: skip

    local = Target(job.project, RedisUrl(job.redis_url), target.offline)
    start = datetime(2026, 1, 30, 12, tzinfo=UTC)
    plan = run(local, start=start, end=start + timedelta(days=2), dry_run=True)
    assert plan.status == "DRY_RUN"
    assert plan.views[sd.PROFILE_VIEW].partitions == ["2026-01-30", "2026-01-31", "2026-02-01"]


def test_the_entry_script_runs_through_the_platform_launcher(tmp_path: Path) -> None:
    """The launcher runs a file of its code directory; the code directory holds `features/`
    (and `pipelines/sample_data.py`, whose names the feature repo uses)."""
    code = tmp_path / "code"
    shutil.copytree(REPO_ROOT / "features", code / "features",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (code / "pipelines").mkdir()
    for name in ("__init__.py", "sample_data.py"):
        shutil.copy(REPO_ROOT / "pipelines" / name, code / "pipelines" / name)
    shutil.copy(REPO_ROOT / "pipelines" / "container" / "launch.py", code / "_mlops_launch.py")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AWS_"))}
    environ |= {"SM_OUTPUT_FAILURE": str(tmp_path / "failure"), "MLOPS_OFFLINE_STORE": "file"}

    done = subprocess.run(
        [sys.executable, str(code / "_mlops_launch.py"), "features/materialize_entry.py"],
        cwd=tmp_path,
        env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 2, done.stderr
    failure = (tmp_path / "failure").read_text()
    for variable in ("MLOPS_PROJECT", "AWS_REGION", "MLOPS_REDIS_HOST", "MLOPS_RUNS_URI",
                     "MLOPS_DATA_LAKE_BUCKET"):  # fmt: skip
        assert variable in failure and variable in done.stderr


def test_no_work_starts_when_the_run_record_cannot_be_written(
    job: JobEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_RUNS_URI", "s3://no-such-bucket/runs/")

    assert main([]) == 1

    failure = (job.workdir / "failure").read_text()
    assert "writing the run record" in failure and "NoSuchBucket" in failure
    assert all(job.freshness_end(view) is None for view in VIEWS)
    assert _metric(job, "MaterializationFailed", "Maximum") == [1]
