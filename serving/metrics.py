"""Per-model request metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout.

Lambda's own metrics cannot tell how the app answered: a 503 (Redis down, no servable version) or
a 422 is a successful invocation. So the app reports each request itself: one JSON line per
request to a model endpoint (`/v1/models/{model}`, `.../predict`, `.../infer`), which CloudWatch
Logs turns into metrics. On Lambda, stdout goes to the function's log group; on EKS a log agent
with EMF support (Fluent Bit's `cloudwatch_logs` output with `log_format json/emf`, or the
CloudWatch agent) has to ship the container's stdout (docs/serving.md, "Request metrics").

A line carries two metric directives in one namespace: per `Model`, `Requests`, `Status4xx`,
`Status5xx` and `Latency` (ms, in the app); per `Model` and `ModelVersion`, `Predictions` (items
scored) -- only when a version answered (2xx). `Model` is a configured model or "unknown", so
requests for made-up names cannot create new metrics. The line is written with one
`sys.stdout.write` (not `logging`, whose Lambda log format could wrap it) after the app answered;
a failing write is logged and counted, never raised.

Handlers report what only they know (the version that answered, the items scored, the request
id) with `served_by`; the middleware measures the rest around the whole app, exception handlers
included, so the status it reports is the status the caller got.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Collection
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.settings import DEFAULT_METRICS_NAMESPACE, MetricsMode, MetricsSettings

logger = logging.getLogger(__name__)

UNKNOWN_MODEL = "unknown"
NO_VERSION = "none"  # ModelVersion of a request no version answered
MODEL_PARAM = "model"  # the path parameter that makes a route a model endpoint
_STATE_KEY = "served_by"  # where `served_by` leaves its report in the request's state
_MAX_REQUEST_ID = 128

Writer = Callable[[str], None]


def write_stdout(line: str) -> None:
    """One write and a flush: the line reaches the log as one event, not buffered behind others."""
    sys.stdout.write(line)
    sys.stdout.flush()


def accepted_request_id(given: str | None) -> str | None:
    """A caller's X-Request-ID if the app adopts it (1-128 printable characters), else None."""
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return None


def served_by(
    request: Request, version: str, *, predictions: int = 0, request_id: str | None = None
) -> None:
    """Report from a handler that `version` answered `request`, scoring `predictions` items."""
    setattr(request.state, _STATE_KEY, (version, predictions, request_id))


def emf_record(
    namespace: str,
    *,
    model: str,
    version: str | None,
    status: int,
    latency_ms: float,
    predictions: int,
    request_id: str | None,
    timestamp_ms: int,
) -> dict[str, Any]:
    """The EMF object of one request. `version` is the one that answered (None if none did); the
    per-version directive is present only when it did and the status is 2xx."""
    directives: list[dict[str, Any]] = [
        {
            "Namespace": namespace,
            "Dimensions": [["Model"]],
            "Metrics": [
                {"Name": "Requests", "Unit": "Count"},
                {"Name": "Status4xx", "Unit": "Count"},
                {"Name": "Status5xx", "Unit": "Count"},
                {"Name": "Latency", "Unit": "Milliseconds"},
            ],
        }
    ]
    answered = bool(version) and 200 <= status < 300
    if answered:
        directives.append(
            {
                "Namespace": namespace,
                "Dimensions": [["Model", "ModelVersion"]],
                "Metrics": [{"Name": "Predictions", "Unit": "Count"}],
            }
        )
    record: dict[str, Any] = {
        "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": directives},
        "Model": model,
        "ModelVersion": version if answered and version else NO_VERSION,
        "Requests": 1,
        "Status4xx": int(400 <= status < 500),
        "Status5xx": int(500 <= status < 600),
        "Latency": round(latency_ms, 3),
        "Predictions": predictions if answered else 0,
        "status": status,
    }
    if request_id is not None:
        record["request_id"] = request_id
    return record


class RequestMetrics:
    """Where and whether request metrics go: `mode` 'emf' writes each record as one line through
    `writer` (stdout by default); 'off' writes nothing (and the app installs no middleware)."""

    def __init__(
        self,
        mode: MetricsMode = "emf",
        namespace: str = DEFAULT_METRICS_NAMESPACE,
        *,
        writer: Writer = write_stdout,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in ("emf", "off"):
            raise ValueError(f"metrics mode {mode!r}: expected 'emf' or 'off'")
        self.enabled = mode == "emf"
        self.namespace = namespace
        self.clock = clock
        self._writer = writer
        self.written = 0
        self.failed = 0

    @classmethod
    def from_settings(cls, settings: MetricsSettings) -> RequestMetrics:
        return cls(settings.metrics, settings.metrics_namespace)

    def write(self, record: dict[str, Any]) -> None:
        """Write one record; a failure is counted and logged (the first, then every 1000th)."""
        if not self.enabled:
            return
        try:
            self._writer(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode())
            self.written += 1
        except Exception:  # a broken stdout or writer must not fail the request
            self.failed += 1
            if self.failed % 1000 == 1:
                logger.exception("request metrics: %d records could not be written", self.failed)


class RequestMetricsMiddleware:
    """ASGI middleware: one `RequestMetrics` record per request routed to a model endpoint."""

    def __init__(self, app: ASGIApp, *, metrics: RequestMetrics, models: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.models = frozenset(models)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        timestamp_ms = int(self.metrics.clock() * 1000)
        state = scope.setdefault("state", {})  # shared with the handlers' `request.state`
        status = 500  # what the caller gets when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            latency_ms = (time.perf_counter() - started) * 1000
            self._record(scope, state, status, latency_ms, timestamp_ms)

    def _record(
        self, scope: Scope, state: Any, status: int, latency_ms: float, timestamp_ms: int
    ) -> None:
        try:
            name = scope.get("path_params", {}).get(MODEL_PARAM)
            if not isinstance(name, str):  # not a model endpoint (/health, /ready, docs...)
                return
            version, predictions, request_id = None, 0, None
            report = state.get(_STATE_KEY) if isinstance(state, dict) else None
            if report is not None:
                version, predictions, request_id = report
            if request_id is None:
                request_id = accepted_request_id(_header(scope, b"x-request-id"))
            record = emf_record(
                self.metrics.namespace,
                model=name if name in self.models else UNKNOWN_MODEL,
                version=version,
                status=status,
                latency_ms=latency_ms,
                predictions=predictions,
                request_id=request_id,
                timestamp_ms=timestamp_ms,
            )
        except Exception:  # metrics never fail a request
            logger.exception("request metrics: could not build the record")
            return
        self.metrics.write(record)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
