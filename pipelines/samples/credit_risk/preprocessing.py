"""Preprocessing step (a SageMaker Processing job): validate the training frame, split it by time.

Input: `--input-dir` holds Parquet files (any layout, Hive partitions included) of the frame the
feature store's historical retrieval returns: `customer_id`, `event_timestamp`, the feature
columns and the label. Output: `--output-dir/{train,validation,test}/part-0.parquet`, with the
id, timestamp, features (in a fixed order, which becomes the model's input order) and label.

The split is by time, never by row: `test` is the latest dates (an out-of-time slice, the data
the promotion gate judges on), `validation` the dates just before it, `train` the rest. Missing
feature values are kept (the models handle NaN); rows without a label are dropped.

On a fatal data problem the reason goes to the failure file (SageMaker shows its content as the
job's FailureReason) and the exit code is 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

logger = logging.getLogger("preprocessing")

ENTITY = "customer_id"
TIMESTAMP = "event_timestamp"
LABEL = "defaulted_90d"
FEATURES: tuple[str, ...] = (
    "age",
    "income_monthly",
    "credit_limit",
    "credit_utilization",
    "months_since_first_credit",
    "num_credit_lines",
    "late_payments_12m",
    "txn_count_7d",
    "txn_amount_7d",
    "txn_count_30d",
    "txn_amount_30d",
    "avg_txn_amount_30d",
    "night_txn_ratio_30d",
    "distinct_merchants_30d",
)
SPLITS = ("train", "validation", "test")


class DataError(Exception):
    """The input cannot produce a trustworthy model; the message is shown to the modeler."""


class UsageError(Exception):
    """Bad arguments: argparse would exit without leaving a reason SageMaker can show."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def default_failure_file() -> Path:
    return Path(os.environ.get("SM_OUTPUT_FAILURE", "/opt/ml/output/failure"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(description="Validate and time-split the training frame.", allow_abbrev=False)
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input/data"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--failure-file", type=Path, default=default_failure_file())
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--min-rows-per-split", type=int, default=50)
    return parser.parse_args(argv)


def read_frame(input_dir: Path) -> pd.DataFrame:
    files = sorted(input_dir.rglob("*.parquet"))
    if not files:
        raise DataError(f"no Parquet files under {input_dir}")
    return pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)


def validate(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with exactly the expected columns, a UTC timestamp and labelled rows only."""
    required = [ENTITY, TIMESTAMP, *FEATURES, LABEL]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise DataError(f"training frame is missing required columns: {', '.join(missing)}")
    extra = sorted(set(frame.columns) - set(required))
    if extra:
        logger.info("ignoring columns not used by the model: %s", ", ".join(extra))
    frame = frame[required].copy()
    not_numeric = [f for f in FEATURES if not pd.api.types.is_numeric_dtype(frame[f])]
    if not_numeric:
        raise DataError(f"feature columns are not numeric: {', '.join(not_numeric)}")
    try:
        frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{TIMESTAMP} is not a timestamp column: {exc}") from exc
    unlabelled = int(frame[LABEL].isna().sum())
    if unlabelled:
        logger.info("dropping %d rows without a label", unlabelled)
        frame = frame[frame[LABEL].notna()]
    bad = sorted(set(frame[LABEL].unique().tolist()) - {0, 1})
    if bad:
        raise DataError(f"{LABEL} must be 0 or 1; found {bad[:5]}")
    frame[LABEL] = frame[LABEL].astype("int64")
    return frame.sort_values([TIMESTAMP, ENTITY], kind="stable").reset_index(drop=True)


def split_by_time(
    frame: pd.DataFrame, validation_fraction: float, test_fraction: float, min_rows: int
) -> dict[str, pd.DataFrame]:
    """Whole days per split: test is the latest `test_fraction` of the dates, validation before."""
    days = frame[TIMESTAMP].dt.floor("D")
    dates = np.sort(days.unique())
    n_test = max(1, round(len(dates) * test_fraction))
    n_validation = max(1, round(len(dates) * validation_fraction))
    if len(dates) < n_test + n_validation + 1:
        raise DataError(
            f"the frame spans {len(dates)} dates; a time split needs at least "
            f"{n_test + n_validation + 1} (train, validation and an out-of-time test slice)"
        )
    validation_start = dates[-(n_test + n_validation)]
    test_start = dates[-n_test]
    splits = {
        "train": frame[days < validation_start],
        "validation": frame[(days >= validation_start) & (days < test_start)],
        "test": frame[days >= test_start],
    }
    for name, part in splits.items():
        positives = int(part[LABEL].sum())
        if len(part) < min_rows or positives == 0 or positives == len(part):
            raise DataError(
                f"the {name} split has {len(part)} rows and {positives} positives; it needs at "
                f"least {min_rows} rows and both classes"
            )
    return splits


def write_splits(splits: dict[str, pd.DataFrame], output_dir: Path) -> None:
    for name, part in splits.items():
        target = output_dir / name
        target.mkdir(parents=True, exist_ok=True)
        part.to_parquet(target / "part-0.parquet", index=False)
        logger.info(
            "split=%s rows=%d positive_rate=%.4f from=%s to=%s",
            name,
            len(part),
            part[LABEL].mean(),
            part[TIMESTAMP].min().isoformat(),
            part[TIMESTAMP].max().isoformat(),
        )


def write_failure(path: Path, reason: str) -> None:
    """SageMaker reads this file as the job's FailureReason; it must never mask the real error."""
    logger.error("failed: %s", reason)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason[:1024], encoding="utf-8")
    except OSError as exc:
        logger.error("could not write the failure reason to %s: %s", path, exc)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        args = parse_args(argv)
    except UsageError as exc:
        write_failure(default_failure_file(), f"preprocessing: {exc}")
        return 2
    try:
        frame = validate(read_frame(args.input_dir))
        splits = split_by_time(
            frame, args.validation_fraction, args.test_fraction, args.min_rows_per_split
        )
        write_splits(splits, args.output_dir)
    except DataError as exc:
        write_failure(args.failure_file, f"preprocessing: {exc}")
        return 1
    except Exception as exc:
        write_failure(args.failure_file, f"preprocessing: unexpected {type(exc).__name__}: {exc}")
        raise
    logger.info("rows=%d features=%d", len(frame), len(FEATURES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
