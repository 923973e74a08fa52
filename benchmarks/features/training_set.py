"""Benchmark: Feast's point-in-time join for a training set, daily files vs one file per view.

    .venv/bin/python -m benchmarks.features.training_set --customers 3000 --days 90 --runs 3

The same sample warehouse data (the views' `dt=` partitions as the data lake holds them) and
the same label table, in one run, alternating: Feast's file offline store reading the daily
partition files directly, and reading the one-file-per-view copy `features.training_set.compact`
makes (what the training-set step does). Both results are checked equal before timing counts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks.features._setup import machine
from features.repo import SERVICE_NAME, TTLS, build_repo, file_sources
from features.store import feature_store_config, open_store
from features.training_set import compact
from pipelines import sample_data as sd


def _store(root: Path, data_root: Path, project: str) -> Any:
    config = feature_store_config(
        "local", project=project, registry_path=str(root / f"{project}.db"),
        redis_url="redis://127.0.0.1:6379/0",  # never contacted by historical retrieval
    )  # fmt: skip
    store = open_store(config, root)
    store.apply(build_repo(file_sources(str(data_root))).objects())
    return store


def _join(store: Any, labels: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    frame = store.get_historical_features(
        entity_df=labels, features=store.get_feature_service(SERVICE_NAME)
    ).to_df()
    return time.perf_counter() - started, frame


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values([sd.TIMESTAMP, sd.ENTITY], kind="stable").reset_index(drop=True)
    return frame[sorted(frame.columns)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    console = Console()
    data = sd.generate(n_customers=args.customers, start=date(2026, 1, 1), days=args.days, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sd.write_parquet(data, root / "daily")
        started = time.perf_counter()
        compact(root / "daily", root / "compact", list(TTLS))
        compact_seconds = time.perf_counter() - started
        stores = {
            "daily files (one Dask partition each)": _store(root, root / "daily", "daily"),
            "one file per view (compact)": _store(root, root / "compact", "compact"),
        }
        times: dict[str, list[float]] = {name: [] for name in stores}
        results: dict[str, pd.DataFrame] = {}
        for _ in range(args.runs):
            for name, store in stores.items():
                seconds, frame = _join(store, data.labels)
                times[name].append(seconds)
                results[name] = _canonical(frame)
        first, second = results.values()
        pd.testing.assert_frame_equal(first, second)
    table = Table("offline layout", "median s", "min s", "max s", "rows",
                  title=f"training set: {len(data.labels):,} labels, {args.customers:,} "
                        f"customers × {args.days} days, {args.runs} runs")  # fmt: skip
    for name, values in times.items():
        table.add_row(name, f"{statistics.median(values):.2f}", f"{min(values):.2f}",
                      f"{max(values):.2f}", f"{len(first):,}")  # fmt: skip
    console.print(table)
    daily, compacted = (statistics.median(v) for v in times.values())
    console.print(f"compaction {compact_seconds:.2f} s; speed-up {daily / compacted:.1f}×")
    console.print(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
