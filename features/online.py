"""Online feature reads for serving: Redis read directly in Feast's online-store format.

One HMGET per entity, run by one script call (`features.redis_plan.READ_SCRIPT`) -- all
requested views share the entity's hash, so N entities cost one round trip and N reads inside
Redis (Feast issues one HMGET per view and entity) -- decoded like Feast's value conversion.
With `enforce_ttl=False` the rows equal `FeatureStore.get_online_features(...).to_dict()` row
for row; with the default `enforce_ttl=True` a view's values whose event time is older than the
view's TTL (relative to the read time) are None, which Feast 0.67's Redis online store does
*not* do (it returns stale values however old). An entity that was never materialized gets None
for every feature, as in Feast.

The registry is read once per feature spec (service name or refs) and cached; call `refresh()`
after `feast apply` changes the definitions.

With `timeout` set, every Redis call fails within about twice that many seconds (see
`_bound_latency`); without it redis-py's defaults apply, which for a client built from Feast's
connection string means up to three retries with 1-10 s backoff: seconds per failed request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from feast import Entity, FeatureService, FeatureView
from redis.backoff import NoBackoff
from redis.retry import Retry

from features import codec
from features.materialize import Freshness, read_freshness
from features.redis_plan import SUPPORTED_VALUE_TYPES, PlanReader, RedisPlan, ViewPlan
from features.store import redis_client

FeatureSpec = FeatureService | str | Sequence[str]


class UnknownFeatureError(ValueError):
    """A requested feature, view or feature service does not exist in the registry."""


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
        wall = clock or (lambda: datetime.now(UTC))
        self._reader = PlanReader(
            self._client, enforce_ttl=enforce_ttl, clock=lambda: wall().timestamp()
        )
        self._plans: dict[tuple[Any, ...], RedisPlan] = {}

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
        plan = self.plan(features, full_feature_names=full_feature_names)
        outputs = plan.outputs
        rows = self._reader.read(plan, [int(entity_id) for entity_id in entity_ids])
        return [
            {plan.join_key: int(entity_id), **dict(zip(outputs, values, strict=True))}
            for entity_id, values in zip(entity_ids, rows, strict=True)
        ]

    def plan(self, features: FeatureSpec, *, full_feature_names: bool = False) -> RedisPlan:
        """Where `features` live in Redis, from the registry (cached; see `refresh`)."""
        spec = (
            features.name
            if isinstance(features, FeatureService)
            else features
            if isinstance(features, str)
            else tuple(features)
        )
        cache_key = (spec, full_feature_names)
        if cache_key not in self._plans:
            self._plans[cache_key] = build_plan(self._store, spec, full_feature_names)
        return self._plans[cache_key]


def build_plan(
    store: Any, spec: str | tuple[str, ...], full_feature_names: bool = False
) -> RedisPlan:
    """The `RedisPlan` of a feature service name or `view:feature` refs, from `store`'s registry.

    Raises UnknownFeatureError for unknown names, ValueError for features the Feast-free reader
    cannot decode or entities it cannot key (not a single int64 join key)."""
    views = {v.name: v for v in store.list_feature_views()}
    requested = _service_refs(store, spec) if isinstance(spec, str) else _parse_refs(spec, views)
    join_keys = {_join_key(store, views[view]) for view, _, _ in requested}
    if len(join_keys) != 1:
        raise ValueError(f"features must share one single-column entity, got {join_keys}")
    join_key = join_keys.pop()
    plans: list[ViewPlan] = []
    for view_name in dict.fromkeys(view for view, _, _ in requested):
        view = views[view_name]
        stored = codec.view_name(view, store.config)
        dtypes = {f.name: f.dtype.to_value_type() for f in view.features}
        chosen = [(f, alias) for v, f, alias in requested if v == view_name]
        unsupported = [f for f, _ in chosen if dtypes[f].name not in SUPPORTED_VALUE_TYPES]
        if unsupported:
            raise ValueError(
                f"{view_name}: {unsupported} are not scalar features; online reads support "
                f"{sorted(SUPPORTED_VALUE_TYPES)}"
            )
        ttl = _ttl(view)
        plans.append(ViewPlan(
            name=stored,
            ttl_seconds=ttl.total_seconds() if ttl else None,
            timestamp_field=codec.timestamp_field(stored),
            features=tuple(
                (f"{alias}__{f}" if full_feature_names else f, codec.feature_field(stored, f))
                for f, alias in chosen
            ),
        ))  # fmt: skip
    keys = codec.EntityKeys(
        store.config.project, join_key, store.config.entity_key_serialization_version
    )
    template = keys.template
    if template is None:
        raise ValueError(f"entity key {join_key!r}: Feast's key layout is not an int64 template")
    return RedisPlan(join_key, template[0], template[1], tuple(plans))


def _join_key(store: Any, view: FeatureView) -> str:
    """The view's join key (registered views list their entity columns; unapplied ones only
    name their entity)."""
    if view.entity_columns:
        return str(view.entity_columns[0].name)
    if len(view.entities) != 1:
        raise ValueError(f"{view.name}: online reads need exactly one entity, got {view.entities}")
    return str(store.get_entity(view.entities[0]).join_key)


def _service_refs(store: Any, name: str) -> list[tuple[str, str, str]]:
    try:
        service = store.get_feature_service(name)
    except Exception as exc:  # Feast raises its own not-found type per registry backend
        known = sorted(s.name for s in store.list_feature_services())
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


class DefinitionsCatalog:
    """The registry `build_plan` reads, straight from the project's Feast definitions.

    Used where no registry has been applied (synth time): the same definitions `feast apply`
    registers, and the `RepoConfig` settings a plan depends on (project, entity key
    serialization, view versioning) as `features.store` configures every real store."""

    def __init__(self, project: str) -> None:
        from features.repo import build_repo, file_sources
        from features.store import feature_store_config, repo_config

        self._repo = build_repo(file_sources("/unused"))
        settings = feature_store_config("local", project=project, registry_path="/unused")
        self.config = repo_config(settings, "/unused")

    def list_feature_views(self) -> list[FeatureView]:
        return list(self._repo.views)

    def list_feature_services(self) -> list[FeatureService]:
        return [self._repo.service]

    def get_entity(self, name: str) -> Entity:
        if name != self._repo.entity.name:
            raise KeyError(name)
        return self._repo.entity

    def get_feature_service(self, name: str) -> FeatureService:
        if name != self._repo.service.name:
            raise KeyError(name)
        return self._repo.service
