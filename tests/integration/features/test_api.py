"""The feature API over a real Redis: results equal the reader's, bad input is a 422 naming the
field, a Redis that is down or hung is a quick 503, and the app recovers when Redis returns."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Int64
from pydantic import ValidationError

from features import local_redis
from features.api import app_from_env, create_app
from features.local_redis import LocalRedis, free_port
from features.materialize import materialize
from features.online import OnlineFeatureReader
from features.repo import SERVICE_NAME, TTLS
from features.store import feature_store_config, open_store, write_feature_store_yaml
from pipelines import sample_data as sd
from tests.integration.features.conftest import (
    EXPIRED_IDS,
    FIRST_ID,
    UNKNOWN_IDS,
    FeatureEnv,
)

pytestmark = pytest.mark.integration

URL = "/v1/features"
TIMEOUT = 0.2
KNOWN_IDS = list(range(FIRST_ID + 10, FIRST_ID + 30))
# Never-materialized, past-TTL and known ids, with repeats.
IDS = [UNKNOWN_IDS[0], *KNOWN_IDS, *EXPIRED_IDS[:2], KNOWN_IDS[0], UNKNOWN_IDS[2], KNOWN_IDS[0]]
NOT_FOUND = {*UNKNOWN_IDS, *EXPIRED_IDS}
REFS = [f"{sd.TRANSACTION_VIEW}:txn_count_7d", f"{sd.PROFILE_VIEW}:age"]
OK_ENTITIES = {sd.ENTITY: [FIRST_ID]}


def by_service(ids: list[int]) -> dict[str, Any]:
    return {"feature_service": SERVICE_NAME, "entities": {sd.ENTITY: ids}}


@pytest.fixture(scope="module")
def client(feature_env: FeatureEnv) -> TestClient:
    return TestClient(create_app(feature_env.store, feature_env.redis_url, redis_timeout=TIMEOUT))


@pytest.fixture(scope="module")
def reader(feature_env: FeatureEnv) -> OnlineFeatureReader:
    return OnlineFeatureReader(feature_env.store, feature_env.redis_url)


def _as_results(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Reader rows in the API's result shape."""
    return [
        {"entity_id": row[sd.ENTITY], "found": row[sd.ENTITY] not in NOT_FOUND,
         "features": {name: row[name] for name in names}}
        for row in rows
    ]  # fmt: skip


def test_service_request_equals_the_reader(client: TestClient, reader: OnlineFeatureReader) -> None:
    response = client.post(URL, json=by_service(IDS))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["feature_service"] == SERVICE_NAME and body["features"] is None
    assert body["entity_key"] == sd.ENTITY
    assert body["feature_names"] == list(sd.FEATURES)
    assert body["results"] == _as_results(reader.get(SERVICE_NAME, IDS), list(sd.FEATURES))
    assert [r["entity_id"] for r in body["results"]] == IDS
    assert body["results"][1] == body["results"][-3] == body["results"][-1]  # repeats repeat
    assert all(value is not None for value in body["results"][1]["features"].values())


@pytest.mark.parametrize("full", [False, True])
def test_refs_request_equals_the_reader(
    client: TestClient, reader: OnlineFeatureReader, full: bool
) -> None:
    request = {"features": REFS, "entities": {sd.ENTITY: IDS}, "full_feature_names": full}
    response = client.post(URL, json=request)

    assert response.status_code == 200, response.text
    body = response.json()
    names = (["customer_transactions__txn_count_7d", "customer_profile__age"] if full
             else ["txn_count_7d", "age"])  # fmt: skip
    assert body["feature_names"] == names
    assert body["features"] == REFS and body["feature_service"] is None
    assert body["results"] == _as_results(reader.get(REFS, IDS, full_feature_names=full), names)


def test_unknown_and_expired_ids_are_not_found_with_null_features(client: TestClient) -> None:
    ids = [*UNKNOWN_IDS, *EXPIRED_IDS]
    response = client.post(URL, json=by_service(ids))

    assert response.status_code == 200, response.text
    for result, entity_id in zip(response.json()["results"], ids, strict=True):
        assert result == {"entity_id": entity_id, "found": False,
                          "features": dict.fromkeys(sd.FEATURES)}  # fmt: skip


def test_unknown_service_and_refs_are_422_listing_the_valid_ones(client: TestClient) -> None:
    service = client.post(URL, json={"feature_service": "credit_risk_v9", "entities": OK_ENTITIES})
    refs = client.post(URL, json={"features": ["customer_profile:agee", REFS[0], "age"],
                                  "entities": OK_ENTITIES})  # fmt: skip

    assert service.status_code == 422
    [error] = service.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "feature_service"], "unknown_feature_service")
    assert error["ctx"]["valid"] == [SERVICE_NAME] and SERVICE_NAME in error["msg"]
    assert refs.status_code == 422
    errors = refs.json()["detail"]
    assert [e["loc"] for e in errors] == [["body", "features", 0], ["body", "features", 2]]
    valid = errors[0]["ctx"]["valid"]
    assert len(valid) == len(sd.FEATURES) and f"{sd.PROFILE_VIEW}:age" in valid


INVALID: list[tuple[str, Any, list[str | int], str]] = [
    ("malformed JSON", b'{"feature_service": "credit_risk_v1", ', ["body", 38], "json_invalid"),
    ("not an object", [SERVICE_NAME], ["body"], "model_attributes_type"),
    ("no entities", {"feature_service": SERVICE_NAME}, ["body", "entities"], "missing"),
    ("both specs", {"feature_service": SERVICE_NAME, "features": REFS, "entities": OK_ENTITIES},
     ["body"], "feature_spec_count"),
    ("neither spec", {"entities": OK_ENTITIES}, ["body"], "feature_spec_count"),
    ("service not a string", {"feature_service": 1, "entities": OK_ENTITIES},
     ["body", "feature_service"], "string_type"),
    ("no refs", {"features": [], "entities": OK_ENTITIES}, ["body", "features"], "too_short"),
    ("repeated ref", {"features": [REFS[0], REFS[0]], "entities": OK_ENTITIES},
     ["body", "features", 1], "duplicate_feature"),
    ("id as a string", {"feature_service": SERVICE_NAME, "entities": {sd.ENTITY: ["1000001"]}},
     ["body", "entities", sd.ENTITY, 0], "int_type"),
    ("fractional id", {"feature_service": SERVICE_NAME, "entities": {sd.ENTITY: [1, 2.5]}},
     ["body", "entities", sd.ENTITY, 1], "int_type"),
    ("id beyond int64", {"feature_service": SERVICE_NAME, "entities": {sd.ENTITY: [2**63]}},
     ["body", "entities", sd.ENTITY, 0], "less_than_equal"),
    ("entities a list", {"feature_service": SERVICE_NAME, "entities": [FIRST_ID]},
     ["body", "entities"], "dict_type"),
    ("no ids", {"feature_service": SERVICE_NAME, "entities": {sd.ENTITY: []}},
     ["body", "entities", sd.ENTITY], "too_short"),
    ("no entity key", {"feature_service": SERVICE_NAME, "entities": {}},
     ["body", "entities"], "entity_key_count"),
    ("two entity keys", {"feature_service": SERVICE_NAME, "entities": {sd.ENTITY: [1], "x": [2]}},
     ["body", "entities"], "entity_key_count"),
    ("unknown entity key", {"feature_service": SERVICE_NAME, "entities": {"user_id": [1]}},
     ["body", "entities", "user_id"], "unknown_entity_key"),
    ("unknown field", {"feature_service": SERVICE_NAME, "entities": OK_ENTITIES, "view": "x"},
     ["body", "view"], "extra_forbidden"),
    ("full_feature_names not a bool",
     {"feature_service": SERVICE_NAME, "entities": OK_ENTITIES, "full_feature_names": "yes"},
     ["body", "full_feature_names"], "bool_type"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "loc", "kind"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])  # fmt: skip
def test_invalid_requests_are_422_naming_the_field(
    client: TestClient, body: Any, loc: list[str | int], kind: str
) -> None:
    if isinstance(body, bytes):
        response = client.post(URL, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(URL, json=body)

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (loc, kind)
    if kind == "feature_spec_count":  # both or neither spec: the message names the two fields
        assert "'feature_service'" in error["msg"] and "'features'" in error["msg"]
    if kind == "unknown_entity_key":
        assert error["ctx"]["valid"] == [sd.ENTITY]


def test_entity_count_limit(feature_env: FeatureEnv, client: TestClient) -> None:
    small = TestClient(create_app(feature_env.store, feature_env.redis_url, max_entities=5))

    def post(app: TestClient, count: int) -> Any:
        ids = list(range(FIRST_ID, FIRST_ID + count))
        return app.post(URL, json=by_service(ids))

    assert post(small, 5).status_code == 200
    assert post(client, 1000).status_code == 200
    for app, limit in ((small, 5), (client, 1000)):
        response = post(app, limit + 1)
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["type"] == "too_many_entities" and error["ctx"] == {"max": limit}
        assert error["loc"] == ["body", "entities", sd.ENTITY]


def test_entity_keys_come_from_the_registry(feature_env: FeatureEnv, tmp_path: Path) -> None:
    """Merchant views next to the customer ones: each request's join key is its views' key."""
    pd.DataFrame({"merchant_id": [1], "event_timestamp": [pd.Timestamp.now(tz="UTC")],
                  "volume": [3]}).to_parquet(tmp_path / "m.parquet")  # fmt: skip
    source = FileSource(path=str(tmp_path / "m.parquet"), timestamp_field="event_timestamp")
    merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
    views = [FeatureView(name=name, entities=[merchant], source=source,
                         schema=[Field(name="volume", dtype=Int64)])
             for name in ("merchant_stats", "merchant_risk")]  # fmt: skip
    store, _ = feature_env.new_store()  # the customer repo, then the merchant objects
    store.apply([merchant, *views])
    app = TestClient(create_app(store, feature_env.redis_url))

    def post(refs: list[str], key: str, **extra: Any) -> Any:
        return app.post(URL, json={"features": refs, "entities": {key: [1]}, **extra})

    wrong = post(["merchant_stats:volume"], sd.ENTITY)
    right = post(["merchant_stats:volume"], "merchant_id")
    mixed = post(["merchant_stats:volume", f"{sd.PROFILE_VIEW}:age"], "merchant_id")
    clash = post(["merchant_stats:volume", "merchant_risk:volume"], "merchant_id")
    full = post(["merchant_stats:volume", "merchant_risk:volume"], "merchant_id",
                full_feature_names=True)  # fmt: skip

    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["ctx"]["valid"] == ["merchant_id"]
    assert right.status_code == 200, right.text
    assert right.json()["results"] == [{"entity_id": 1, "found": False,
                                        "features": {"volume": None}}]  # fmt: skip
    assert app.post(URL, json=by_service([FIRST_ID])).json()["entity_key"] == sd.ENTITY
    for response, kind in ((mixed, "mixed_entities"), (clash, "feature_name_collision")):
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert (error["type"], error["loc"]) == (kind, ["body", "features"])
    assert full.json()["feature_names"] == ["merchant_stats__volume", "merchant_risk__volume"]


def test_feature_services_and_freshness(
    feature_env: FeatureEnv, client: TestClient, reader: OnlineFeatureReader
) -> None:
    services = client.get("/v1/feature-services").json()["feature_services"]
    views = client.get("/v1/features/freshness").json()["views"]

    assert services == [{
        "name": SERVICE_NAME, "description": feature_env.repo.service.description,
        "entity_key": sd.ENTITY,
        "features": [f"{sd.PROFILE_VIEW}:{f}" for f in sd.PROFILE_FEATURES]
        + [f"{sd.TRANSACTION_VIEW}:{f}" for f in sd.TRANSACTION_FEATURES],
    }]  # fmt: skip
    assert [v["view"] for v in views] == sorted(TTLS)
    for view in views:
        record = reader.freshness(view["view"])
        assert record is not None
        assert view["ttl_seconds"] == TTLS[view["view"]].total_seconds()
        assert view["materialization"]["rows"] == record.rows > 0
        assert pd.Timestamp(view["materialization"]["end"]) == record.end


def test_openapi_lists_the_paths_and_typed_bodies(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert set(document["paths"]) == {URL, "/v1/feature-services", "/v1/features/freshness",
                                      "/health", "/ready"}  # fmt: skip
    assert set(document["paths"][URL]["post"]["responses"]) == {"200", "422", "503"}
    request = document["components"]["schemas"]["FeatureRequest"]
    assert request["additionalProperties"] is False and request["required"] == ["entities"]


def _timed(call: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def _assert_unavailable(app: TestClient) -> None:
    body = by_service([FIRST_ID])
    for response, elapsed in (_timed(lambda: app.post(URL, json=body)),
                              _timed(lambda: app.get("/ready")),
                              _timed(lambda: app.get("/v1/features/freshness"))):  # fmt: skip
        assert response.status_code == 503, response.text
        assert elapsed < 1.0
        assert "Redis" in response.json()["detail"] and response.headers["retry-after"] == "1"
    assert app.get("/health").json() == {"status": "ok"}
    assert app.get("/v1/feature-services").status_code == 200  # registry only


def test_redis_down_is_a_quick_503(feature_env: FeatureEnv) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    _assert_unavailable(TestClient(create_app(feature_env.store, dead, redis_timeout=TIMEOUT)))

    # The store's own connection string (no redis_url): redis-py's default client here retries
    # three times with 1-10 s backoff; the API's timeout settings must apply to it too.
    config = feature_store_config("local", project=feature_env.store.config.project,
                                  registry_path=str(feature_env.root / "registry.db"),
                                  redis_url=dead)  # fmt: skip
    store = open_store(config, feature_env.root)
    _assert_unavailable(TestClient(create_app(store, redis_timeout=TIMEOUT)))


def test_hung_redis_is_a_503_within_the_timeout(feature_env: FeatureEnv) -> None:
    """A server that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        _assert_unavailable(TestClient(create_app(feature_env.store, url, redis_timeout=TIMEOUT)))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def test_recovers_when_redis_returns(
    feature_env: FeatureEnv, own_redis: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same app object throughout; Redis is stopped and restarted (empty) on the same port."""
    materialize(feature_env.store, feature_env.start, feature_env.end, redis_url=own_redis.url)
    app = TestClient(create_app(feature_env.store, own_redis.url, redis_timeout=TIMEOUT))
    body = by_service(KNOWN_IDS)
    before = app.post(URL, json=body)
    assert before.status_code == 200 and all(r["found"] for r in before.json()["results"])

    own_redis.stop()
    _assert_unavailable(app)

    port = own_redis.port
    monkeypatch.setattr(local_redis, "free_port", lambda: port)  # start() picks a new port
    own_redis.start()
    assert own_redis.port == port
    assert app.get("/ready").status_code == 200
    empty = app.post(URL, json=body)
    assert empty.status_code == 200 and not any(r["found"] for r in empty.json()["results"])
    materialize(feature_env.store, feature_env.start, feature_env.end, redis_url=own_redis.url)
    assert app.post(URL, json=body).json() == before.json()

    own_redis.stop()  # and back at once: no failed request has dropped the pooled connections
    own_redis.start()
    materialize(feature_env.store, feature_env.start, feature_env.end, redis_url=own_redis.url)
    assert app.post(URL, json=body).json() == before.json()


def test_app_from_env(
    feature_env: FeatureEnv, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's factory: the store from feature_store.yaml, settings from MLOPS_FEATURE_API_*."""
    config = feature_store_config("local", project=feature_env.store.config.project,
                                  registry_path=str(feature_env.root / "registry.db"),
                                  redis_url=feature_env.redis_url)  # fmt: skip
    write_feature_store_yaml(config, tmp_path)
    monkeypatch.setenv("MLOPS_FEATURE_API_REPO_PATH", str(tmp_path))
    monkeypatch.setenv("MLOPS_FEATURE_API_MAX_ENTITIES", "3")
    app = TestClient(app_from_env())
    assert gc.get_freeze_count() > 0  # the process entry point freezes the startup heap
    gc.unfreeze()
    body = {"features": REFS, "entities": {sd.ENTITY: IDS[:3]}}

    assert app.get("/ready").json() == {"status": "ready"}
    assert app.post(URL, json=body).json() == client.post(URL, json=body).json()
    body["entities"] = {sd.ENTITY: IDS[:4]}
    assert app.post(URL, json=body).json()["detail"][0]["ctx"] == {"max": 3}

    monkeypatch.setenv("MLOPS_FEATURE_API_MAX_ENTITIES", "0")
    with pytest.raises(ValidationError, match="max_entities"):
        app_from_env()
