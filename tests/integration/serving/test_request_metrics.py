"""Request metrics from the real app: one valid EMF line per model request, with the counts, the
model dimension and the serving version CloudWatch will aggregate; nothing when off.

The app runs over the shared sample model and Redis with an injected writer and clock, so each
line is compared field by field (Latency, measured, is bounded by the caller's own timing). The
last test runs the Lambda entry point in a fresh interpreter: there the metrics are switched on
by the environment alone and the lines arrive on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from features.local_redis import free_port
from serving.app import create_app
from serving.local import MODEL, LocalServing
from serving.metrics import RequestMetrics, RequestMetricsMiddleware
from serving.runtime import build_runtime
from tests.conftest import REPO_ROOT
from tests.integration.serving.support import INFER, PREDICT, timed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

NAMESPACE = "MLOps/Test"
NOW = 1_767_225_600.25
NOW_MS = 1_767_225_600_250
UNKNOWN_ENTITY = 987_654_321
PER_MODEL = {
    "Namespace": NAMESPACE,
    "Dimensions": [["Model"]],
    "Metrics": [
        {"Name": "Requests", "Unit": "Count"},
        {"Name": "Status4xx", "Unit": "Count"},
        {"Name": "Status5xx", "Unit": "Count"},
        {"Name": "Latency", "Unit": "Milliseconds"},
    ],
}
PER_VERSION = {
    "Namespace": NAMESPACE,
    "Dimensions": [["Model", "ModelVersion"]],
    "Metrics": [{"Name": "Predictions", "Unit": "Count"}],
}


def assert_valid_emf(record: dict[str, Any]) -> None:
    """What CloudWatch needs to extract every metric: directives in one namespace, each metric a
    top-level number, each dimension a top-level non-empty string."""
    aws = record["_aws"]
    assert isinstance(aws["Timestamp"], int)
    for directive in aws["CloudWatchMetrics"]:
        assert directive["Namespace"] == NAMESPACE
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(record[key], str) and record[key], key
        for metric in directive["Metrics"]:
            value = record[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool), metric
            assert metric["Unit"] in ("Count", "Milliseconds")


def only_record(lines: list[str]) -> dict[str, Any]:
    """The single line written since `lines` was cleared, parsed and checked as EMF."""
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.endswith("\n") and line.count("\n") == 1
    record: dict[str, Any] = json.loads(line)
    assert_valid_emf(record)
    lines.clear()
    return record


def expected(
    status: int, *, model: str = MODEL, version: str | None = None, predictions: int = 0
) -> dict[str, Any]:
    """Every field but Latency and request_id."""
    return {
        "_aws": {
            "Timestamp": NOW_MS,
            "CloudWatchMetrics": [PER_MODEL, PER_VERSION] if version else [PER_MODEL],
        },
        "Model": model,
        "ModelVersion": version or "none",
        "Requests": 1,
        "Status4xx": int(400 <= status < 500),
        "Status5xx": int(status >= 500),
        "Predictions": predictions,
        "status": status,
    }


def without_measured(record: dict[str, Any], wall_ms: float) -> dict[str, Any]:
    latency = record.pop("Latency")
    assert 0 < latency <= wall_ms, (latency, wall_ms)
    return record


@pytest.fixture(scope="module")
def metered(local_serving: LocalServing) -> Iterator[tuple[TestClient, list[str]]]:
    lines: list[str] = []
    metrics = RequestMetrics("emf", NAMESPACE, writer=lines.append, clock=lambda: NOW)
    runtime = build_runtime(local_serving.settings(redis_timeout_ms=250))
    with TestClient(create_app(runtime, metrics=metrics)) as client:
        yield client, lines


@pytest.fixture
def version(metered: tuple[TestClient, list[str]]) -> str:
    client, lines = metered
    served: str = client.get(f"/v1/models/{MODEL}").json()["version"]
    lines.clear()
    return served


def test_a_single_prediction(
    metered: tuple[TestClient, list[str]], local_serving: LocalServing, version: str
) -> None:
    client, lines = metered
    body = {"entity_id": local_serving.entity_ids[0]}
    response, wall_ms = timed(client.post, PREDICT, json=body, headers={"X-Request-ID": "m-1"})
    assert response.status_code == 200, response.text
    record = without_measured(only_record(lines), wall_ms)
    assert record == {**expected(200, version=version, predictions=1), "request_id": "m-1"}


def test_a_batch_of_three_counts_three_predictions(
    metered: tuple[TestClient, list[str]], local_serving: LocalServing, version: str
) -> None:
    client, lines = metered
    batch = {"requests": [{"entity_id": i} for i in local_serving.entity_ids[:3]]}
    response, wall_ms = timed(client.post, PREDICT, json=batch)
    assert response.status_code == 200, response.text
    record = without_measured(only_record(lines), wall_ms)
    generated = response.json()["request_id"]
    assert record == {**expected(200, version=version, predictions=3), "request_id": generated}


def test_a_batch_counts_only_the_items_it_scored(
    metered: tuple[TestClient, list[str]], local_serving: LocalServing, version: str
) -> None:
    client, lines = metered
    items = [{"entity_id": local_serving.entity_ids[0]}, {"entity_id": "x"}]
    items.append({"entity_id": UNKNOWN_ENTITY})
    response = client.post(PREDICT, json={"requests": items})
    assert [sorted(r) for r in response.json()["responses"]] == [
        ["entity_id", "id", "missing_features", "score"], ["error"], ["entity_id", "error", "id"],
    ]  # fmt: skip
    record = only_record(lines)
    assert (record["Predictions"], record["ModelVersion"], record["status"]) == (1, version, 200)


@pytest.mark.parametrize(
    ("path", "body"),
    [(PREDICT, {"entity_id": "not a number"}), (INFER, {"instances": "not a list"})],
    ids=["predict", "infer"],
)
def test_an_invalid_body_is_a_4xx_no_version_answered(
    metered: tuple[TestClient, list[str]], path: str, body: dict[str, Any]
) -> None:
    client, lines = metered
    response, wall_ms = timed(client.post, path, json=body)
    assert response.status_code == 422
    assert without_measured(only_record(lines), wall_ms) == expected(422)
    response = client.post(path, json=body, headers={"X-Request-ID": "bad-1"})
    assert only_record(lines)["request_id"] == "bad-1"  # the caller's id, for correlation


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_model_is_counted_as_unknown(
    metered: tuple[TestClient, list[str]], method: str
) -> None:
    client, lines = metered
    suffix = "/predict" if method == "POST" else ""
    for name in ("no-such-model", "another-made-up-name"):
        response = client.request(method, f"/v1/models/{name}{suffix}", json={"entity_id": 1})
        assert response.status_code == 404
        record = only_record(lines)
        record.pop("Latency")
        assert record == expected(404, model="unknown")


def test_an_unknown_entity_is_a_4xx_of_the_model(
    metered: tuple[TestClient, list[str]],
) -> None:
    client, lines = metered
    response = client.post(PREDICT, json={"entity_id": UNKNOWN_ENTITY})
    assert response.json()["code"] == "entity_not_found"
    record = only_record(lines)
    record.pop("Latency")
    assert record == expected(404)


def test_model_info_and_infer_are_model_requests(
    metered: tuple[TestClient, list[str]], version: str
) -> None:
    client, lines = metered
    info = client.get(f"/v1/models/{MODEL}").json()
    record = only_record(lines)
    record.pop("Latency")
    assert record == expected(200, version=version, predictions=0)
    width = len(info["features"])
    response = client.post(INFER, json={"instances": [[0.5] * width, [None] * width]})
    assert len(response.json()["scores"]) == 2
    record = only_record(lines)
    assert (record["Predictions"], record["ModelVersion"]) == (2, version)
    assert record["request_id"] == response.json()["request_id"]


def test_operational_endpoints_and_docs_are_not_metered(
    metered: tuple[TestClient, list[str]],
) -> None:
    client, lines = metered
    lines.clear()
    for path in ("/health", "/ready", "/v1/models", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v1/models/x/y/z").status_code == 404  # no route: no model named
    assert lines == []


def test_a_feature_store_outage_is_a_5xx_of_the_model(local_serving: LocalServing) -> None:
    lines: list[str] = []
    metrics = RequestMetrics("emf", NAMESPACE, writer=lines.append, clock=lambda: NOW)
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: connection refused
    runtime = build_runtime(local_serving.settings(redis_url=nobody))
    with TestClient(create_app(runtime, metrics=metrics)) as client:
        body = {"entity_id": local_serving.entity_ids[0]}
        response, wall_ms = timed(client.post, PREDICT, json=body)
    assert response.status_code == 503
    assert response.json()["code"] == "feature_store_unavailable"
    assert without_measured(only_record(lines), wall_ms) == expected(503)


def test_off_installs_nothing_and_writes_nothing(local_serving: LocalServing) -> None:
    lines: list[str] = []
    metrics = RequestMetrics("off", NAMESPACE, writer=lines.append)
    app = create_app(build_runtime(local_serving.settings()), metrics=metrics)
    assert [m.cls for m in app.user_middleware] == []
    with TestClient(app) as client:
        assert client.post(PREDICT, json={"entity_id": local_serving.entity_ids[0]}).is_success
        assert client.post("/v1/models/nope/predict", json={}).status_code == 404
    assert lines == []


def test_the_environment_switches_metrics_on_stdout(
    local_serving: LocalServing,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLOPS_SERVING_METRICS", raising=False)
    quiet = create_app(build_runtime(local_serving.settings()))
    monkeypatch.setenv("MLOPS_SERVING_METRICS", "emf")
    monkeypatch.setenv("MLOPS_SERVING_METRICS_NAMESPACE", NAMESPACE)
    loud = create_app(build_runtime(local_serving.settings()))
    installed: list[object] = [m.cls for m in loud.user_middleware]
    assert (quiet.user_middleware, installed) == ([], [RequestMetricsMiddleware])
    capsys.readouterr()
    with TestClient(loud) as client:
        assert client.post("/v1/models/nope/predict", json={}).status_code == 404
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert_valid_emf(record)
    assert (record["Model"], record["status"], record["Status4xx"]) == ("unknown", 404, 1)


LAMBDA_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import serving.lambda_handler as entry

    def event(path, body):
        return {
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json", "x-request-id": "lambda-metrics"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "x", "domainName": "x.lambda-url.on.aws",
                "domainPrefix": "x", "requestId": "r1", "routeKey": "$default",
                "stage": "$default", "time": "21/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
            },
            "body": body, "isBase64Encoded": False,
        }

    class Context:
        function_name = "model-proxy"
        aws_request_id = "r1"

    for path in (sys.argv[1], "/v1/models/nope/predict"):
        entry.handler(event(path, sys.argv[2]), Context())
    """
)


def test_the_lambda_entry_point_writes_emf_to_stdout(local_serving: LocalServing) -> None:
    settings = local_serving.settings(redis_timeout_ms=250)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_SERVING_")},
        **{
            f"MLOPS_SERVING_{name.upper()}": str(value)
            for name, value in settings.model_dump(exclude_none=True).items()
            if name in {"spec_file", "redis_url", "model_source", "model_dir", "redis_timeout_ms"}
        },
        "MLOPS_SERVING_METRICS": "emf",
        "MLOPS_SERVING_METRICS_NAMESPACE": NAMESPACE,
        "PYTHONPATH": str(REPO_ROOT),
    }
    body = json.dumps({"entity_id": local_serving.entity_ids[0]})
    done = subprocess.run(
        [sys.executable, "-c", LAMBDA_SCRIPT, PREDICT, body],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if '"_aws"' in line]
    for record in records:
        assert_valid_emf(record)
    assert [(r["Model"], r["status"], r["request_id"]) for r in records] == [
        (MODEL, 200, "lambda-metrics"), ("unknown", 404, "lambda-metrics"),
    ]  # fmt: skip
    assert records[0]["Predictions"] == 1 and records[0]["ModelVersion"] != "none"
