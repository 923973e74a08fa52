"""Request metrics without Redis or a model: the EMF record, the two settings, the writer, and
the middleware around a stand-in app (including a handler that raises, which only a stand-in
can do)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from fastapi import FastAPI, Request
from pydantic import ValidationError

from serving.metrics import (
    RequestMetrics,
    RequestMetricsMiddleware,
    accepted_request_id,
    emf_record,
    served_by,
    write_stdout,
)
from serving.settings import MetricsSettings, ServingSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit

PER_MODEL = {
    "Namespace": "MLOps/Serving",
    "Dimensions": [["Model"]],
    "Metrics": [
        {"Name": "Requests", "Unit": "Count"},
        {"Name": "Status4xx", "Unit": "Count"},
        {"Name": "Status5xx", "Unit": "Count"},
        {"Name": "Latency", "Unit": "Milliseconds"},
    ],
}
PER_VERSION = {
    "Namespace": "MLOps/Serving",
    "Dimensions": [["Model", "ModelVersion"]],
    "Metrics": [{"Name": "Predictions", "Unit": "Count"}],
}


def record(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model": "credit-risk",
        "version": "3",
        "status": 200,
        "latency_ms": 1.23456,
        "predictions": 3,
        "request_id": "r-1",
        "timestamp_ms": 1_767_225_600_250,
        **changes,
    }
    return emf_record("MLOps/Serving", **values)


def test_a_served_request_has_both_directives() -> None:
    assert record() == {
        "_aws": {"Timestamp": 1_767_225_600_250, "CloudWatchMetrics": [PER_MODEL, PER_VERSION]},
        "Model": "credit-risk",
        "ModelVersion": "3",
        "Requests": 1,
        "Status4xx": 0,
        "Status5xx": 0,
        "Latency": 1.235,
        "Predictions": 3,
        "status": 200,
        "request_id": "r-1",
    }


@pytest.mark.parametrize(
    ("status", "four", "five"), [(404, 1, 0), (422, 1, 0), (503, 0, 1), (500, 0, 1)]
)
def test_a_failed_request_counts_its_class_and_no_version(
    status: int, four: int, five: int
) -> None:
    failed = record(status=status, version=None, predictions=0, request_id=None)
    assert failed["_aws"]["CloudWatchMetrics"] == [PER_MODEL]
    assert (failed["Status4xx"], failed["Status5xx"], failed["status"]) == (four, five, status)
    assert (failed["ModelVersion"], failed["Predictions"]) == ("none", 0)
    assert "request_id" not in failed


def test_a_reported_version_does_not_count_unless_the_answer_was_2xx() -> None:
    late = record(status=500, version="3", predictions=2)
    assert late["_aws"]["CloudWatchMetrics"] == [PER_MODEL]
    assert (late["ModelVersion"], late["Predictions"], late["Status5xx"]) == ("none", 0, 1)


def test_settings_default_to_off_and_the_platform_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLOPS_SERVING_METRICS", raising=False)
    monkeypatch.delenv("MLOPS_SERVING_METRICS_NAMESPACE", raising=False)
    settings = MetricsSettings()
    assert (settings.metrics, settings.metrics_namespace) == ("off", "MLOps/Serving")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SERVING_METRICS", "emf")
    monkeypatch.setenv("MLOPS_SERVING_METRICS_NAMESPACE", "Payments/Serving")
    monkeypatch.setenv("MLOPS_SERVING_SPEC", "{}")
    monkeypatch.setenv("MLOPS_SERVING_REDIS_URL", "redis://localhost:6379/0")
    alone, full = MetricsSettings(), ServingSettings()
    assert (alone.metrics, alone.metrics_namespace) == ("emf", "Payments/Serving")
    assert (full.metrics, full.metrics_namespace) == ("emf", "Payments/Serving")
    metrics = RequestMetrics.from_settings(alone)
    assert (metrics.enabled, metrics.namespace) == (True, "Payments/Serving")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"metrics": "prometheus"}, "Input should be 'emf' or 'off'"),
        ({"metrics_namespace": ""}, "a CloudWatch namespace has 1-255 characters"),
        ({"metrics_namespace": "x" * 256}, "a CloudWatch namespace has 1-255 characters"),
        ({"metrics_namespace": ":Serving"}, "does not start with ':'"),
        ({"metrics_namespace": "AWS/Lambda"}, "'AWS/' are reserved for AWS services"),
    ],
)
def test_bad_settings_are_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        MetricsSettings(**values)
    assert message in str(raised.value)


def test_the_longest_namespace_is_accepted() -> None:
    assert MetricsSettings(metrics_namespace="N" * 255).metrics_namespace == "N" * 255


def test_stdout_gets_exactly_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = RequestMetrics("emf")
    assert metrics.namespace == "MLOps/Serving"
    metrics.write(record())
    write_stdout("next\n")
    first, second, rest = capsys.readouterr().out.split("\n")
    assert json.loads(first) == record()
    assert (second, rest) == ("next", "")


def test_off_writes_nothing() -> None:
    lines: list[str] = []
    metrics = RequestMetrics("off", writer=lines.append)
    metrics.write(record())
    assert (lines, metrics.enabled, metrics.written) == ([], False, 0)


def test_a_failing_writer_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_: str) -> None:
        raise BrokenPipeError("stdout closed")

    metrics = RequestMetrics("emf", writer=broken)
    for _ in range(3):
        metrics.write(record())
    assert (metrics.written, metrics.failed) == (0, 3)
    logged = [r for r in caplog.records if r.name == "serving.metrics"]
    assert len(logged) == 1  # the first failure, not one per request
    assert "1 records could not be written" in logged[0].getMessage()


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 'emf' or 'off'"):
        RequestMetrics("statsd")  # type: ignore[arg-type]


def test_request_ids_are_adopted_as_the_app_adopts_them() -> None:
    assert accepted_request_id("abc-123") == "abc-123"
    assert accepted_request_id("x" * 128) == "x" * 128
    assert [accepted_request_id(v) for v in (None, "", "x" * 129, "a\nb")] == [None] * 4


def stand_in(lines: list[str]) -> FastAPI:
    """A model endpoint that answers, one that raises, and one that is not a model endpoint."""
    app = FastAPI()
    metrics = RequestMetrics("emf", writer=lines.append, clock=lambda: 1_767_225_600.0)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, models={"m"})

    @app.post("/v1/models/{model}/predict")
    async def predict(model: str, request: Request) -> dict[str, str]:
        served_by(request, "7", predictions=2, request_id="given")
        return {"model": model}

    @app.post("/v1/models/{model}/infer")
    async def infer(model: str) -> dict[str, str]:
        raise RuntimeError(f"bug scoring {model}")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def test_middleware_reports_the_answer_and_bounds_model_names() -> None:
    lines: list[str] = []
    client = TestClient(stand_in(lines), raise_server_exceptions=False)
    assert client.post("/v1/models/m/predict").status_code == 200
    assert client.post("/v1/models/made-up/predict").status_code == 200
    assert client.get("/health").status_code == 200
    served, made_up = (json.loads(line) for line in lines)
    assert served["_aws"]["Timestamp"] == 1_767_225_600_000
    assert (served["Model"], served["ModelVersion"], served["Predictions"]) == ("m", "7", 2)
    assert (served["request_id"], served["status"]) == ("given", 200)
    assert made_up["Model"] == "unknown"
    assert len(lines) == 2  # /health is not a model endpoint


def test_a_handler_that_raises_is_counted_as_a_5xx() -> None:
    lines: list[str] = []
    client = TestClient(stand_in(lines), raise_server_exceptions=False)
    response = client.post("/v1/models/m/infer", headers={"X-Request-ID": "caller-7"})
    assert response.status_code == 500
    (failed,) = (json.loads(line) for line in lines)
    assert (failed["Model"], failed["status"], failed["Status5xx"]) == ("m", 500, 1)
    assert (failed["ModelVersion"], failed["request_id"]) == ("none", "caller-7")
    assert failed["_aws"]["CloudWatchMetrics"] == [PER_MODEL]
