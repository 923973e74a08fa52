"""Benchmark: bulk materialization vs `FeatureStore.materialize`, same data, same Redis.

    .venv/bin/python -m benchmarks.features.materialize --customers 20000 --days 30 --runs 3

Both read the same Parquet (customers x days rows per view) for the same window and write the
latest row per customer and view into a dedicated redis-server, flushed before every run. Runs
alternate between the two; the medians and their ratio are reported, and the Redis contents of
both are compared byte for byte. Results belong in docs/feature-store.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import cast

import redis
from rich.console import Console
from rich.table import Table

from benchmarks.features._setup import BenchEnv, bench_env, machine
from features.materialize import materialize


def _snapshot(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    return {
        key: cast(dict[bytes, bytes], client.hgetall(key))
        for key in client.scan_iter(count=5_000)
        if not key.startswith(b"mlops:")
    }


def _timed(client: redis.Redis, run: Callable[[], object]) -> float:
    client.flushdb()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _measure(env: BenchEnv, runs: int, batch_size: int) -> tuple[list[float], list[float], bool]:
    client = redis.Redis.from_url(env.redis_url)

    def ours() -> object:
        return materialize(env.store, env.start, env.end, redis_url=env.redis_url,
                           batch_size=batch_size)  # fmt: skip

    def feasts() -> None:
        env.store.materialize(env.start, env.end)

    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(runs):
        mine.append(_timed(client, ours))
        ours_snapshot = _snapshot(client)
        theirs.append(_timed(client, feasts))
    identical = ours_snapshot == _snapshot(client)
    return mine, theirs, identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2_000)
    args = parser.parse_args()
    console = Console(width=120)
    with bench_env(args.customers, args.days) as env:
        mine, theirs, identical = _measure(env, args.runs, args.batch_size)
    written = 2 * args.customers
    table = Table("materializer", "median s", "min s", "entity rows written/s",
                  "offline rows read/s", title="materialize 2 views")  # fmt: skip
    for name, values in (("features.materialize", mine), ("FeatureStore.materialize", theirs)):
        median = statistics.median(values)
        table.add_row(name, f"{median:.2f}", f"{min(values):.2f}", f"{written / median:,.0f}",
                      f"{env.offline_rows / median:,.0f}")  # fmt: skip
    console.print(table)
    console.print(
        f"offline rows {env.offline_rows:,}, entity rows written {written:,}, runs {args.runs}, "
        f"batch size {args.batch_size}; speed-up (median) "
        f"{statistics.median(theirs) / statistics.median(mine):.1f}x; "
        f"Redis contents byte-identical: {identical}"
    )
    console.print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
