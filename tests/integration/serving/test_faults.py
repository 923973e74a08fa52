"""Redis down or hung: fast 503s with Retry-After, and recovery without a restart.

Each test runs its own app (default 20 ms Redis timeout) over real HTTP (uvicorn in a thread)
against a Redis it controls: a `redis-server` stopped and started again on the same port, or a
TCP server that accepts connections and never answers.
"""

from __future__ import annotations

import gc
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from features.local_redis import free_port
from serving.app import create_app
from serving.local import MODEL, LocalServing
from serving.runtime import build_runtime
from serving.spec import ServingSpec
from tests.integration.serving.support import PREDICT, ServerThread, timed

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

# The app bounds a Redis read by 2.5 x redis_timeout_ms: 50 ms at the default 20 ms.
BOUND_MS = 50
COPIED = 10


class RedisOnPort:
    """A `redis-server` that can be stopped and started again on the same port."""

    def __init__(self, port: int, work_dir: Path) -> None:
        self.port, self._dir = port, work_dir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self._dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


def copy_entities(local: LocalServing, port: int, ids: tuple[int, ...]) -> None:
    """`ids`' feature hashes from the shared Redis into the one on `port` (DUMP/RESTORE)."""
    plan = ServingSpec.from_json(local.spec_file.read_text(encoding="utf-8")).models[MODEL].plan
    source = redis.Redis.from_url(local.redis_url)
    target = redis.Redis(port=port)
    for key in plan.keys(ids):
        dumped = source.dump(key)
        assert dumped is not None, "the shared Redis should hold every sample customer"
        target.restore(key, 0, dumped, replace=True)  # type: ignore[arg-type]
    source.close()
    target.close()


@pytest.fixture
def redis_on_port(local_serving: LocalServing, tmp_path: Path) -> Iterator[RedisOnPort]:
    server = RedisOnPort(free_port(), tmp_path / "redis")
    server.start()
    copy_entities(local_serving, server.port, local_serving.entity_ids[:COPIED])
    yield server
    server.stop()


class SilentServer:
    """Accepts TCP connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self._held.append(self._sock.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


def assert_fast_503(http: httpx.Client, entity: int) -> float:
    response, ms = timed(http.post, PREDICT, json={"entity_id": entity})
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "feature_store_unavailable"
    assert ms <= BOUND_MS, f"503 after {ms:.1f} ms"
    return ms


@pytest.fixture(autouse=True)
def _no_collector_pauses() -> Iterator[None]:
    """These tests time the app's own 20 ms Redis budget, in a test process whose heap holds
    every earlier test's objects: a full garbage collection there can pause the event loop past
    the budget (seen as a 91 ms 503, and as 503s right after Redis came back). The app in
    service has a small heap of its own; the collector is paused while these run."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_redis_stopped_then_back_recovers_without_restart(
    local_serving: LocalServing, redis_on_port: RedisOnPort, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{redis_on_port.port}/0"
    app = create_app(build_runtime(local_serving.settings(redis_url=url)))
    entity = local_serving.entity_ids[0]
    with ServerThread(app) as base, httpx.Client(base_url=base, timeout=5) as http:
        assert http.post(PREDICT, json={"entity_id": entity}).status_code == 200
        redis_on_port.stop()
        times = [assert_fast_503(http, entity) for _ in range(10)]
        ready = http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["redis"].startswith("unavailable: ")
        redis_on_port.start()
        copy_entities(local_serving, redis_on_port.port, local_serving.entity_ids[:COPIED])
        statuses = [http.post(PREDICT, json={"entity_id": entity}).status_code for _ in range(5)]
        assert statuses == [200] * 5, "the same app instance serves again once Redis is back"
        assert http.get("/ready").status_code == 200
    logger.info("Redis stopped: 503 in %.1f ms at most (median %.1f)", max(times), sorted(times)[5])


def test_hung_redis_is_a_fast_503(local_serving: LocalServing) -> None:
    silent = SilentServer()
    url = f"redis://127.0.0.1:{silent.port}/0"
    app = create_app(build_runtime(local_serving.settings(redis_url=url)))
    try:
        with ServerThread(app) as base, httpx.Client(base_url=base, timeout=5) as http:
            times = [assert_fast_503(http, local_serving.entity_ids[0]) for _ in range(10)]
            batch = {"requests": [{"entity_id": i} for i in local_serving.entity_ids[:5]]}
            assert http.post(PREDICT, json=batch).status_code == 503
            ready, ready_ms = timed(http.get, "/ready")
            assert ready.status_code == 503
            assert ready.json()["redis"].startswith("unavailable: TimeoutError")
            assert ready_ms <= BOUND_MS
            assert http.get("/health").status_code == 200
    finally:
        silent.close()
    logger.info("hung Redis: 503 in %.1f ms at most (median %.1f)", max(times), sorted(times)[5])
