"""Bulk materialization into a real Redis, checked against the Parquet and against Feast."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pandas as pd
import pyarrow.parquet as pq
import pytest
import redis

from features.local_redis import free_port
from features.materialize import (
    MaterializationError,
    freshness_key,
    materialize,
    read_freshness,
)
from features.online import OnlineFeatureReader
from features.repo import SERVICE_NAME
from pipelines import sample_data as sd
from tests.integration.features.conftest import CUSTOMERS, FIRST_ID, FeatureEnv, feast_rows

pytestmark = pytest.mark.integration

ALL_IDS = list(range(FIRST_ID, FIRST_ID + CUSTOMERS))


def _latest_offline(env: FeatureEnv) -> dict[int, dict[str, Any]]:
    """Latest row per customer per view, computed with pandas from the written Parquet."""
    latest: dict[int, dict[str, Any]] = {i: {} for i in ALL_IDS}
    for view in (sd.PROFILE_VIEW, sd.TRANSACTION_VIEW):
        frame = pd.read_parquet(env.root / "data" / view).drop(columns="dt")
        frame = frame.sort_values(sd.TIMESTAMP).groupby(sd.ENTITY).tail(1)
        for record in frame.drop(columns=sd.TIMESTAMP).to_dict("records"):
            latest[int(record.pop(sd.ENTITY))].update(record)
    return latest


def _same(online: Any, offline: Any) -> bool:
    if offline is None or (isinstance(offline, float) and math.isnan(offline)):
        return online is None
    return bool(online == offline)


def test_online_values_are_the_latest_offline_values_for_both_readers(
    feature_env: FeatureEnv,
) -> None:
    expected = _latest_offline(feature_env)
    ours = OnlineFeatureReader(feature_env.store, feature_env.redis_url, enforce_ttl=False)
    mine = ours.get(SERVICE_NAME, ALL_IDS)
    feasts = feast_rows(
        feature_env.store, feature_env.store.get_feature_service(SERVICE_NAME), ALL_IDS
    )

    mismatches = [
        (row[sd.ENTITY], name)
        for rows in (mine, feasts)
        for row in rows
        for name in sd.FEATURES
        if not _same(row[name], expected[row[sd.ENTITY]][name])
    ]
    assert mismatches == []
    assert any(row["income_monthly"] is None for row in mine), "NaN income must read as None"
    assert feature_env.result.rows_written == 2 * CUSTOMERS
    assert feature_env.result.rows_read == len(feature_env.data.profiles) + len(
        feature_env.data.transactions
    )


def _hashes(client: redis.Redis, project: str) -> dict[bytes, dict[bytes, bytes]]:
    suffix = project.encode()
    return {
        key[: -len(suffix)]: cast(dict[bytes, bytes], client.hgetall(key))
        for key in client.scan_iter(match=b"*" + suffix, count=1_000)
        if not key.startswith(b"mlops:")
    }


def test_writes_are_byte_identical_to_feast_materialize(feature_env: FeatureEnv) -> None:
    feast_store, _ = feature_env.new_store()
    feast_store.materialize(feature_env.start, feature_env.end)
    client = redis.Redis.from_url(feature_env.redis_url)

    ours = _hashes(client, feature_env.store.project)
    theirs = _hashes(client, feast_store.project)

    assert len(ours) == CUSTOMERS
    assert ours == theirs


def test_rerun_and_older_window_never_overwrite_newer_values(feature_env: FeatureEnv) -> None:
    store, _ = feature_env.new_store()
    first = materialize(store, feature_env.start, feature_env.end, redis_url=feature_env.redis_url)
    again = materialize(store, feature_env.start, feature_env.end, redis_url=feature_env.redis_url)
    older_end = feature_env.end - timedelta(days=5)
    older = materialize(store, feature_env.start, older_end, redis_url=feature_env.redis_url)
    reader = OnlineFeatureReader(store, feature_env.redis_url, enforce_ttl=False)

    assert first.rows_written == 2 * CUSTOMERS
    assert (again.rows_written, again.per_view[sd.PROFILE_VIEW].stale_rows) == (0, CUSTOMERS)
    assert older.rows_written == 0
    assert reader.get(SERVICE_NAME, ALL_IDS) == feast_rows(
        feature_env.store, feature_env.store.get_feature_service(SERVICE_NAME), ALL_IDS
    )
    record = read_freshness(redis.Redis.from_url(feature_env.redis_url), store.project,
                            sd.PROFILE_VIEW)  # fmt: skip
    assert record is not None
    assert record.end == feature_env.end, "an older window must not move freshness backwards"
    assert record.start == feature_env.start


def test_freshness_record_after_a_run(feature_env: FeatureEnv) -> None:
    reader = OnlineFeatureReader(feature_env.store, feature_env.redis_url)
    for view in (sd.PROFILE_VIEW, sd.TRANSACTION_VIEW):
        record = reader.freshness(view)
        assert record is not None
        assert (record.end, record.rows, record.rejected_rows) == (feature_env.end, CUSTOMERS, 0)
        assert datetime.now(UTC) - record.finished_at < timedelta(minutes=10)
    assert reader.freshness("no_such_view") is None


def _with_missing_timestamps(env: FeatureEnv, bad_ids: list[int]) -> Any:
    """A copy of the data whose profile rows of `bad_ids` on one day lack event timestamps."""
    root = env.root / f"malformed-{bad_ids[0]}"
    sd.write_parquet(env.data, root)
    day = env.data.profiles[sd.TIMESTAMP].max() - pd.Timedelta(days=3)
    part = root / sd.PROFILE_VIEW / f"dt={day:%Y-%m-%d}" / "part-0.parquet"
    frame = pd.read_parquet(part)
    frame.loc[frame[sd.ENTITY].isin(bad_ids), sd.TIMESTAMP] = pd.NaT
    sd.write_frame(frame, part)
    assert pq.read_table(part).column(sd.TIMESTAMP).null_count == len(bad_ids)
    return root


def test_missing_timestamps_reject_their_whole_batch(feature_env: FeatureEnv) -> None:
    batch_size = 50
    bad_ids = [FIRST_ID + 60, FIRST_ID + 61, FIRST_ID + 175]  # batches 1 and 3 of 6
    store, _ = feature_env.new_store(_with_missing_timestamps(feature_env, bad_ids))

    result = materialize(store, feature_env.start, feature_env.end,
                         redis_url=feature_env.redis_url, batch_size=batch_size)  # fmt: skip

    profile = result.per_view[sd.PROFILE_VIEW]
    assert (profile.rejected_rows, profile.rejected_batches) == (3, 2)
    assert profile.rows_written == CUSTOMERS - 2 * batch_size
    assert result.per_view[sd.TRANSACTION_VIEW].rows_written == CUSTOMERS
    rows = OnlineFeatureReader(store, feature_env.redis_url, enforce_ttl=False).get(
        [f"{sd.PROFILE_VIEW}:age"], ALL_IDS
    )
    unwritten = {row[sd.ENTITY] for row in rows if row["age"] is None}
    rejected = set(range(FIRST_ID + 50, FIRST_ID + 100)) | set(
        range(FIRST_ID + 150, FIRST_ID + 200)
    )
    assert unwritten == rejected
    record = read_freshness(redis.Redis.from_url(feature_env.redis_url), store.project,
                            sd.PROFILE_VIEW)  # fmt: skip
    assert record is not None and record.rejected_rows == 3


def test_unreachable_redis_fails_clearly_and_keeps_freshness(feature_env: FeatureEnv) -> None:
    client = redis.Redis.from_url(feature_env.redis_url)
    key = freshness_key(feature_env.store.project, sd.PROFILE_VIEW)
    before = client.hgetall(key)

    with pytest.raises(MaterializationError, match="unreachable"):
        materialize(feature_env.store, feature_env.start, feature_env.end + timedelta(days=1),
                    redis_url=f"redis://127.0.0.1:{free_port()}/0")  # fmt: skip

    assert before and client.hgetall(key) == before


def test_redis_failing_mid_view_does_not_advance_freshness(feature_env: FeatureEnv) -> None:
    store, _ = feature_env.new_store()

    def connection_drops(view: str, written: int) -> None:
        raise redis.ConnectionError(f"connection reset after {written} rows of {view}")

    with pytest.raises(MaterializationError, match="freshness record was not advanced"):
        materialize(store, feature_env.start, feature_env.end, redis_url=feature_env.redis_url,
                    batch_size=100, progress=connection_drops)  # fmt: skip

    client = redis.Redis.from_url(feature_env.redis_url)
    assert read_freshness(client, store.project, sd.PROFILE_VIEW) is None
    assert read_freshness(client, store.project, sd.TRANSACTION_VIEW) is None
