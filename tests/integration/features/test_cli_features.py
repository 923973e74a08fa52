"""`mlops features materialize|freshness` on a local directory of partitions and a real Redis."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
import redis
from moto import mock_aws
from typer.testing import CliRunner

from features.local_redis import free_port
from features.materialize import freshness_key, read_freshness
from mlops.cli import app
from pipelines import sample_data as sd

pytestmark = pytest.mark.integration
runner = CliRunner(env={"COLUMNS": "220"})
CUSTOMERS = 30


@pytest.fixture(scope="module")
def offline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offline")
    today = datetime.now(UTC).date()
    sd.write_parquet(sd.generate(CUSTOMERS, today - timedelta(days=4), 5, seed=9), root)
    return root


@pytest.fixture
def project() -> str:
    return f"cli_{uuid.uuid4().hex[:10]}"


def _materialize(redis_url: str, offline_dir: Path, project: str, *extra: str) -> list[str]:
    return ["features", "materialize", "--redis-url", redis_url, "--offline-dir",
            str(offline_dir), "--project", project, *extra]  # fmt: skip


def test_materialize_runs_the_job_locally_and_prints_a_summary(
    redis_url: str, offline_dir: Path, project: str
) -> None:
    result = runner.invoke(app, _materialize(redis_url, offline_dir, project))

    assert result.exit_code == 0, result.output
    client = redis.Redis.from_url(redis_url)
    for view in (sd.PROFILE_VIEW, sd.TRANSACTION_VIEW):
        fresh = read_freshness(client, project, view)
        assert fresh is not None and fresh.rows == CUSTOMERS
        summary = next(line for line in result.output.splitlines() if line.startswith(f"│ {view}"))
        assert "SUCCEEDED" in summary and "lookback" in summary
        assert f"│ {CUSTOMERS} " in summary  # written
    assert "SUCCEEDED in" in result.output

    again = runner.invoke(app, _materialize(redis_url, offline_dir, project))
    assert again.exit_code == 0, again.output
    assert again.output.count("freshness") == 2  # both windows resume from the stored end


def test_dry_run_prints_windows_and_partitions_and_writes_nothing(
    redis_url: str, offline_dir: Path, project: str
) -> None:
    start = datetime.now(UTC).date() - timedelta(days=2)
    result = runner.invoke(
        app,
        _materialize(redis_url, offline_dir, project, "--dry-run", "--start", start.isoformat(),
                     "--view", sd.TRANSACTION_VIEW),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    days = [(start + timedelta(days=n)).isoformat() for n in range(3)]
    line = next(line for line in result.output.splitlines() if sd.TRANSACTION_VIEW in line)
    assert "override" in line and ", ".join(days) in line
    assert sd.PROFILE_VIEW not in result.output
    assert "DRY_RUN" in result.output
    client = redis.Redis.from_url(redis_url)
    assert not client.exists(freshness_key(project, sd.TRANSACTION_VIEW))


def test_freshness_shows_each_view_and_its_age(
    redis_url: str, offline_dir: Path, project: str
) -> None:
    before = runner.invoke(app, ["features", "freshness", "--redis-url", redis_url,
                                 "--project", project])  # fmt: skip
    assert before.exit_code == 0, before.output
    assert before.output.count("never materialized") == 2

    end = datetime.now(UTC) - timedelta(hours=3)
    assert runner.invoke(app, _materialize(redis_url, offline_dir, project, "--end",
                                           end.isoformat())).exit_code == 0  # fmt: skip
    after = runner.invoke(app, ["features", "freshness", "--redis-url", redis_url,
                                "--project", project])  # fmt: skip

    assert after.exit_code == 0, after.output
    for view, ttl in ((sd.PROFILE_VIEW, "7d 00h"), (sd.TRANSACTION_VIEW, "2d 00h")):
        line = next(line for line in after.output.splitlines() if line.startswith(f"│ {view}"))
        assert end.strftime("%Y-%m-%d %H:%M") in line and "3h 00m" in line and ttl in line


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--offline-dir", "{dir}"], 2, "a local run needs both --redis-url and --offline-dir"),
        (["--redis-url", "{url}", "--offline-dir", "/nonexistent"], 2, "is not a directory"),
        (["--redis-url", "http://x", "--offline-dir", "{dir}"], 2, "must start with redis://"),
        (["--redis-url", "{url}", "--offline-dir", "{dir}", "--start", "soon"], 2,
         "not an ISO-8601 date or time: 'soon'"),
        (["--redis-url", "{url}", "--offline-dir", "{dir}", "--view", "nope"], 2,
         "unknown feature views ['nope']"),
        (["--redis-url", "{url}", "--offline-dir", "{dir}", "--start", "2999-01-01"], 2,
         "is not before --end"),
        (["--redis-url", "{down}", "--offline-dir", "{dir}"], 1,
         "reading the freshness records from Redis 127.0.0.1"),
        (["--env", "staging"], 2, "unknown environment 'staging'"),
        (["--redis-url", "{url}", "--offline-dir", "{dir}", "--runs-uri", "s3://b/r/"], 2,
         "need --env"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(
    redis_url: str, offline_dir: Path, args: list[str], code: int, message: str
) -> None:
    values = {"dir": str(offline_dir), "url": redis_url,
              "down": f"redis://127.0.0.1:{free_port()}/0"}  # fmt: skip
    result = runner.invoke(app, ["features", "materialize", *(a.format(**values) for a in args)])

    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1


def _feature_store_stack(region: str, outputs: dict[str, str]) -> None:
    """A deployed feature-store stack as far as the CLI can tell: its outputs."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=region).create_stack(
        StackName="mlops-local-feature-store", TemplateBody=json.dumps(template)
    )


def test_env_reads_the_stack_outputs_and_records_the_run_where_the_schedule_does(
    redis_url: str, offline_dir: Path, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--env local`: the local engine's shape (file offline store over the data-lake bucket,
    a plain Redis standing in for ElastiCache)."""
    region, bucket = "ap-northeast-2", "lake-cli-test"
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    address = urlsplit(redis_url)
    with mock_aws():
        s3 = boto3.client("s3", region_name=region)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        for path in sorted(offline_dir.rglob("*.parquet")):
            s3.upload_file(str(path), bucket, f"offline/{path.relative_to(offline_dir).as_posix()}")
        _feature_store_stack(region, {
            "DataLakeBucketName": bucket, "RedisEndpointAddress": str(address.hostname),
            "RedisEndpointPort": str(address.port or 6379),
            "RedisAuthSecretArn": f"arn:aws:secretsmanager:{region}:123456789012:secret:auth",
            "MaterializationRunsUri": f"s3://{bucket}/runs/",
        })  # fmt: skip

        result = runner.invoke(app, ["features", "materialize", "--env", "local", "--project",
                                     project, "--publish-metrics"])  # fmt: skip
        fresh = runner.invoke(app, ["features", "freshness", "--env", "local", "--project",
                                    project])  # fmt: skip

        assert result.exit_code == 0, result.output
        [listed] = s3.list_objects_v2(Bucket=bucket, Prefix="runs/")["Contents"]
        record = json.loads(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
        assert record["status"] == "SUCCEEDED" and record["offline_store"] == "file"
        assert record["rows_written"] == 2 * CUSTOMERS
        assert record["run_id"] in result.output
        metrics = boto3.client("cloudwatch", region_name=region).list_metrics(
            Namespace="MLOps/FeatureStore", MetricName="RowsWritten"
        )["Metrics"]
        assert len(metrics) == 2
    assert fresh.exit_code == 0, fresh.output
    assert "never materialized" not in fresh.output and f"project {project}" in fresh.output
