"""The proxy with one setting changed, for the tuning table (uvicorn factory `app`).

Read from the environment: `BENCH_ORT_THREADS` (intra-op threads, the app uses 1),
`BENCH_JSON=stdlib` (responses through `json.dumps` instead of orjson), `BENCH_REDIS=sync`
(features read with the blocking redis-py `PlanReader` inside the event loop instead of
redis.asyncio). The serving code is patched here, in the benchmark process only.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from fastapi import FastAPI, Response

import serving.app
import serving.model
from features.redis_plan import PlanReader, RedisPlan
from serving.runtime import build_runtime
from serving.settings import settings_from_env


def _session_options(threads: int) -> Any:
    def options() -> Any:
        opts = _original_options()
        opts.intra_op_num_threads = threads
        return opts

    return options


_original_options = serving.model.session_options


def _stdlib_json(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def app() -> FastAPI:
    threads = os.environ.get("BENCH_ORT_THREADS")
    if threads:
        serving.model.session_options = _session_options(int(threads))
    if os.environ.get("BENCH_JSON") == "stdlib":
        serving.app._json = _stdlib_json
    settings = settings_from_env()
    runtime = build_runtime(settings)
    if os.environ.get("BENCH_REDIS") == "sync":
        reader = PlanReader(redis.Redis.from_url(settings.redis_url or ""))

        async def fetch(plan: RedisPlan, entity_ids: list[int]) -> list[list[Any]]:
            return reader.read(plan, entity_ids)

        runtime.fetch = fetch  # type: ignore[method-assign]
    return serving.app.create_app(runtime)
