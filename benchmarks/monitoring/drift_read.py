"""How fast the drift job reads a window of prediction logs, and what volume that covers.

Writes `--records` prediction-log records (the sample model's 14 features and a score, as the
proxy logs them) as gzip'd JSON-lines objects of `--per-object` records, like Firehose's, then
times one drift reading of them twice in one run:

- `files`: `read_log_lines` over local files + `compute_drift` (the parsing and binning alone);
- `s3`: `monitoring.job.read_window` against in-process moto S3 (listing, streaming bodies,
  the window filter): the job's own path, minus the network.

Prints records/s for both, their ratio, and the records a 15-minute Lambda could read at the
S3 rate. Usage: `python -m benchmarks.monitoring.drift_read [--records 200000]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from benchmarks.features._setup import machine
from monitoring.drift import Thresholds, compute_drift, read_log_lines
from monitoring.job import Target, Window, read_window
from monitoring.psi import Baseline, bin_proportions

FEATURES = ("age", "income_monthly", "credit_limit", "credit_utilization",
            "months_since_first_credit", "num_credit_lines", "late_payments_12m", "txn_count_7d",
            "txn_amount_7d", "txn_count_30d", "txn_amount_30d", "avg_txn_amount_30d",
            "night_txn_ratio_30d", "distinct_merchants_30d")  # fmt: skip
DAY = datetime(2026, 11, 21, tzinfo=UTC)
BUCKET = "bench-prediction-logs"  # ("logs.s3..." would route to CloudWatch Logs in moto)


def _baselines(rng: np.random.Generator) -> dict[str, Any]:
    def column() -> dict[str, Any]:
        values = rng.normal(size=5000)
        edges = np.quantile(values, np.linspace(0.1, 0.9, 9)).tolist()
        return {"edges": edges, "proportions": bin_proportions(values, edges).tolist()}

    baselines = {"schema_version": 1, "method": "quantile", "source": "train", "bins": 10,
                 "rows": 5000, "features": {f: column() for f in FEATURES}}  # fmt: skip
    return {"baselines": {**baselines, "score": column()}}


def _objects(records: int, per_object: int, rng: np.random.Generator) -> list[bytes]:
    start, bodies = DAY.timestamp(), []
    for first in range(0, records, per_object):
        count = min(per_object, records - first)
        values = rng.normal(size=(count, len(FEATURES) + 1)).round(6).tolist()
        lines = (
            json.dumps({"model": "credit-risk", "version": "3", "request_id": f"r{first + i}",
                        "id": str(first + i), "ts": start + (first + i) * 0.01, "latency_ms": 4.2,
                        "entity": 1_000_001 + i, "score": row[-1],
                        "features": dict(zip(FEATURES, row[:-1], strict=True))}).encode() + b"\n"
            for i, row in enumerate(values)
        )  # fmt: skip
        bodies.append(gzip.compress(b"".join(lines), compresslevel=6))
    return bodies


def _files(bodies: list[bytes], root: Path, report: dict[str, Any]) -> tuple[float, int]:
    paths = []
    for i, body in enumerate(bodies):
        path = root / f"part-{i:05d}.gz"
        path.write_bytes(body)
        paths.append(path)
    started = time.perf_counter()
    drift = compute_drift(read_log_lines(paths), report, model="credit-risk", version=3)
    return time.perf_counter() - started, drift.window.records


def _s3(bodies: list[bytes], report: dict[str, Any]) -> tuple[float, int]:
    import boto3
    from moto import mock_aws

    os.environ.update(AWS_DEFAULT_REGION="ap-northeast-2", AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing")  # fmt: skip
    os.environ.pop("AWS_ENDPOINT_URL", None)  # in-process moto, not an emulator endpoint
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"}
        )
        for i, body in enumerate(bodies):
            s3.put_object(Bucket=BUCKET, Key=f"predictions/dt=2026-11-21/part-{i:05d}.gz",
                          Body=body)  # fmt: skip
        target = Target("credit-risk", 3, "arn:aws:sagemaker:x", "s3://a/b",
                        Baseline.from_evaluation(report))  # fmt: skip
        window = Window.days_ending(DAY.date(), 1)
        started = time.perf_counter()
        reading = read_window(s3, BUCKET, target, window, Thresholds())
        return time.perf_counter() - started, reading.report.window.records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--per-object", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    report = _baselines(rng)
    bodies = _objects(args.records, args.per_object, rng)
    size = sum(len(b) for b in bodies)
    console = Console()
    console.print(f"{args.records} records in {len(bodies)} objects, {size / 2**20:.1f} MiB gzip'd")
    with tempfile.TemporaryDirectory() as tmp:
        files_s, files_n = _files(bodies, Path(tmp), report)
    s3_s, s3_n = _s3(bodies, report)
    assert files_n == s3_n == args.records, (files_n, s3_n)
    files_rate, s3_rate = files_n / files_s, s3_n / s3_s
    console.print(f"files: {files_s:6.2f} s  {files_rate:10,.0f} records/s")
    console.print(f"s3:    {s3_s:6.2f} s  {s3_rate:10,.0f} records/s  "
                  f"(s3 takes {s3_s / files_s:.2f}x the files time)")  # fmt: skip
    console.print(f"a 15-minute Lambda at the s3 rate: {s3_rate * 900 / 1e6:,.0f} M records "
                  f"per reading; machine: {machine()}")  # fmt: skip


if __name__ == "__main__":
    main()
