"""Everything a serving process holds: the spec, the models, the Redis client, the prediction log.

`build_runtime(settings)` wires them from `ServingSettings`; `create_app(runtime)` serves them.
Separate from the app so Lambda can build and load it during the init phase (module scope) while
uvicorn does it in the app's lifespan -- the same objects either way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from features.redis_plan import PlanReader, RedisPlan, read_command
from serving.champion import (
    ChampionSource,
    DirectoryChampion,
    PinnedChampion,
    PointerChampion,
    RegistryChampion,
)
from serving.manager import ModelManager
from serving.predictlog import FirehoseSink, JsonLinesSink, PredictionLog
from serving.settings import ServingSettings
from serving.spec import ServingSpec

logger = logging.getLogger(__name__)


class FeatureStoreUnavailable(RuntimeError):
    """Redis did not answer in time (or refused); the request gets a 503."""


@dataclass
class ServingRuntime:
    spec: ServingSpec
    manager: ModelManager
    redis: aioredis.Redis
    redis_timeout: float
    max_batch_size: int
    refresh_seconds: float = 0
    prediction_log: PredictionLog | None = None
    reader: PlanReader = field(default_factory=PlanReader)
    started: bool = False

    def start(self) -> None:
        """Load every champion, then start the background refresh and the log shipper."""
        if self.started:
            return
        result = self.manager.refresh()
        logger.info(
            "models loaded %s, failed %s, without approved version %s",
            result.loaded,
            list(result.failed),
            result.missing,
        )
        self.manager.start_polling(self.refresh_seconds)
        if self.prediction_log is not None:
            self.prediction_log.start()
        # Everything built so far (framework, models, spec) lives as long as the process; moving
        # it out of the collector's generations keeps full collections -- which otherwise walk
        # every startup object and stall the event loop for tens of ms -- short.
        gc.collect()
        gc.freeze()
        self.started = True

    async def stop(self) -> None:
        self.manager.stop_polling()
        if self.prediction_log is not None:
            await asyncio.to_thread(self.prediction_log.flush)
            self.prediction_log.stop()
        await self.redis.aclose()
        self.started = False

    async def fetch(self, plan: RedisPlan, entity_ids: list[int]) -> list[list[Any]]:
        """Online features of `entity_ids`: one round trip, bounded by the timeout."""
        if not entity_ids:
            return []
        try:
            async with asyncio.timeout(self.redis_timeout * 2.5):
                execute: Callable[..., Awaitable[Any]] = self.redis.execute_command  # untyped
                replies = await execute(*read_command(plan, entity_ids))
        except (TimeoutError, aioredis.RedisError, OSError) as exc:
            raise FeatureStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return self.reader.decode(plan, replies)

    async def ping(self) -> str:
        try:
            async with asyncio.timeout(self.redis_timeout * 2.5):
                await self.redis.ping()  # type: ignore[misc]  # redis-py types sync|async
        except (TimeoutError, aioredis.RedisError, OSError) as exc:
            return f"unavailable: {type(exc).__name__}: {exc}"
        return "ok"


def redis_from_settings(settings: ServingSettings) -> aioredis.Redis:
    """An asyncio client whose every call fails within ~2 timeouts (one immediate retry)."""
    timeout = settings.redis_timeout_ms / 1000
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 0,
    }
    if settings.redis_url:
        return aioredis.Redis.from_url(settings.redis_url, **common)
    password = None
    if settings.redis_secret_arn:
        from features.store import redis_password_from_secret

        password = redis_password_from_secret(
            settings.redis_secret_arn, region=settings.region, endpoint_url=settings.endpoint_url
        )
    return aioredis.Redis(
        host=settings.redis_host or "",
        port=settings.redis_port,
        ssl=settings.redis_tls,
        password=password,
        **common,
    )


def _client(service: str, settings: ServingSettings) -> Any:
    import boto3

    return boto3.client(service, region_name=settings.region, endpoint_url=settings.endpoint_url)


class UnservedPinError(ValueError):
    """MLOPS_SERVING_PINNED_MODELS pins a model the spec does not serve."""


def champion_source(settings: ServingSettings, served: Collection[str]) -> ChampionSource:
    """The source `settings.model_source` names, wrapped by `PinnedChampion` when models are
    pinned. Raises `UnservedPinError` when a pinned model is not in `served` (a pin for
    another function's model is a deployment mistake, not something to ignore)."""
    unserved = sorted(set(settings.pinned_models) - set(served))
    if unserved:
        raise UnservedPinError(
            f"MLOPS_SERVING_PINNED_MODELS pins {unserved}, which this app does not serve "
            f"(it serves {sorted(served)})"
        )
    source = _unpinned_source(settings)
    if not settings.pinned_models:
        return source
    return PinnedChampion(
        settings.pinned_models, _client("sagemaker", settings), _client("s3", settings),
        Path(settings.model_cache_dir), fallback=source,
    )  # fmt: skip


def _unpinned_source(settings: ServingSettings) -> ChampionSource:
    cache = Path(settings.model_cache_dir)
    if settings.model_source == "directory":
        return DirectoryChampion(Path(settings.model_dir or ""))
    if settings.model_source == "champion":
        from mlops.deployments import ChampionPointer

        pointer = ChampionPointer(settings.champion_prefix or "", ssm=_client("ssm", settings))
        return PointerChampion(pointer, _client("s3", settings), cache)
    return RegistryChampion(_client("sagemaker", settings), _client("s3", settings), cache)


def prediction_log(settings: ServingSettings) -> PredictionLog | None:
    if settings.prediction_log_stream:
        sink = FirehoseSink(_client("firehose", settings), settings.prediction_log_stream)
        return PredictionLog(sink, max_queue=settings.prediction_log_queue)
    if settings.prediction_log_file:
        file_sink = JsonLinesSink(Path(settings.prediction_log_file))
        return PredictionLog(file_sink, max_queue=settings.prediction_log_queue)
    return None


def build_runtime(settings: ServingSettings) -> ServingRuntime:
    text = settings.spec
    if text is None:
        text = Path(settings.spec_file or "").read_text(encoding="utf-8")
    spec = ServingSpec.from_json(text)
    return ServingRuntime(
        spec=spec,
        manager=ModelManager(spec.models, champion_source(settings, spec.models)),
        redis=redis_from_settings(settings),
        redis_timeout=settings.redis_timeout_ms / 1000,
        max_batch_size=settings.max_batch_size,
        refresh_seconds=settings.refresh_seconds,
        prediction_log=prediction_log(settings),
    )
