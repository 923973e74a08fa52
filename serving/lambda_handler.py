"""Lambda entry point: the serving app through Mangum, its runtime built in the init phase.

Mangum runs an ASGI lifespan around *every* invocation, which would reload the models per
request, so it runs with `lifespan="off"` and the runtime (models, Redis client, log shipper) is
started here at import -- once per execution environment, in the init phase that provisioned
concurrency pre-warms. On Lambda the champion is read at init; a new model version reaches the
function with a new execution environment (a deployment), not by polling (`refresh_seconds` is
ignored here).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from mangum import Mangum

from serving.app import create_app
from serving.runtime import build_runtime
from serving.settings import settings_from_env

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))
_started = time.perf_counter()
asyncio.set_event_loop(asyncio.new_event_loop())  # Mangum drives the current loop per call
runtime = build_runtime(settings_from_env())
runtime.refresh_seconds = 0
runtime.start()
handler = Mangum(create_app(runtime, manage_runtime=False), lifespan="off")
INIT_SECONDS = time.perf_counter() - _started
logging.getLogger(__name__).info(
    "init %.0f ms; serving %s", INIT_SECONDS * 1000, runtime.manager.versions()
)
