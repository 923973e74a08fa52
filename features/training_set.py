"""Point-in-time training sets from a feature service: the platform step before preprocessing.

A bundle whose manifest says `input: {feature_service, entity, label}` does not read a prepared
dataset: the workflow first runs this module as a SageMaker Processing job (through the
platform launcher, with Feast installed from `features/requirements.txt`). It reads the label
table (entity id, decision time, label) from its processing input, asks Feast for every feature
of the service *as of each decision time* (`get_historical_features`: for each view, the latest
row at or before the label's timestamp and within the view's TTL, so a later value never leaks
into an earlier label), and writes one Parquet file that the bundle's preprocessing reads as its
input. Columns: the entity, `event_timestamp` (the label's timestamp), the service's features
(plain names) and the label column.

The definitions are code (`features.repo`), applied to a throwaway registry in the job's
scratch directory, so a run always uses the definitions staged with it. The offline store is
Athena over the Glue tables on AWS; the local engine, which has no Athena, uses Feast's file
offline store over the same `dt=YYYY-MM-DD` Parquet partitions, copied from the data-lake
bucket (only the days the labels can reach: from the earliest label minus the view's TTL to the
latest label).

Settings come as one JSON object in `MLOPS_FEATURE_STORE` (built by the training trigger from
the feature-store stack's outputs). Exit codes: 0 written, 1 data problem (reason in the
failure file, which SageMaker shows as the job's FailureReason), 2 bad settings or arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger("training-set")

SETTINGS_ENV = "MLOPS_FEATURE_STORE"
TIMESTAMP = "event_timestamp"  # what Feast calls the entity dataframe's time column
UNUSED_REDIS = "redis://127.0.0.1:6379/0"  # historical retrieval never contacts the online store
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class TrainingSetSettings(BaseModel):
    """Where the features and labels are and what to join; see docs/feature-store.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    feature_service: str = Field(pattern=_IDENTIFIER)
    entity: str = Field(pattern=_IDENTIFIER)
    label_column: str = Field(pattern=_IDENTIFIER)
    timestamp_column: str = Field(pattern=_IDENTIFIER)
    offline_store: Literal["athena", "file"]
    region: str = Field(min_length=1)
    data_lake_bucket: str = Field(min_length=3)
    offline_prefix: str = "offline/"
    database: str | None = None
    workgroup: str | None = None
    athena_results: str | None = Field(default=None, pattern=r"^s3://")

    def athena_missing(self) -> list[str]:
        names = ("database", "workgroup", "athena_results")
        return [name for name in names if getattr(self, name) is None]


class DataError(Exception):
    """The labels or features cannot make a trustworthy training set; shown to the modeler."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise SystemExit(_usage(f"training set: {message}"))


def _usage(message: str) -> int:
    _write_failure(message)
    return 2


def _failure_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_FAILURE", "/opt/ml/output/failure"))


def _write_failure(reason: str) -> None:
    logger.error("%s", reason)
    try:
        path = _failure_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:1024], encoding="utf-8")
    except OSError as error:
        logger.error("could not write the failure reason: %s", error)


def read_settings(environ: dict[str, str] | os._Environ[str] = os.environ) -> TrainingSetSettings:
    """The settings in `MLOPS_FEATURE_STORE`; ValueError names every problem."""
    raw = environ.get(SETTINGS_ENV)
    if not raw:
        raise ValueError(f"{SETTINGS_ENV} is not set")
    try:
        settings = TrainingSetSettings.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(f"{SETTINGS_ENV}: {problems}") from None
    if settings.offline_store == "athena" and (missing := settings.athena_missing()):
        raise ValueError(f"{SETTINGS_ENV}: the athena offline store needs {', '.join(missing)}")
    return settings


def read_labels(labels_dir: Path, settings: TrainingSetSettings) -> pd.DataFrame:
    """The entity dataframe: entity, `event_timestamp` (UTC) and the label, one row per label.

    Rows with a missing or unparseable timestamp or entity are an error (their count is
    reported): dropping them silently would change the training data without anyone knowing.
    """
    files = sorted(labels_dir.rglob("*.parquet"))
    if not files:
        raise DataError(f"no Parquet files under {labels_dir} (the label table is empty)")
    frame = pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)
    wanted = [settings.entity, settings.timestamp_column, settings.label_column]
    if missing := [name for name in wanted if name not in frame.columns]:
        raise DataError(
            f"the label table lacks {', '.join(missing)} (it has {', '.join(map(str, frame))})"
        )
    timestamps = pd.to_datetime(
        frame[settings.timestamp_column], utc=True, errors="coerce", format="ISO8601"
    )
    entities = pd.to_numeric(frame[settings.entity], errors="coerce")
    bad = int((timestamps.isna() | entities.isna()).sum())
    if bad:
        raise DataError(
            f"{bad} of {len(frame)} label rows have a missing or malformed "
            f"{settings.timestamp_column} or {settings.entity}; nothing was written"
        )
    return pd.DataFrame(
        {
            settings.entity: entities.astype("int64"),
            TIMESTAMP: timestamps.dt.as_unit("us"),
            settings.label_column: frame[settings.label_column],
        }
    )


def copy_partitions(
    settings: TrainingSetSettings,
    ttls: dict[str, timedelta],
    first: pd.Timestamp,
    last: pd.Timestamp,
    target: Path,
    s3: Any = None,
) -> dict[str, int]:
    """Copy each view's `dt=` partitions the labels can reach from S3 to `target/<view>/`."""
    import boto3

    from features.lake import download_files, partition_files, window_days

    s3 = s3 or boto3.client("s3", region_name=settings.region)
    bucket, prefix = settings.data_lake_bucket, settings.offline_prefix
    copied: dict[str, int] = {}
    for view, ttl in ttls.items():
        days = window_days(first - ttl, last)
        files = partition_files(s3, bucket, prefix, view, set(days))
        if not files:
            raise DataError(
                f"no {view} partitions in s3://{bucket}/{prefix}{view}/ between "
                f"{days[0]} and {days[-1]}: load the feature data before training"
            )
        download_files(s3, bucket, prefix, view, files, target)
        copied[view] = len(files)
    return copied


def compact(source: Path, target: Path, views: list[str]) -> None:
    """One Parquet file per view from its `dt=` partition files (same rows, same schema).

    Feast's file offline store hands each file to Dask as its own partition; its point-in-time
    join over 90 daily files per view took 38 s for 13,503 labels where one file per view takes
    1.9 s (3,000 customers, 2 cores), with identical results.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    for view in views:
        files = sorted((source / view).rglob("*.parquet"))
        table = pa.concat_tables([pq.read_table(path) for path in files])
        (target / view).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target / view / "part-0.parquet")


def build_training_set(
    labels: pd.DataFrame, settings: TrainingSetSettings, workdir: Path, s3: Any = None
) -> pd.DataFrame:
    """Labels joined point-in-time to the service's features (Feast historical retrieval)."""
    from features.repo import TTLS, athena_sources, build_repo, file_sources
    from features.store import feature_store_config, open_store

    config = feature_store_config(
        "local", project=settings.project, registry_path=str(workdir / "registry.db"),
        redis_url=UNUSED_REDIS,
    )  # fmt: skip
    if settings.offline_store == "athena":
        config["offline_store"] = {
            "type": "athena", "region": settings.region, "database": settings.database,
            "workgroup": settings.workgroup, "data_source": "AwsDataCatalog",
            "s3_staging_location": settings.athena_results,
        }  # fmt: skip
        sources = athena_sources(str(settings.database))
    else:
        first, last = labels[TIMESTAMP].min(), labels[TIMESTAMP].max()
        copied = copy_partitions(settings, dict(TTLS), first, last, workdir / "offline", s3)
        logger.info("copied partitions from the data lake: %s", copied)
        compact(workdir / "offline", workdir / "compact", list(TTLS))
        sources = file_sources(str(workdir / "compact"))
    store = open_store(config, workdir)
    store.apply(build_repo(sources).objects())
    services = sorted(service.name for service in store.list_feature_services())
    if settings.feature_service not in services:
        raise DataError(
            f"unknown feature service {settings.feature_service!r}; "
            f"known: {', '.join(services) or 'none'}"
        )
    service = store.get_feature_service(settings.feature_service)
    frame = store.get_historical_features(entity_df=labels, features=service).to_df()
    if settings.label_column not in frame.columns:  # a feature named like the label
        raise DataError(f"the label column {settings.label_column!r} collides with a feature name")
    ordered = [settings.entity, TIMESTAMP]
    rest = [c for c in frame.columns if c not in (*ordered, settings.label_column)]
    frame = frame[[*ordered, *rest, settings.label_column]]
    return frame.sort_values([TIMESTAMP, settings.entity], kind="stable").reset_index(drop=True)


def write_training_set(frame: pd.DataFrame, output_dir: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "part-0.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, coerce_timestamps="us")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    parser = _Parser(description="Build a point-in-time training set.", allow_abbrev=False)
    parser.add_argument("--labels-dir", type=Path, default=Path("/opt/ml/processing/input/labels"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    try:
        args = parser.parse_args(argv)
        settings = read_settings()
    except ValueError as error:
        return _usage(f"training set: {error}")
    except SystemExit as exit_:
        return int(exit_.code or 2)
    try:
        labels = read_labels(args.labels_dir, settings)
        with tempfile.TemporaryDirectory(prefix="mlops-training-set-") as scratch:
            frame = build_training_set(labels, settings, Path(scratch))
        path = write_training_set(frame, args.output_dir)
    except DataError as error:
        _write_failure(f"training set: {error}")
        return 1
    except Exception as error:
        _write_failure(f"training set: unexpected {type(error).__name__}: {error}")
        raise
    dropped = len(labels) - len(frame)
    logger.info(
        "labels=%d rows=%d dropped=%d (no feature row within a view's TTL) service=%s -> %s",
        len(labels), len(frame), dropped, settings.feature_service, path,
    )  # fmt: skip
    summary = {"labels": len(labels), "rows": len(frame), "dropped": dropped}
    (args.output_dir / "_summary.json").write_text(json.dumps(summary))
    return 0
