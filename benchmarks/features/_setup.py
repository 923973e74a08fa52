"""Shared setup of the feature-store benchmarks: sample Parquet, a dedicated Redis, a store."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from features.local_redis import LocalRedis
from features.repo import FeatureRepo, build_repo, file_sources
from features.store import feature_store_config, open_store
from pipelines import sample_data as sd


@dataclass(frozen=True)
class BenchEnv:
    redis_url: str
    store: Any
    repo: FeatureRepo
    start: datetime
    end: datetime
    offline_rows: int


@contextmanager
def bench_env(customers: int, days: int) -> Iterator[BenchEnv]:
    """Sample data ending today written as Parquet, applied to a store on a fresh redis-server."""
    with TemporaryDirectory(prefix="feature-bench-") as tmp, LocalRedis(Path(tmp) / "redis") as rs:
        root = Path(tmp)
        first_day = datetime.now(UTC).date() - timedelta(days=days - 1)
        data = sd.generate(customers, first_day, days)
        sd.write_parquet(data, root / "data")
        config = feature_store_config(
            "local", project="bench", registry_path=str(root / "registry.db"), redis_url=rs.url
        )
        store = open_store(config, root)
        repo = build_repo(file_sources(str(root / "data")))
        store.apply(repo.objects())
        yield BenchEnv(
            redis_url=rs.url,
            store=store,
            repo=repo,
            start=datetime.combine(first_day, datetime.min.time(), UTC),
            end=datetime.now(UTC),
            offline_rows=len(data.profiles) + len(data.transactions),
        )


def machine() -> str:
    return (
        f"{platform.machine()}, nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
