"""Bad input against the real app (real Redis, real model): status codes and field-level errors.

Every 422 is asserted on its `loc` and `msg`, the way a client would read it; scores are
compared with the model's ONNX file run here on features read through Feast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.local import LocalServing
from tests.integration.serving.support import INFER, PREDICT, onnx_scores

pytestmark = pytest.mark.integration

UNKNOWN_ENTITY = 5
WIDTH = 14


def errors(response: Any) -> list[tuple[tuple[Any, ...], str, str]]:
    assert response.status_code == 422, response.text
    return [(tuple(e["loc"]), e["type"], e["msg"]) for e in response.json()["detail"]]


def post(client: TestClient, path: str, body: bytes) -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"entity_id": ', ((("body",), "json_invalid"),)),
        (b'{"entity_id": NaN}', ((("body",), "json_invalid"),)),
        (b'{"entity_id": Infinity}', ((("body",), "json_invalid"),)),
        (b'{"entity_id": 1e400}', ((("body",), "json_invalid"),)),
        (b"[1, 2]", ((("body",), "model_type"),)),
        (b'"text"', ((("body",), "model_type"),)),
        (b'{"entity_id": "1000001"}', ((("body", "entity_id"), "int_type"),)),
        (b'{"entity_id": true}', ((("body", "entity_id"), "int_type"),)),
        (b'{"entity_id": 1000001.0}', ((("body", "entity_id"), "int_type"),)),
        (b'{"entity_id": 9223372036854775808}', ((("body", "entity_id"), "less_than_equal"),)),
        (
            b'{"entity_id": -9223372036854775809}',  # orjson reads it as a float
            ((("body", "entity_id"), "int_type"),),
        ),
        (b'{"entity_id": 18446744073709551616}', ((("body", "entity_id"), "int_type"),)),
        (b"{}", ((("body", "entity_id"), "missing"),)),
        (b'{"id": "a"}', ((("body", "entity_id"), "missing"),)),
        (b'{"entity_id": 1000001, "score": 1}', ((("body", "score"), "extra_forbidden"),)),
        (b'{"requests": []}', ((("body", "requests"), "list_type"),)),
        (b'{"requests": {"entity_id": 1}}', ((("body", "requests"), "list_type"),)),
        (b'{"requests": [{"entity_id": 1}], "x": 1}', ((("body", "x"), "extra_forbidden"),)),
        (
            b'{"entity_id": 1000001, "request_features": {"amount": 1.0}}',
            ((("body", "request_features", "amount"), "extra_forbidden"),),
        ),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(
    client: TestClient, body: bytes, expected: tuple[tuple[tuple[str, ...], str], ...]
) -> None:
    found = errors(post(client, PREDICT, body))
    assert [(loc, kind) for loc, kind, _ in found] == list(expected)
    assert all(msg for _, _, msg in found)


def test_messages_say_what_is_wrong(client: TestClient) -> None:
    (msg,) = [m for *_, m in errors(post(client, PREDICT, b'{"entity_id": 1e400}'))]
    assert "infinity" in msg
    (msg,) = [m for *_, m in errors(post(client, PREDICT, b'{"entity_id": "7"}'))]
    assert msg == "Input should be a valid integer"
    body = b'{"entity_id": 1, "request_features": {"amount": 1.0}}'
    (msg,) = [m for *_, m in errors(post(client, PREDICT, body))]
    assert msg == "not a request feature of this model; expected []"


def test_a_batch_over_the_limit_is_refused_whole(client: TestClient) -> None:
    items = [{"entity_id": 1_000_001}] * 101
    found = errors(client.post(PREDICT, json={"requests": items}))
    assert found == [(("body", "requests"), "too_long", "at most 100 items per batch, got 101")]
    assert client.post(PREDICT, json={"requests": items[:100]}).status_code == 200


def test_a_body_over_8_mib_is_a_413(client: TestClient) -> None:
    response = post(client, PREDICT, b" " * (8 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_an_unknown_model_is_a_404_listing_the_served_ones(client: TestClient) -> None:
    response = client.post("/v1/models/nope/predict", json={"entity_id": 1})
    assert response.status_code == 404
    assert response.json() == {
        "detail": "unknown model 'nope'; served: ['credit-risk']",
        "code": "unknown_model",
    }
    assert client.get("/v1/models/nope").status_code == 404
    assert client.post("/v1/models/nope/infer", json={"instances": [[1.0]]}).status_code == 404


def test_a_single_unknown_entity_is_a_404(client: TestClient) -> None:
    response = client.post(PREDICT, json={"entity_id": UNKNOWN_ENTITY})
    assert response.status_code == 404
    assert response.json()["code"] == "entity_not_found"
    assert "customer_id=5" in response.json()["detail"]


def test_a_mixed_batch_answers_every_item_in_order(
    client: TestClient,
    local_serving: LocalServing,
    feature_vectors: dict[int, list[float]],
    model_dir: Path,
) -> None:
    first, second = local_serving.entity_ids[:2]
    items: list[Any] = [
        {"id": "a", "entity_id": first},
        {"id": "b", "entity_id": UNKNOWN_ENTITY},
        {"id": "c", "entity_id": "x"},
        {"id": "d", "entity_id": second, "extra": 1},
        {"id": "e", "entity_id": second},
        [1],
    ]
    response = client.post(PREDICT, json={"requests": items})
    assert response.status_code == 200, response.text
    out = response.json()["responses"]
    expected = onnx_scores(model_dir, np.array([feature_vectors[first], feature_vectors[second]]))
    assert [r.get("id") for r in out] == ["a", "b", None, None, "e", None]
    assert out[0]["score"] == pytest.approx(expected[0], rel=1e-6)
    assert out[4]["score"] == pytest.approx(expected[1], rel=1e-6)
    assert out[1]["error"]["code"] == "entity_not_found"
    assert out[1]["entity_id"] == UNKNOWN_ENTITY
    fields = [[(tuple(f["loc"]), f["type"]) for f in r["error"]["fields"]] for r in out[2:6:3]]
    assert fields == [
        [(("body", "requests", 2, "entity_id"), "int_type")],
        [(("body", "requests", 5), "model_type")],
    ]
    assert out[3]["error"]["fields"][0]["loc"] == ["body", "requests", 3, "extra"]
    assert out[3]["error"]["message"] == "body.requests.3.extra: Extra inputs are not permitted"


def test_a_batch_of_only_bad_items_answers_each_item(client: TestClient) -> None:
    response = client.post(PREDICT, json={"requests": [{"entity_id": "x"}, {"nope": 1}]})
    assert response.status_code == 200
    codes = [r["error"]["code"] for r in response.json()["responses"]]
    assert codes == ["invalid_request", "invalid_request"]


def test_scores_equal_the_onnx_model_on_feast_features(
    client: TestClient, feature_vectors: dict[int, list[float]], model_dir: Path
) -> None:
    ids = list(feature_vectors)
    expected = onnx_scores(model_dir, np.array([feature_vectors[i] for i in ids]))
    single = client.post(PREDICT, json={"entity_id": ids[0], "id": "one"})
    assert single.status_code == 200
    body = single.json()
    assert (body["id"], body["entity_id"], body["missing_features"]) == ("one", ids[0], [])
    assert body["score"] == pytest.approx(expected[0], rel=1e-6)
    assert single.headers["x-model-version"] == body["version"]
    batch = client.post(PREDICT, json={"requests": [{"entity_id": i} for i in ids]})
    scores = [r["score"] for r in batch.json()["responses"]]
    assert scores == pytest.approx(expected, rel=1e-6)
    assert len(set(scores)) > 5, "the sample model should not score everyone alike"


def test_infer_scores_the_given_vectors(
    client: TestClient, feature_vectors: dict[int, list[float]], model_dir: Path
) -> None:
    rows = [feature_vectors[i] for i in list(feature_vectors)[:5]]
    with_missing: list[float | None] = [None, *rows[0][1:]]
    response = client.post(INFER, json={"instances": [*rows, with_missing]})
    assert response.status_code == 200, response.text
    nan_row = [float("nan"), *rows[0][1:]]
    assert response.json()["scores"] == pytest.approx(
        onnx_scores(model_dir, np.array([*rows, nan_row])), rel=1e-6
    )


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        (b"[[1, 2]]", [(("body", "instances", 0), "wrong_length")]),
        (b"[]", [(("body", "instances"), "too_short")]),
        (b"[[NaN" + b", 1" * (WIDTH - 1) + b"]]", [(("body", "instances", 0, 0), "finite_number")]),
        (
            b"[[1e400" + b", 1" * (WIDTH - 1) + b"]]",
            [(("body", "instances", 0, 0), "finite_number")],
        ),
        (b'[["a"' + b", 1" * (WIDTH - 1) + b"]]", [(("body", "instances", 0, 0), "float_parsing")]),
        (b"[[1,]]", [(("body", 18), "json_invalid")]),
        (b"[[[-9223372036854775809]]]", [(("body", "instances", 0, 0), "float_type")]),
    ],
)
def test_infer_rejects_bad_vectors(
    client: TestClient, instances: bytes, expected: list[tuple[tuple[Any, ...], str]]
) -> None:
    found = errors(post(client, INFER, b'{"instances": ' + instances + b"}"))
    assert [(loc, kind) for loc, kind, _ in found][: len(expected)] == expected


def test_infer_refuses_more_instances_than_the_batch_limit(client: TestClient) -> None:
    found = errors(client.post(INFER, json={"instances": [[1.0] * WIDTH] * 101}))
    assert found == [(("body", "instances"), "too_long", "at most 100 instances, got 101")]


def test_infer_without_a_json_content_type_is_a_422(client: TestClient) -> None:
    response = client.post(INFER, content=b'{"instances": [[1]]}')
    assert response.status_code == 422
