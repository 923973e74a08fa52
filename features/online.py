"""Online feature reads for serving: Redis read directly in Feast's online-store format.

One pipelined HMGET per entity -- all requested views share the entity's hash, so N entities
cost one round trip and N commands (Feast issues one HMGET per view and entity) -- decoded with
Feast's own value conversion. With `enforce_ttl=False` the rows equal
`FeatureStore.get_online_features(...).to_dict()` row for row; with the default
`enforce_ttl=True` a view's values whose event time is older than the view's TTL (relative to
the read time) are None, which Feast 0.67's Redis online store does *not* do (it returns stale
values however old). An entity that was never materialized gets None for every feature, as in
Feast.

The registry is read once per feature spec (service name or refs) and cached; call `refresh()`
after `feast apply` changes the definitions.

With `timeout` set, every Redis call fails within about twice that many seconds (see
`_bound_latency`); without it redis-py's defaults apply, which for a client built from Feast's
connection string means up to three retries with 1-10 s backoff: seconds per failed request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from feast import FeatureService, FeatureView, ValueType
from redis.backoff import NoBackoff
from redis.retry import Retry

from features import codec
from features.materialize import Freshness, read_freshness
from features.store import redis_client

FeatureSpec = FeatureService | str | Sequence[str]


class UnknownFeatureError(ValueError):
    """A requested feature, view or feature service does not exist in the registry."""


@dataclass(frozen=True)
class _ViewPlan:
    ttl: timedelta | None
    first_field: int
    outputs: tuple[tuple[str, ValueType], ...]


@dataclass(frozen=True)
class _Plan:
    join_key: str
    fields: tuple[bytes, ...]
    views: tuple[_ViewPlan, ...]


class OnlineFeatureReader:
    """Read online features of int64-keyed entities (see the module doc for the contract)."""

    def __init__(
        self,
        store: Any,
        redis_url: str | None = None,
        *,
        enforce_ttl: bool = True,
        clock: Callable[[], datetime] | None = None,
        timeout: float | None = None,
    ) -> None:
        self._store = store
        self._client: redis.Redis = redis_client(store, redis_url)
        if timeout is not None:
            _bound_latency(self._client, timeout)
        self._enforce_ttl = enforce_ttl
        self._clock = clock or (lambda: datetime.now(UTC))
        self._plans: dict[tuple[Any, ...], _Plan] = {}
        self._keys: dict[str, codec.EntityKeys] = {}
        self._decoder = codec.ValueDecoder()

    def refresh(self) -> None:
        """Forget cached registry lookups."""
        self._store.refresh_registry()
        self._plans.clear()

    def ping(self) -> None:
        """Raise `redis.RedisError` unless Redis answers PING (readiness probes)."""
        self._client.ping()

    def freshness(self, view: str) -> Freshness | None:
        """When `view` was last materialized, and up to which event time."""
        return read_freshness(self._client, self._store.config.project, view)

    def get(
        self, features: FeatureSpec, entity_ids: Sequence[int], *, full_feature_names: bool = False
    ) -> list[dict[str, Any]]:
        """One dict per entity id, in order: the join key and each requested feature."""
        plan = self._plan(features, full_feature_names)
        keys = self._entity_keys(plan.join_key).keys(entity_ids)
        with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, list(plan.fields))  # type: ignore[arg-type]  # bytes keys are fine
            replies = pipe.execute()
        oldest = self._oldest_allowed(plan)
        return [
            self._row(plan, int(entity_id), values, oldest)
            for entity_id, values in zip(entity_ids, replies, strict=True)
        ]

    def _oldest_allowed(self, plan: _Plan) -> list[datetime | None]:
        if not self._enforce_ttl:
            return [None] * len(plan.views)
        now = self._clock()
        return [now - view.ttl if view.ttl else None for view in plan.views]

    def _row(
        self,
        plan: _Plan,
        entity_id: int,
        values: list[bytes | None],
        oldest: list[datetime | None],
    ) -> dict[str, Any]:
        row: dict[str, Any] = {plan.join_key: entity_id}
        decode = self._decoder.decode
        for view, cutoff in zip(plan.views, oldest, strict=True):
            raw_ts = values[view.first_field]
            expired = cutoff is not None and (
                raw_ts is None or codec.decode_timestamp(raw_ts) < cutoff
            )
            for offset, (name, value_type) in enumerate(view.outputs, start=1):
                raw = None if expired else values[view.first_field + offset]
                row[name] = decode(raw, value_type)
        return row

    def _entity_keys(self, join_key: str) -> codec.EntityKeys:
        if join_key not in self._keys:
            config = self._store.config
            self._keys[join_key] = codec.EntityKeys(
                config.project, join_key, config.entity_key_serialization_version
            )
        return self._keys[join_key]

    def _plan(self, features: FeatureSpec, full_feature_names: bool) -> _Plan:
        spec = (
            features.name
            if isinstance(features, FeatureService)
            else features
            if isinstance(features, str)
            else tuple(features)
        )
        cache_key = (spec, full_feature_names)
        if cache_key not in self._plans:
            self._plans[cache_key] = self._build_plan(spec, full_feature_names)
        return self._plans[cache_key]

    def _build_plan(self, spec: str | tuple[str, ...], full_feature_names: bool) -> _Plan:
        views = {v.name: v for v in self._store.list_feature_views()}
        if isinstance(spec, str):
            requested = self._service_refs(spec)
        else:
            requested = _parse_refs(spec, views)
        join_keys = {views[view].entity_columns[0].name for view, _, _ in requested}
        if len(join_keys) != 1:
            raise ValueError(f"features must share one single-column entity, got {join_keys}")
        fields: list[bytes] = []
        plans: list[_ViewPlan] = []
        for view_name in dict.fromkeys(view for view, _, _ in requested):
            view = views[view_name]
            stored = codec.view_name(view, self._store.config)
            chosen = [(f, alias) for v, f, alias in requested if v == view_name]
            dtypes = {f.name: f.dtype.to_value_type() for f in view.features}
            plans.append(_ViewPlan(_ttl(view), len(fields), tuple(
                (f"{alias}__{f}" if full_feature_names else f, dtypes[f]) for f, alias in chosen
            )))  # fmt: skip
            fields.append(codec.timestamp_field(stored))
            fields.extend(codec.feature_field(stored, f) for f, _ in chosen)
        return _Plan(join_keys.pop(), tuple(fields), tuple(plans))

    def _service_refs(self, name: str) -> list[tuple[str, str, str]]:
        try:
            service = self._store.get_feature_service(name)
        except Exception as exc:  # Feast raises its own not-found type per registry backend
            known = sorted(s.name for s in self._store.list_feature_services())
            raise UnknownFeatureError(f"unknown feature service {name!r}; known: {known}") from exc
        return [
            (projection.name, feature.name, projection.name_to_use())
            for projection in service.feature_view_projections
            for feature in projection.features
        ]


def _bound_latency(client: redis.Redis, seconds: float) -> None:
    """Connect and read timeouts of `seconds`, and one immediate retry instead of redis-py's
    default policy. The single retry absorbs a connection that dies under a command (a Redis
    restart or failover); a Redis that is down or hung costs at most two timeouts."""
    if not seconds > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {seconds!r}")
    client.connection_pool.connection_kwargs.update(
        socket_connect_timeout=seconds, socket_timeout=seconds
    )
    client.set_retry(Retry(NoBackoff(), 1))


def _ttl(view: FeatureView) -> timedelta | None:
    return view.ttl if view.ttl and view.ttl > timedelta(0) else None


def _parse_refs(refs: Sequence[str], views: dict[str, FeatureView]) -> list[tuple[str, str, str]]:
    """`view:feature` refs as (view, feature, view) triples; unknown ones raise with the valid."""
    valid = {f"{v.name}:{f.name}" for v in views.values() for f in v.features}
    unknown = [ref for ref in refs if ref not in valid]
    if unknown or not refs:
        raise UnknownFeatureError(
            f"unknown feature refs {unknown or '(none given)'}; valid refs: {sorted(valid)}"
        )
    parsed = [ref.split(":", 1) for ref in refs]
    return [(view, feature, view) for view, feature in parsed]
