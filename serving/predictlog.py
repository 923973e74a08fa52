"""Prediction logs for drift monitoring: asynchronous, bounded, never in a request's way.

A request only appends a tuple to a bounded queue (`put_nowait`); when the queue is full the
record is dropped and counted (`dropped`), so a slow or failing sink costs requests nothing. A
daemon thread serialises records to JSON lines and ships them in batches: to Kinesis Data
Firehose (`FirehoseSink`, which lands them in S3 -- on AWS and on the local engine alike) or to a
file (`JsonLinesSink`).

Record: {"model", "version", "request_id", "id", "ts", "latency_ms", "entity", "features",
"score"} -- one per scored item; `features` holds the model's inputs as served (None = missing).
On Lambda, records still queued when the execution environment is shut down are lost; at most
one flush interval's worth.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

logger = logging.getLogger(__name__)

FIREHOSE_MAX_RECORDS = 500
FIREHOSE_MAX_BYTES = 4 * 1024 * 1024
_STOP = object()


class Sink(Protocol):
    def send(self, lines: Sequence[bytes]) -> None:
        """Deliver newline-terminated JSON records; raise on failure."""


class FirehoseSink:
    def __init__(self, client: Any, stream: str) -> None:
        self._client = client
        self._stream = stream

    def send(self, lines: Sequence[bytes]) -> None:
        for chunk in _chunks(lines):
            records = [{"Data": line} for line in chunk]
            reply = self._client.put_record_batch(DeliveryStreamName=self._stream, Records=records)
            if reply.get("FailedPutCount"):
                failed = [
                    record
                    for record, result in zip(records, reply["RequestResponses"], strict=True)
                    if result.get("ErrorCode")
                ]
                retry = self._client.put_record_batch(
                    DeliveryStreamName=self._stream, Records=failed
                )
                if retry.get("FailedPutCount"):
                    raise RuntimeError(f"firehose rejected {retry['FailedPutCount']} records")


def _chunks(lines: Sequence[bytes]) -> list[Sequence[bytes]]:
    """Batches within PutRecordBatch's limits (500 records, 4 MiB)."""
    out: list[Sequence[bytes]] = []
    start = size = 0
    for index, line in enumerate(lines):
        full = index - start == FIREHOSE_MAX_RECORDS or size + len(line) > FIREHOSE_MAX_BYTES
        if index > start and full:
            out.append(lines[start:index])
            start, size = index, 0
        size += len(line)
    if start < len(lines):
        out.append(lines[start:])
    return out


class JsonLinesSink:
    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, lines: Sequence[bytes]) -> None:
        with self._path.open("ab") as handle:
            handle.write(b"".join(lines))


class PredictionLog:
    """The bounded queue and its shipping thread (`start`, `log`, `flush`, `stop`)."""

    def __init__(
        self, sink: Sink, *, max_queue: int = 10_000, batch: int = 500, interval: float = 1.0
    ) -> None:
        self._sink = sink
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._batch = batch
        self._interval = interval
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self.dropped = 0
        self.shipped = 0
        self.failed = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def log(self, record: dict[str, Any]) -> None:
        """Queue one record; never blocks (a full queue drops it and counts it)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been shipped (or failed); True if it did."""
        if self._thread is None:
            return self._queue.empty()
        self._idle.clear()
        self._queue.put(None)  # a marker: the worker sets `_idle` when it reaches it
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        pending: list[bytes] = []
        deadline = time.monotonic() + self._interval
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ...
            if isinstance(item, dict):
                pending.append(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE))
            due = item is ... or item is None or item is _STOP or len(pending) >= self._batch
            if due:
                self._ship(pending)
                pending = []
                deadline = time.monotonic() + self._interval
            if item is None:
                self._idle.set()
            if item is _STOP:
                return

    def _ship(self, lines: list[bytes]) -> None:
        if not lines:
            return
        try:
            self._sink.send(lines)
            self.shipped += len(lines)
        except Exception:  # any sink failure: count, log, keep serving
            self.failed += len(lines)
            logger.exception("prediction log: %d records could not be shipped", len(lines))
