"""In-process cost of a prediction: the proxy's request work against the raw floor.

The proxy side is what the predict route does minus HTTP and the framework: parse the JSON body
(`parse_predict_body`), `score_items` (pipelined HMGET via redis.asyncio, decode, assemble,
ONNX run) and the orjson response body, awaited one at a time on a uvloop loop, as uvicorn runs
it; the Redis timeout is raised to 1 s (this measures cost, not the timeout). The floor is a
blocking redis-py pipeline of the same HMGETs (no decoding) plus one `session.run` on a
prepared matrix of the same shape. Latencies in milliseconds.
"""

from __future__ import annotations

import asyncio
import functools
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import orjson
import redis
import uvloop

from benchmarks._timing import latencies_ms
from serving.local import MODEL, LocalServing
from serving.model import session_options
from serving.predict import parse_predict_body, score_items
from serving.runtime import build_runtime


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float


def _summary(values: list[float]) -> Timing:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return Timing(cuts[49], cuts[98])


def _bodies(ids: list[int], size: int, count: int, rng: random.Random) -> list[bytes]:
    if size == 1:
        return [orjson.dumps({"entity_id": rng.choice(ids)}) for _ in range(count)]
    return [
        orjson.dumps({"requests": [{"entity_id": i} for i in rng.sample(ids, size)]})
        for _ in range(count)
    ]


async def _time_async(call: Callable[[bytes], Awaitable[object]], bodies: list[bytes]) -> Timing:
    for body in bodies[:50]:
        await call(body)
    timings = []
    for body in bodies:
        started = time.perf_counter()
        await call(body)
        timings.append((time.perf_counter() - started) * 1000)
    return _summary(timings)


def _time_sync(call: Callable[[bytes], object], bodies: list[bytes]) -> Timing:
    return _summary(latencies_ms(call, bodies))


def _ignore_body(call: Callable[[], object]) -> Callable[[bytes], object]:
    return lambda _: call()


def measure(local: LocalServing, iterations: int, seed: int = 11) -> dict[str, Timing]:
    """p50/p99 of proxy and floor for 1 and 100 entities, plus ORT alone with 1 and 2 threads
    on a 100-row batch (the only place intra-op threads could pay)."""
    runtime = build_runtime(local.settings(redis_timeout_ms=1000))
    runtime.start()
    loaded = runtime.manager.get(MODEL)
    assert loaded is not None
    spec = runtime.spec.models[MODEL]
    rng = random.Random(seed)
    ids = list(local.entity_ids)
    client = redis.Redis.from_url(local.redis_url)
    keys_fields = spec.plan.fields

    async def proxy(body: bytes) -> object:
        parsed = parse_predict_body(body, spec, runtime.max_batch_size)
        items = [i for i in parsed.items if not isinstance(i, list)]
        scored = await score_items(runtime, loaded, spec, items, request_id="r", started=0.0)
        return orjson.dumps(scored)

    width = len(loaded.features)

    def floor(body: bytes) -> object:
        data = orjson.loads(body)
        entity_ids = [r["entity_id"] for r in data.get("requests", [data])]
        with client.pipeline(transaction=False) as pipe:
            for key in spec.plan.keys(entity_ids):
                pipe.hmget(key, keys_fields)  # type: ignore[arg-type]
            pipe.execute()
        matrix = np.zeros((len(entity_ids), width), dtype=np.float32)
        return loaded.session.run(None, {loaded.signature.input_name: matrix})

    results: dict[str, Timing] = {}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        for size in (1, 100):
            bodies = _bodies(ids, size, iterations, rng)
            results[f"proxy {size}"] = runner.run(_time_async(proxy, bodies))
            results[f"floor {size}"] = _time_sync(floor, bodies)
        runner.run(runtime.stop())
    results.update(_ort_threads(local, width, iterations))
    client.close()
    return results


def _ort_threads(local: LocalServing, width: int, iterations: int) -> dict[str, Timing]:
    import onnxruntime as ort

    model = local.model_root / MODEL / "model.onnx"
    matrix = np.random.default_rng(3).random((100, width), dtype=np.float32)
    out: dict[str, Timing] = {}
    for threads in (1, 2):
        options = session_options()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        run = functools.partial(session.run, None, {session.get_inputs()[0].name: matrix})
        out[f"ort 100 rows, {threads} thread(s)"] = _time_sync(
            _ignore_body(run), [b""] * iterations
        )
    return out
