"""HTTP API over the online feature store: `POST /v1/features` and what a caller needs around it.

`router(backend_provider)` is a FastAPI `APIRouter` for the serving app to mount;
`create_app(store, redis_url)` runs it on its own with `/health` and `/ready`;
`app_from_env()` is the uvicorn factory (`FeatureApiSettings`). Contract: docs/feature-store.md
("Feature API").

The request is checked against the registry before Redis is touched: the feature service or refs
must exist, the entity key must be the requested views' join key (both read from the registry,
once, into `FeatureCatalog`), the id count within `max_entities`. Every such problem is a 422
shaped like FastAPI's own validation errors, with the accepted names in `ctx.valid`. A Redis that
is down or slow is a 503 within about twice `redis_timeout` seconds (see
`OnlineFeatureReader`'s `timeout`), never a hung worker.

The reader is synchronous (redis-py), so the endpoints are plain `def`: FastAPI runs them in its
threadpool and the event loop never blocks on Redis.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import redis
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError

from features.api_models import (
    DEFAULT_MAX_ENTITIES,
    DEFAULT_REDIS_TIMEOUT,
    EntityResult,
    FeatureApiSettings,
    FeatureRequest,
    FeatureResponse,
    FeatureServiceInfo,
    FeatureServicesResponse,
    FreshnessResponse,
    Materialization,
    Status,
    UnavailableResponse,
    ValidationErrorResponse,
    ViewFreshness,
)
from features.online import OnlineFeatureReader, UnknownFeatureError

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrorResponse, "description": "Invalid request (see `loc`)."},
    503: {"model": UnavailableResponse, "description": "Redis unreachable or too slow."},
}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: _ERRORS[503]}


class InvalidRequest(ValueError):
    """The request is well-formed but names something the registry does not have."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = errors

    @classmethod
    def at(
        cls, loc: list[str | int], kind: str, msg: str, given: Any, **ctx: Any
    ) -> InvalidRequest:
        """One problem at `body.<loc>`; `ctx` carries e.g. `valid` (the accepted names)."""
        return cls([_error(loc, kind, msg, given, **ctx)])


def _error(loc: list[str | int], kind: str, msg: str, given: Any, **ctx: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "loc": ["body", *loc], "msg": msg, "input": given}
    if ctx:
        error["ctx"] = ctx
    return error


@dataclass(frozen=True)
class CatalogFeature:
    view: str
    name: str
    alias: str  # the projection name: the prefix of full feature names

    @property
    def ref(self) -> str:
        return f"{self.view}:{self.name}"

    def output(self, full_feature_names: bool) -> str:
        return f"{self.alias}__{self.name}" if full_feature_names else self.name


@dataclass(frozen=True)
class CatalogService:
    description: str
    features: tuple[CatalogFeature, ...]


@dataclass(frozen=True)
class CatalogView:
    join_key: str | None  # None unless the view has exactly one entity column
    ttl: timedelta | None
    features: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """A validated request: what to pass to `OnlineFeatureReader.get`, and the output names."""

    spec: str | list[str]
    join_key: str
    names: tuple[str, ...]
    ids: list[int]


@dataclass(frozen=True)
class FeatureCatalog:
    """The registry's views, services and join keys, read once (`from_store`)."""

    views: Mapping[str, CatalogView]
    services: Mapping[str, CatalogService]

    @classmethod
    def from_store(cls, store: Any) -> FeatureCatalog:
        views = {
            view.name: CatalogView(
                view.entity_columns[0].name if len(view.entity_columns) == 1 else None,
                view.ttl if view.ttl and view.ttl > timedelta(0) else None,
                tuple(feature.name for feature in view.features),
            )
            for view in store.list_feature_views()
        }
        services = {
            service.name: CatalogService(
                service.description or "",
                tuple(
                    CatalogFeature(projection.name, feature.name, projection.name_to_use())
                    for projection in service.feature_view_projections
                    for feature in projection.features
                ),
            )
            for service in store.list_feature_services()
        }
        return cls(views, services)

    def refs(self) -> list[str]:
        return sorted(f"{view}:{name}" for view, v in self.views.items() for name in v.features)

    def join_key(self, features: Sequence[CatalogFeature]) -> str | None:
        keys = {self.views[f.view].join_key if f.view in self.views else None for f in features}
        return keys.pop() if len(keys) == 1 else None

    def select(self, request: FeatureRequest, max_entities: int) -> Selection:
        """Check `request` against the registry; raise `InvalidRequest` naming what is valid."""
        features, spec, field = self._features(request)
        join_key = self.join_key(features)
        if join_key is None:
            views = sorted({f.view for f in features})
            msg = f"views {views} do not share one single-column entity; request them separately"
            raise InvalidRequest.at([field], "mixed_entities", msg, spec)
        names = tuple(f.output(request.full_feature_names) for f in features)
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            msg = f"feature names {clashes} occur in several views; set full_feature_names: true"
            raise InvalidRequest.at([field], "feature_name_collision", msg, spec)
        ids = _entity_ids(request.entities, join_key, max_entities)
        return Selection(spec, join_key, names, ids)

    def _features(
        self, request: FeatureRequest
    ) -> tuple[list[CatalogFeature], str | list[str], str]:
        """The requested features, the spec for the reader, and the request field naming them."""
        name = request.feature_service
        if name is not None:
            if name not in self.services:
                valid = sorted(self.services)
                msg = f"unknown feature service {name!r}; valid: {valid}"
                raise InvalidRequest.at(["feature_service"], "unknown_feature_service", msg, name,
                                        valid=valid)  # fmt: skip
            return list(self.services[name].features), name, "feature_service"
        refs = list(request.features or [])
        valid = self.refs()
        known, seen = set(valid), set()
        errors = []
        for i, ref in enumerate(refs):
            if ref not in known:
                msg = f"unknown feature ref {ref!r}; valid: '<view>:<feature>' in ctx.valid"
                errors.append(_error(["features", i], "unknown_feature", msg, ref, valid=valid))
            elif ref in seen:
                msg = f"{ref!r} is requested twice"
                errors.append(_error(["features", i], "duplicate_feature", msg, ref))
            seen.add(ref)
        if errors:
            raise InvalidRequest(errors)
        parsed = [ref.split(":", 1) for ref in refs]
        return [CatalogFeature(view, name, view) for view, name in parsed], refs, "features"


def _entity_ids(entities: Mapping[str, list[int]], join_key: str, max_entities: int) -> list[int]:
    """The ids, if they are given for `join_key` alone and are at most `max_entities`."""
    if len(entities) != 1:
        msg = f"give the ids of exactly one entity key, {join_key!r}; got {sorted(entities)}"
        raise InvalidRequest.at(["entities"], "entity_key_count", msg, sorted(entities),
                                valid=[join_key])  # fmt: skip
    key, ids = next(iter(entities.items()))
    if key != join_key:
        msg = f"entity key {key!r} does not key the requested features; valid: [{join_key!r}]"
        raise InvalidRequest.at(["entities", key], "unknown_entity_key", msg, key,
                                valid=[join_key])  # fmt: skip
    if len(ids) > max_entities:
        msg = f"{len(ids)} ids given; at most {max_entities} per request"
        raise InvalidRequest.at(["entities", key], "too_many_entities", msg, len(ids),
                                max=max_entities)  # fmt: skip
    return ids


class FeatureBackend:
    """What the endpoints do, without HTTP: a reader plus the registry catalog."""

    def __init__(
        self,
        reader: OnlineFeatureReader,
        catalog: FeatureCatalog,
        *,
        max_entities: int = DEFAULT_MAX_ENTITIES,
    ) -> None:
        if max_entities < 1:
            raise ValueError(f"max_entities must be at least 1, got {max_entities}")
        self.reader = reader
        self.catalog = catalog
        self.max_entities = max_entities

    @classmethod
    def open(
        cls,
        store: Any,
        redis_url: str | None = None,
        *,
        max_entities: int = DEFAULT_MAX_ENTITIES,
        redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
        enforce_ttl: bool = True,
    ) -> FeatureBackend:
        """Read the registry now; Redis is first contacted by the first request."""
        reader = OnlineFeatureReader(
            store, redis_url, enforce_ttl=enforce_ttl, timeout=redis_timeout
        )
        return cls(reader, FeatureCatalog.from_store(store), max_entities=max_entities)

    def refresh(self, store: Any) -> None:
        """Re-read the registry (after `feast apply`)."""
        self.reader.refresh()
        self.catalog = FeatureCatalog.from_store(store)

    def features(self, request: FeatureRequest) -> FeatureResponse:
        """Validate against the registry first, then one pipelined read for all ids."""
        selection = self.catalog.select(request, self.max_entities)
        rows = self.reader.get(
            selection.spec, selection.ids, full_feature_names=request.full_feature_names
        )
        names = selection.names
        results = [
            EntityResult(
                entity_id=row[selection.join_key],
                found=any(row[name] is not None for name in names),
                features={name: row[name] for name in names},
            )
            for row in rows
        ]
        return FeatureResponse(
            feature_service=request.feature_service,
            features=request.features,
            entity_key=selection.join_key,
            feature_names=list(names),
            results=results,
        )

    def feature_services(self) -> FeatureServicesResponse:
        return FeatureServicesResponse(
            feature_services=[
                FeatureServiceInfo(
                    name=name,
                    description=service.description,
                    entity_key=self.catalog.join_key(service.features),
                    features=[f.ref for f in service.features],
                )
                for name, service in sorted(self.catalog.services.items())
            ]
        )

    def freshness(self) -> FreshnessResponse:
        views = []
        for name, view in sorted(self.catalog.views.items()):
            record = self.reader.freshness(name)
            views.append(
                ViewFreshness(
                    view=name,
                    ttl_seconds=view.ttl.total_seconds() if view.ttl else None,
                    materialization=Materialization(**asdict(record)) if record else None,
                )
            )
        return FreshnessResponse(views=views)


@contextmanager
def _http_errors() -> Iterator[None]:
    """Registry mismatches → 422 (FastAPI's shape); Redis failures → 503 with Retry-After."""
    try:
        yield
    except InvalidRequest as exc:
        raise RequestValidationError(exc.errors) from exc
    except UnknownFeatureError as exc:  # the registry changed after the catalog was read
        raise RequestValidationError([_error([], "unknown_feature", str(exc), None)]) from exc
    except redis.RedisError as exc:
        logger.warning("online store unavailable: %s: %s", type(exc).__name__, exc)
        raise HTTPException(
            status_code=503,
            detail=f"online feature store (Redis) unavailable: {type(exc).__name__}; retry later",
            headers={"Retry-After": "1"},
        ) from exc


def router(backend_provider: Callable[[], FeatureBackend]) -> APIRouter:
    """The `/v1` feature routes; `backend_provider()` is called per request, so a host app may
    build the backend late (e.g. in its lifespan) and keep it in its state."""
    api = APIRouter(prefix="/v1", tags=["features"])

    @api.post("/features", response_model=FeatureResponse, responses=_ERRORS)
    def get_online_features(request: FeatureRequest) -> FeatureResponse:
        """Online feature values of entities, for a feature service or a list of refs."""
        with _http_errors():
            return backend_provider().features(request)

    @api.get("/feature-services", response_model=FeatureServicesResponse)
    def list_feature_services() -> FeatureServicesResponse:
        """Every feature service in the registry with its feature refs and entity key."""
        return backend_provider().feature_services()

    @api.get("/features/freshness", response_model=FreshnessResponse, responses=_UNAVAILABLE)
    def feature_freshness() -> FreshnessResponse:
        """Per feature view: its TTL and its last successful materialization."""
        with _http_errors():
            return backend_provider().freshness()

    return api


def create_app(
    store: Any,
    redis_url: str | None = None,
    *,
    max_entities: int = DEFAULT_MAX_ENTITIES,
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
    enforce_ttl: bool = True,
) -> FastAPI:
    """The feature API on its own: the `/v1` routes, `/health` and `/ready`.

    The backend is built here, not in a lifespan hook: building it only reads the registry (the
    Redis pool connects lazily), and an app that is usable without entering its lifespan keeps
    tests and embedding simple.
    """
    backend = FeatureBackend.open(store, redis_url, max_entities=max_entities,
                                  redis_timeout=redis_timeout, enforce_ttl=enforce_ttl)  # fmt: skip
    app = FastAPI(title="Online feature API", version="1",
                  description="Online features from the Feast Redis store.")  # fmt: skip
    app.state.feature_backend = backend
    app.include_router(router(lambda: backend))

    @app.get("/health", response_model=Status, tags=["ops"])
    async def health() -> Status:
        """The process is up (touches nothing)."""
        return Status(status="ok")

    @app.get("/ready", response_model=Status, responses=_UNAVAILABLE, tags=["ops"])
    def ready() -> Status:
        """Redis answers PING within the timeout."""
        with _http_errors():
            backend.reader.ping()
        return Status(status="ready")

    return app


def app_from_env() -> FastAPI:
    """`uvicorn --factory features.api:app_from_env`: the store from `repo_path`'s yaml.

    As the process's entry point it also calls `gc.freeze()` once the app is built: Feast's
    imports leave a large heap, and full collections walking it raised the p99 of a 1,000-entity
    request from ~35 ms to ~150 ms (measured; docs/feature-store.md).
    """
    from feast import FeatureStore

    settings = FeatureApiSettings()  # type: ignore[call-arg]  # fields come from the environment
    store = FeatureStore(repo_path=settings.repo_path)
    limits = settings.model_dump(include={"max_entities", "redis_timeout", "enforce_ttl"})
    app = create_app(store, settings.redis_url, **limits)
    gc.collect()
    gc.freeze()
    return app
