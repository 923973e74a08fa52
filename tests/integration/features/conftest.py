"""A real Redis, sample warehouse Parquet and an applied Feast repo, shared by the package.

Redis is the session's `redis_url` (tests/conftest.py: a private `redis-server`, or
`REDIS_URL`); tests never flush it and every store uses its own project name, so keys of
separate stores never collide.
The sample data ends today, and a few customers stop having rows early so that their latest
online values are older than the views' TTLs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.materialize import MaterializeResult, materialize
from features.repo import TTLS, FeatureRepo, build_repo, file_sources
from features.store import feature_store_config, open_store
from pipelines import sample_data as sd

CUSTOMERS = 300
DAYS = 30
FIRST_ID = 1_000_001
# Customers whose profile rows stop 10 days before the end (profile TTL: 7 days) and whose
# transaction rows stop 3 days before the end (transaction TTL: 2 days).
EXPIRED_IDS = tuple(range(FIRST_ID, FIRST_ID + 8))
UNKNOWN_IDS = (1, 42, 9_999_999)


@dataclass(frozen=True)
class FeatureEnv:
    redis_url: str
    root: Path
    data: sd.SampleData
    repo: FeatureRepo
    store: Any
    start: datetime
    end: datetime
    result: MaterializeResult

    def new_store(self, data_root: Path | None = None, **params: Any) -> tuple[Any, FeatureRepo]:
        """Another applied store on the same Redis with its own project (and maybe data)."""
        project = f"t_{uuid.uuid4().hex[:10]}"
        config = feature_store_config(
            "local",
            project=project,
            registry_path=str(self.root / f"{project}.db"),
            redis_url=self.redis_url,
            **params,
        )
        store = open_store(config, self.root)
        repo = build_repo(file_sources(str(data_root or self.root / "data")))
        store.apply(repo.objects())
        return store, repo


def _expire_some(data: sd.SampleData, last_day: date) -> sd.SampleData:
    def drop(frame: pd.DataFrame, days: int) -> pd.DataFrame:
        cutoff = pd.Timestamp(last_day - timedelta(days=days - 1), tz="UTC")
        late = frame[sd.ENTITY].isin(EXPIRED_IDS) & (frame[sd.TIMESTAMP] >= cutoff)
        return frame.loc[~late].reset_index(drop=True)

    return sd.SampleData(drop(data.profiles, 10), drop(data.transactions, 3), data.labels)


@pytest.fixture(scope="package")
def feature_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> FeatureEnv:
    root = tmp_path_factory.mktemp("feature-store")
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=DAYS - 1)
    data = _expire_some(sd.generate(CUSTOMERS, first_day, DAYS, seed=11), today)
    sd.write_parquet(data, root / "data")
    project = f"t_{uuid.uuid4().hex[:10]}"
    config = feature_store_config(
        "local", project=project, registry_path=str(root / "registry.db"), redis_url=redis_url
    )
    store = open_store(config, root)
    repo = build_repo(file_sources(str(root / "data")))
    store.apply(repo.objects())
    start = datetime.combine(first_day, datetime.min.time(), UTC)
    end = datetime.now(UTC)
    result = materialize(store, start, end, redis_url=redis_url, batch_size=64)
    return FeatureEnv(redis_url, root, data, repo, store, start, end, result)


def feast_rows(store: Any, features: Any, ids: list[int], **kwargs: Any) -> list[dict[str, Any]]:
    """`get_online_features(...).to_dict()` turned into one dict per entity."""
    columns = store.get_online_features(
        features=features, entity_rows=[{sd.ENTITY: i} for i in ids], **kwargs
    ).to_dict()
    return [{name: values[i] for name, values in columns.items()} for i in range(len(ids))]


def expected_training_frame(env: FeatureEnv, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Backward as-of join per view with the view's TTL as tolerance (pandas, not Feast)."""
    frame = entity_df.sort_values(sd.TIMESTAMP, kind="stable")
    for view, table, names in (
        (sd.PROFILE_VIEW, env.data.profiles, sd.PROFILE_FEATURES),
        (sd.TRANSACTION_VIEW, env.data.transactions, sd.TRANSACTION_FEATURES),
    ):
        right = table[[sd.ENTITY, sd.TIMESTAMP, *names]].sort_values(sd.TIMESTAMP)
        frame = pd.merge_asof(frame, right, on=sd.TIMESTAMP, by=sd.ENTITY,
                              tolerance=pd.Timedelta(TTLS[view]))  # fmt: skip
    return frame


def sorted_training_frame(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [sd.ENTITY, sd.TIMESTAMP, sd.LABEL, *sd.FEATURES]
    frame = frame[columns].sort_values([sd.TIMESTAMP, sd.ENTITY], kind="stable")
    return frame.reset_index(drop=True).astype(dict.fromkeys(sd.FEATURES, "float64"))
