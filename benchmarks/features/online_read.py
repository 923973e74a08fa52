"""Benchmark: online read latency for 1 and 100 entities, three ways, same Redis, same run.

    .venv/bin/python -m benchmarks.features.online_read --customers 20000 --iterations 2000

* `OnlineFeatureReader.get` -- pipelined HMGET in Feast's format, decoded, TTL checked;
* `FeatureStore.get_online_features(...).to_dict()` -- Feast's own read path;
* raw pipelined HMGET of the same keys and fields, no decoding (the floor).

All three read the `credit_risk_v1` service (14 features, 2 views) after one bulk
materialization; requests draw random customers. p50/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable

import redis
from rich.console import Console
from rich.table import Table

from benchmarks._timing import latencies_ms
from benchmarks.features._setup import BenchEnv, bench_env, machine
from features import codec
from features.materialize import materialize
from features.online import OnlineFeatureReader
from features.repo import SERVICE_NAME
from pipelines import sample_data as sd

Reader = Callable[[list[int]], object]


def _readers(env: BenchEnv) -> dict[str, Reader]:
    store = env.store
    service = store.get_feature_service(SERVICE_NAME)
    ours = OnlineFeatureReader(store, env.redis_url)
    keys = codec.EntityKeys(store.project, sd.ENTITY, store.config.entity_key_serialization_version)
    fields = [
        field
        for view in env.repo.views
        for field in (
            codec.timestamp_field(view.name),
            *(codec.feature_field(view.name, f.name) for f in view.features),
        )
    ]
    client = redis.Redis.from_url(env.redis_url)

    def raw(ids: list[int]) -> object:
        with client.pipeline(transaction=False) as pipe:
            for key in keys.keys(ids):
                pipe.hmget(key, fields)  # type: ignore[arg-type]  # bytes keys are fine
            return pipe.execute()

    def feasts(ids: list[int]) -> object:
        rows = [{sd.ENTITY: i} for i in ids]
        return store.get_online_features(features=service, entity_rows=rows).to_dict()

    return {
        "OnlineFeatureReader.get": lambda ids: ours.get(SERVICE_NAME, ids),
        "Feast get_online_features": feasts,
        "raw HMGET pipeline": raw,
    }


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2_000)
    args = parser.parse_args()
    console = Console(width=120)
    rng = random.Random(7)
    ids = list(range(1_000_001, 1_000_001 + args.customers))
    table = Table("entities", "reader", "p50 ms", "p99 ms", "mean ms", title="online read")
    with bench_env(args.customers, args.days) as env:
        materialize(env.store, env.start, env.end, redis_url=env.redis_url)
        readers = _readers(env)
        for size in (1, 100):
            requests = [rng.sample(ids, size) for _ in range(args.iterations)]
            for name, read in readers.items():
                timings = latencies_ms(read, requests)
                table.add_row(str(size), name, f"{_p(timings, 50):.3f}", f"{_p(timings, 99):.3f}",
                              f"{statistics.fmean(timings):.3f}")  # fmt: skip
    console.print(table)
    console.print(f"{args.iterations} requests per row; machine: {machine()}")


if __name__ == "__main__":
    main()
