"""The prediction log: every scored item lands in the sink as the response said, and a slow or
failing sink costs requests nothing (records are dropped and counted instead)."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.local import MODEL, LocalServing
from serving.predictlog import PredictionLog
from serving.runtime import build_runtime
from tests.integration.serving.support import PREDICT, signature_features, timed

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)


def test_each_prediction_is_logged_as_answered(
    local_serving: LocalServing, feature_vectors: dict[int, list[float]], tmp_path: Path
) -> None:
    log_file = tmp_path / "predictions.jsonl"
    runtime = build_runtime(
        local_serving.settings(prediction_log_file=str(log_file), redis_timeout_ms=250)
    )
    ids = list(feature_vectors)[:12]
    with TestClient(create_app(runtime)) as client:
        singles = [
            client.post(PREDICT, json={"entity_id": i, "id": f"s{i}"}).json() for i in ids[:6]
        ]
        batch = client.post(
            PREDICT, json={"requests": [{"entity_id": i, "id": f"b{i}"} for i in ids[6:]]}
        ).json()
        assert runtime.prediction_log is not None
        assert runtime.prediction_log.flush()
    answered = [(s["request_id"], s) for s in singles]
    answered += [
        (batch["request_id"], {**r, "version": batch["version"]}) for r in batch["responses"]
    ]
    records = [orjson.loads(line) for line in log_file.read_bytes().splitlines()]
    assert len(records) == len(ids)
    names = signature_features(local_serving.model_root / MODEL)
    for record, (request_id, answer) in zip(records, answered, strict=True):
        assert (record["model"], record["version"]) == (MODEL, answer["version"])
        assert (record["request_id"], record["id"]) == (request_id, answer["id"])
        assert (record["entity"], record["score"]) == (answer["entity_id"], answer["score"])
        assert list(record["features"]) == names
        assert list(record["features"].values()) == pytest.approx(
            feature_vectors[answer["entity_id"]], rel=1e-6
        )
        assert record["latency_ms"] >= 0
    assert runtime.prediction_log.shipped == len(ids)


class StuckSink:
    """A sink whose every send takes a second (a throttled stream), or raises."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0
        self.entered = threading.Event()

    def send(self, lines: Sequence[bytes]) -> None:
        self.calls += 1
        self.entered.set()
        if self.fail:
            raise ConnectionError("stream unavailable")
        time.sleep(1.0)


@pytest.mark.parametrize("fail", [False, True], ids=["slow sink", "failing sink"])
def test_a_bad_sink_does_not_slow_requests(
    local_serving: LocalServing, tmp_path: Path, fail: bool
) -> None:
    runtime = build_runtime(local_serving.settings(redis_timeout_ms=250))
    sink = StuckSink(fail=fail)
    log = PredictionLog(sink, max_queue=5, batch=1, interval=0.01)
    runtime.prediction_log = log
    entity = local_serving.entity_ids[0]
    with TestClient(create_app(runtime)) as client:
        client.post(PREDICT, json={"entity_id": entity})
        assert sink.entered.wait(2)
        timings = [timed(client.post, PREDICT, json={"entity_id": entity}) for _ in range(40)]
    assert [r.status_code for r, _ in timings] == [200] * 40
    latencies = [ms for _, ms in timings]
    assert statistics.median(latencies) < 50 and max(latencies) < 500, latencies
    if fail:
        assert log.failed > 0 and log.failed + log.dropped == 41, "each record failed or dropped"
    else:
        assert log.dropped >= 40 - 5 - 2, "a full queue drops records instead of waiting"
    logger.info("%s sink: median %.1f ms, max %.1f ms, dropped %d, failed %d",
                "failing" if fail else "slow", statistics.median(latencies), max(latencies),
                log.dropped, log.failed)  # fmt: skip
