"""Bulk materialization offline -> Redis in Feast's online-store format.

Same contract as `FeatureStore.materialize(start, end)`: per feature view, the latest row per
entity with an event time in [start, end] is written, and a stored value is only replaced by a
strictly newer one. What differs is how: Parquet is read once with partition pruning (other
sources go through the Feast offline store, i.e. Athena on AWS), every column is encoded in bulk
(see `features.codec`) and Redis is written in batches of `batch_size` entities, each batch
being two server-side script calls (read the stored timestamps, write the newer rows) instead of
one command per entity -- redis-py's per-command cost is what limits a plain pipeline.

Validation happens before anything is written: entities are cut into batches of `batch_size`
(sorted by id), and a batch holding any row with a missing or unparseable event timestamp is
rejected as a whole; its malformed rows count as `rejected_rows`, its entities keep their old
online values. After a view is written, its freshness record
(`mlops:materialization:<project>:<view>`, a hash with `start`, `end`, `rows`, `rejected_rows`,
`finished_at`) is updated; `end` never moves backwards. A Redis failure raises
`MaterializationError` and leaves that view's freshness record untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import redis
from feast import FeatureView, FileSource
from feast.data_source import DataSource
from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

from features import codec
from features.store import redis_client

logger = logging.getLogger(__name__)

FRESHNESS_PREFIX = "mlops:materialization"
DEFAULT_BATCH_SIZE = 2_000
Progress = Callable[[str, int], None]


class MaterializationError(RuntimeError):
    """The online store could not be updated; freshness records were not advanced."""


@dataclass(frozen=True)
class ViewResult:
    rows_read: int
    rows_written: int
    rejected_rows: int
    rejected_batches: int
    stale_rows: int
    seconds: float


@dataclass(frozen=True)
class MaterializeResult:
    """`rows_written` counts entity rows written to Redis (not older than what was stored)."""

    rows_read: int
    rows_written: int
    rejected_rows: int
    seconds: float
    per_view: dict[str, ViewResult] = field(default_factory=dict)


@dataclass(frozen=True)
class Freshness:
    start: datetime
    end: datetime
    rows: int
    rejected_rows: int
    finished_at: datetime


def freshness_key(project: str, view: str) -> str:
    return f"{FRESHNESS_PREFIX}:{project}:{view}"


def read_freshness(client: redis.Redis, project: str, view: str) -> Freshness | None:
    """The last successful materialization of `view`, or None if it never ran."""
    record = cast(dict[bytes, bytes], client.hgetall(freshness_key(project, view)))
    if not record:
        return None
    text = {k.decode(): v.decode() for k, v in record.items()}
    return Freshness(
        start=datetime.fromisoformat(text["start"]),
        end=datetime.fromisoformat(text["end"]),
        rows=int(text["rows"]),
        rejected_rows=int(text["rejected_rows"]),
        finished_at=datetime.fromisoformat(text["finished_at"]),
    )


def materialize(
    store: Any,
    start: datetime,
    end: datetime,
    *,
    redis_url: str | None = None,
    views: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> MaterializeResult:
    """Materialize `views` (default: all online views) for [start, end] into Redis.

    `redis_url` defaults to the store's own online store. `progress(view, n)` is called after
    each written batch of n entities.
    """
    start, end = _aware(start), _aware(end)
    if start > end or batch_size < 1:
        raise ValueError(f"need start <= end and batch_size >= 1: {start}, {end}, {batch_size}")
    client = redis_client(store, redis_url)
    _ping(client)
    began = time.perf_counter()
    per_view: dict[str, ViewResult] = {}
    for view in _views(store, views):
        per_view[view.name] = _materialize_view(
            store, client, view, start, end, batch_size, progress
        )
    return MaterializeResult(
        rows_read=sum(r.rows_read for r in per_view.values()),
        rows_written=sum(r.rows_written for r in per_view.values()),
        rejected_rows=sum(r.rejected_rows for r in per_view.values()),
        seconds=time.perf_counter() - began,
        per_view=per_view,
    )


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ping(client: redis.Redis) -> None:
    try:
        client.ping()
    except redis.RedisError as exc:
        raise MaterializationError(f"Redis {_where(client)} is unreachable: {exc}") from exc


def _where(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"


def _views(store: Any, names: Sequence[str] | None) -> list[FeatureView]:
    available = {v.name: v for v in store.list_feature_views() if v.online}
    if names is None:
        return [available[name] for name in sorted(available)]
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(f"unknown feature views {unknown}; available: {sorted(available)}")
    return [available[name] for name in names]


def _materialize_view(
    store: Any,
    client: redis.Redis,
    view: FeatureView,
    start: datetime,
    end: datetime,
    batch_size: int,
    progress: Progress | None,
) -> ViewResult:
    began = time.perf_counter()
    join_key = view.entity_columns[0].name
    table = _read_window(store, view, join_key, start, end)
    latest, rejected_rows, rejected_batches = _validate_and_pick_latest(
        table, view, join_key, batch_size
    )
    try:
        written, stale = _write(store, client, view, join_key, latest, batch_size, progress)
        _advance_freshness(client, store.config.project, view.name, start, end, written,
                           rejected_rows)  # fmt: skip
    except redis.RedisError as exc:
        raise MaterializationError(
            f"writing feature view {view.name!r} to Redis {_where(client)} failed: {exc}; "
            "its freshness record was not advanced"
        ) from exc
    result = ViewResult(
        table.num_rows, written, rejected_rows, rejected_batches, stale,
        time.perf_counter() - began,
    )  # fmt: skip
    logger.info("materialized %s: %s", view.name, result)
    return result


def _source(view: FeatureView) -> DataSource:
    if view.batch_source is None:
        raise ValueError(f"feature view {view.name!r} has no batch source to materialize from")
    return view.batch_source


def _read_window(
    store: Any, view: FeatureView, join_key: str, start: datetime, end: datetime
) -> pa.Table:
    """Offline rows of `view` in [start, end] (Parquet: raw rows incl. malformed timestamps)."""
    source = _source(view)
    features = [f.name for f in view.features]
    if isinstance(source, FileSource):
        path = FileSource.get_uri_for_file_path(
            repo_path=Path(store.config.repo_path or "."), uri=source.path
        )
        return _read_parquet_window(
            str(path), [join_key, source.timestamp_field, *features], source.timestamp_field,
            start, end,
        )  # fmt: skip
    offline = get_offline_store_from_config(store.config.offline_store)
    job = offline.pull_latest_from_table_or_query(
        config=store.config,
        data_source=source,
        join_key_columns=[join_key],
        feature_name_columns=features,
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column or None,
        start_date=start,
        end_date=end,
    )
    return job.to_arrow()


def _read_parquet_window(
    path: str, columns: list[str], ts_field: str, start: datetime, end: datetime
) -> pa.Table:
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    names = dataset.schema.names
    scan_filter = None
    if "dt" in names and pa.types.is_string(dataset.schema.field("dt").type):
        day = ds.field("dt")
        scan_filter = (day >= start.strftime("%Y-%m-%d")) & (day <= end.strftime("%Y-%m-%d"))
    table = dataset.to_table(columns=columns, filter=scan_filter)
    times = _event_times(table.column(ts_field))
    keep = np.asarray(times.isna() | ((times >= start) & (times <= end)))
    return table.filter(pa.array(keep))


def _event_times(column: pa.ChunkedArray) -> pd.DatetimeIndex:
    """UTC event times; NaT where the value is missing or unparseable."""
    values = column.to_numpy(zero_copy_only=False)
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True, errors="coerce", format="mixed"))


def _validate_and_pick_latest(
    table: pa.Table, view: FeatureView, join_key: str, batch_size: int
) -> tuple[pa.Table, int, int]:
    """Latest row per entity over the batches that pass validation (see the module doc)."""
    ts_field = _source(view).timestamp_field
    ids = table.column(join_key).to_numpy(zero_copy_only=False)
    times = _event_times(table.column(ts_field))
    bad = np.asarray(times.isna()) | pd.isna(ids)
    ids = np.where(pd.isna(ids), np.iinfo(np.int64).min, ids).astype(np.int64)
    entities, entity_index = np.unique(ids, return_inverse=True)
    batch_of_row = entity_index.ravel() // batch_size
    bad_batches = np.unique(batch_of_row[bad])
    keep = ~np.isin(batch_of_row, bad_batches)
    if bad_batches.size:
        logger.warning(
            "%s: rejected %d batch(es) of up to %d entities holding %d row(s) with missing or "
            "malformed %s", view.name, bad_batches.size, batch_size, int(bad.sum()), ts_field,
        )  # fmt: skip
    rows = np.flatnonzero(keep)
    nanos = np.asarray(times.asi8)[rows]
    order = rows[np.lexsort((nanos, ids[rows]))]
    sorted_ids = ids[order]
    last = np.r_[sorted_ids[1:] != sorted_ids[:-1], True] if order.size else order.astype(bool)
    latest = table.take(pa.array(order[last]))
    latest = latest.set_column(
        latest.schema.get_field_index(ts_field), ts_field, pa.array(times[order[last]])
    )
    return latest, int(bad.sum()), int(bad_batches.size)


# Bulk commands: one script call per batch instead of one command per entity (the per-command
# cost of redis-py dominates otherwise). The scripts only move bytes; every byte is encoded in
# Python by Feast's helpers. A batch blocks the server for about a millisecond per thousand
# entities. Single-node Redis only: keys of a batch are not in one cluster slot.
_READ_TS = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGET', key, ARGV[1]) end
return out
"""
_WRITE_ROWS = """
local n, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local args = {}
for i, key in ipairs(KEYS) do
  local row = 2 + n + (i - 1) * n
  for j = 1, n do args[2 * j - 1] = ARGV[2 + j]; args[2 * j] = ARGV[row + j] end
  redis.call('HSET', key, unpack(args))
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return #KEYS
"""


def _write(
    store: Any,
    client: redis.Redis,
    view: FeatureView,
    join_key: str,
    latest: pa.Table,
    batch_size: int,
    progress: Progress | None,
) -> tuple[int, int]:
    """Write `latest` (one row per entity); returns (rows written, rows not newer than stored).

    Like Feast's `online_write_batch`, an entity whose stored `_ts:<view>` is at or after the
    row's event time is left alone (read, compare, write: not atomic, as in Feast).
    """
    config = store.config
    name = codec.view_name(view, config)
    keys = codec.EntityKeys(config.project, join_key, config.entity_key_serialization_version)
    ts_field = codec.timestamp_field(name)
    fields = [ts_field, *(codec.feature_field(name, f.name) for f in view.features)]
    ts_column = latest.column(_source(view).timestamp_field)
    cells = np.column_stack(
        [codec.encode_timestamps(ts_column)]
        + [codec.encode_column(latest.column(f.name), f.dtype.to_value_type())
           for f in view.features]
    ) if latest.num_rows else np.empty((0, len(fields)), dtype=object)  # fmt: skip
    # Nanoseconds, as the stored Timestamp protos are read back (Parquet holds microseconds).
    new_nanos = np.asarray(pd.DatetimeIndex(ts_column.to_pandas()).as_unit("ns").asi8)
    all_keys = keys.keys(latest.column(join_key).to_numpy(zero_copy_only=False))
    key_ttl = config.online_store.key_ttl_seconds or 0
    read_ts, write_rows = client.register_script(_READ_TS), client.register_script(_WRITE_ROWS)
    written = stale = 0
    for lo in range(0, len(all_keys), batch_size):
        hi = min(lo + batch_size, len(all_keys))
        stored = read_ts(keys=all_keys[lo:hi], args=[ts_field])
        newer = np.array(
            [not raw or _nanos(raw) < new_nanos[lo + i] for i, raw in enumerate(stored)], dtype=bool
        )
        chosen = np.flatnonzero(newer)
        if chosen.size:
            write_rows(
                keys=[all_keys[lo + i] for i in chosen],
                args=[len(fields), key_ttl, *fields, *cells[lo + chosen].ravel().tolist()],
            )
        written += int(chosen.size)
        stale += int(hi - lo - chosen.size)
        if progress:
            progress(view.name, hi - lo)
    return written, stale


def _nanos(raw: bytes) -> int:
    moment = codec.decode_timestamp_proto(raw)
    return int(moment.seconds) * 1_000_000_000 + int(moment.nanos)


def _advance_freshness(
    client: redis.Redis,
    project: str,
    view: str,
    start: datetime,
    end: datetime,
    rows: int,
    rejected_rows: int,
) -> None:
    previous = read_freshness(client, project, view)
    record_end = max(end, previous.end) if previous else end
    client.hset(
        freshness_key(project, view),
        mapping={
            "start": start.isoformat(),
            "end": record_end.isoformat(),
            "rows": rows,
            "rejected_rows": rejected_rows,
            "finished_at": datetime.now(UTC).isoformat(),
        },
    )
