"""The training-set step: labels from the processing input, features from the data lake via
Feast, point in time — run through `main` exactly as the processing job runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from features.training_set import SETTINGS_ENV, main
from pipelines import sample_data as sd
from tests.integration.features.conftest import (
    EXPIRED_IDS,
    FeatureEnv,
    expected_training_frame,
    sorted_training_frame,
)

pytestmark = pytest.mark.integration

REGION = "ap-northeast-2"
BUCKET = "datalake-test"
DECIDED_AT = "decided_at"  # the label table's own name for the decision time


@pytest.fixture
def lake(feature_env: FeatureEnv) -> Iterator[Any]:
    """A moto data-lake bucket holding the sample views' partitions under `offline/`."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        for view in (sd.PROFILE_VIEW, sd.TRANSACTION_VIEW):
            for path in sorted((feature_env.root / "data" / view).rglob("*.parquet")):
                relative = path.relative_to(feature_env.root / "data").as_posix()
                s3.upload_file(str(path), BUCKET, f"offline/{relative}")
        yield s3


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    settings = {
        "project": "training_set_test", "feature_service": "credit_risk_v1",
        "entity": sd.ENTITY, "label_column": sd.LABEL, "timestamp_column": DECIDED_AT,
        "offline_store": "file", "region": REGION, "data_lake_bucket": BUCKET,
    }  # fmt: skip
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(settings))
    monkeypatch.setenv("SM_OUTPUT_FAILURE", str(tmp_path / "failure"))
    return tmp_path


def _write_labels(frame: pd.DataFrame, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    frame.rename(columns={sd.TIMESTAMP: DECIDED_AT}).to_parquet(directory / "part-0.parquet")
    return directory


def _run(workdir: Path, labels: Path) -> int:
    return main(["--labels-dir", str(labels), "--output-dir", str(workdir / "out")])


def test_the_job_builds_the_point_in_time_training_set(
    feature_env: FeatureEnv, lake: Any, job: Path
) -> None:
    labels = feature_env.data.labels
    recent = labels[labels[sd.TIMESTAMP] >= labels[sd.TIMESTAMP].max() - pd.Timedelta("5D")]
    # A decision one second before midnight must not see the next day's 00:00 snapshot.
    probe = recent.iloc[[0]].copy()
    probe[sd.TIMESTAMP] = probe[sd.TIMESTAMP].dt.normalize() + pd.Timedelta("23:59:59")
    entity_df = pd.concat([recent, probe], ignore_index=True)

    assert _run(job, _write_labels(entity_df, job / "labels")) == 0

    actual = pd.read_parquet(job / "out" / "part-0.parquet")
    assert list(actual.columns[:2]) == [sd.ENTITY, sd.TIMESTAMP]
    assert actual.columns[-1] == sd.LABEL
    assert set(actual.columns) == {sd.ENTITY, sd.TIMESTAMP, sd.LABEL, *sd.FEATURES}
    expected = sorted_training_frame(expected_training_frame(feature_env, entity_df))
    outside_ttl = expected[["age", "txn_count_7d"]].isna().any(axis=1)
    assert set(expected.loc[outside_ttl, sd.ENTITY]) <= set(EXPIRED_IDS)
    pd.testing.assert_frame_equal(
        sorted_training_frame(actual),
        expected.loc[~outside_ttl].reset_index(drop=True),
        check_dtype=False,
    )
    summary = json.loads((job / "out" / "_summary.json").read_text())
    assert summary == {
        "labels": len(entity_df), "rows": len(actual), "dropped": int(outside_ttl.sum())
    }  # fmt: skip


def test_only_the_partitions_the_labels_can_reach_are_copied(
    feature_env: FeatureEnv, lake: Any, tmp_path: Path
) -> None:
    from features.repo import TTLS
    from features.training_set import copy_partitions, read_settings

    settings = read_settings(
        {
            SETTINGS_ENV: json.dumps(
                {
                    "project": "p",
                    "feature_service": "credit_risk_v1",
                    "entity": sd.ENTITY,
                    "label_column": sd.LABEL,
                    "timestamp_column": DECIDED_AT,
                    "offline_store": "file",
                    "region": REGION,
                    "data_lake_bucket": BUCKET,
                }
            )
        }  # fmt: skip
    )
    last = pd.Timestamp(feature_env.end).floor("D") + pd.Timedelta("12h")
    copied = copy_partitions(settings, dict(TTLS), last, last, tmp_path, lake)
    # From the decision's day minus the TTL to the decision's day, both included.
    assert copied == {view: ttl.days + 1 for view, ttl in TTLS.items()}


def test_malformed_label_timestamps_fail_the_job_and_write_nothing(
    feature_env: FeatureEnv, lake: Any, job: Path
) -> None:
    labels = feature_env.data.labels.head(50).copy()
    labels[sd.TIMESTAMP] = labels[sd.TIMESTAMP].astype(str)
    labels.loc[labels.index[:3], sd.TIMESTAMP] = ["yesterday", "", "2026-13-45T00:00:00"]

    assert _run(job, _write_labels(labels, job / "labels")) == 1

    reason = (job / "failure").read_text()
    assert "3 of 50 label rows have a missing or malformed decided_at" in reason
    assert not (job / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"feature_service": "credit_risk_v9"}, "unknown feature service 'credit_risk_v9'; "
                                                "known: credit_risk_v1"),
        ({"label_column": "churned"}, "the label table lacks churned"),
        ({"data_lake_bucket": "empty-lake"}, "no customer_profile partitions in s3://empty-lake"),
    ],
)  # fmt: skip
def test_data_problems_are_reported_by_name(
    feature_env: FeatureEnv, lake: Any, job: Path, monkeypatch: pytest.MonkeyPatch,
    change: dict[str, str], message: str,
) -> None:  # fmt: skip
    lake.create_bucket(
        Bucket="empty-lake", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    import os

    settings = json.loads(os.environ[SETTINGS_ENV]) | change
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(settings))

    assert _run(job, _write_labels(feature_env.data.labels.head(20), job / "labels")) == 1
    assert message in (job / "failure").read_text()


def test_bad_settings_exit_2_naming_each_problem(
    job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        SETTINGS_ENV, json.dumps({"project": "p", "offline_store": "hive", "colour": "red"})
    )
    assert _run(job, job / "labels") == 2
    reason = (job / "failure").read_text()
    for fragment in ("offline_store", "feature_service: Field required", "colour"):
        assert fragment in reason
    monkeypatch.setenv(
        SETTINGS_ENV,
        json.dumps(
            {
                "project": "p",
                "feature_service": "s",
                "entity": "e",
                "label_column": "l",
                "timestamp_column": "t",
                "offline_store": "athena",
                "region": REGION,
                "data_lake_bucket": BUCKET,
            }
        ),  # fmt: skip
    )
    assert _run(job, job / "labels") == 2
    assert "needs database, workgroup, athena_results" in (job / "failure").read_text()
