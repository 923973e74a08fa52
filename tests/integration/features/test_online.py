"""The direct Redis reader against Feast's own `get_online_features`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from features.online import DefinitionsCatalog, OnlineFeatureReader, UnknownFeatureError, build_plan
from features.redis_plan import RedisPlan
from features.repo import SERVICE_NAME, TTLS
from pipelines import sample_data as sd
from tests.integration.features.conftest import (
    CUSTOMERS,
    EXPIRED_IDS,
    FIRST_ID,
    UNKNOWN_IDS,
    FeatureEnv,
    feast_rows,
)

pytestmark = pytest.mark.integration

# Every customer, never-materialized ids, and repeats, in a scrambled order.
REQUEST_IDS = [*UNKNOWN_IDS[:1], *range(FIRST_ID + CUSTOMERS - 1, FIRST_ID - 1, -1),
               *UNKNOWN_IDS[1:], FIRST_ID, FIRST_ID + 7, FIRST_ID]  # fmt: skip
REFS = [f"{sd.TRANSACTION_VIEW}:txn_count_7d", f"{sd.PROFILE_VIEW}:age",
        f"{sd.PROFILE_VIEW}:income_monthly"]  # fmt: skip


@pytest.fixture(scope="module")
def exact(feature_env: FeatureEnv) -> OnlineFeatureReader:
    return OnlineFeatureReader(feature_env.store, feature_env.redis_url, enforce_ttl=False)


def test_reader_equals_feast_for_the_feature_service(
    feature_env: FeatureEnv, exact: OnlineFeatureReader
) -> None:
    service = feature_env.store.get_feature_service(SERVICE_NAME)
    expected = feast_rows(feature_env.store, service, REQUEST_IDS)

    assert exact.get(SERVICE_NAME, REQUEST_IDS) == expected
    assert exact.get(service, REQUEST_IDS) == expected
    assert [row["age"] for row in expected[: len(UNKNOWN_IDS[:1])]] == [None]
    assert sum(row["age"] is not None for row in expected) == CUSTOMERS + 3


@pytest.mark.parametrize("full_feature_names", [False, True])
def test_reader_equals_feast_for_feature_refs(
    feature_env: FeatureEnv, exact: OnlineFeatureReader, full_feature_names: bool
) -> None:
    expected = feast_rows(feature_env.store, REFS, REQUEST_IDS,
                          full_feature_names=full_feature_names)  # fmt: skip

    assert exact.get(REFS, REQUEST_IDS, full_feature_names=full_feature_names) == expected
    assert set(expected[0]) == (
        {
            sd.ENTITY,
            "customer_transactions__txn_count_7d",
            "customer_profile__age",
            "customer_profile__income_monthly",
        }  # fmt: skip
        if full_feature_names
        else {sd.ENTITY, "txn_count_7d", "age", "income_monthly"}
    )


def test_ttl_expired_values_read_as_missing(feature_env: FeatureEnv) -> None:
    """Feast 0.67's Redis store returns expired values; the reader returns None for them."""
    reader = OnlineFeatureReader(feature_env.store, feature_env.redis_url)
    ids = [*EXPIRED_IDS, FIRST_ID + 100, FIRST_ID + 101]
    service = feature_env.store.get_feature_service(SERVICE_NAME)
    feasts = feast_rows(feature_env.store, service, ids)
    mine = reader.get(SERVICE_NAME, ids)

    for feast_row, row in zip(feasts, mine, strict=True):
        if row[sd.ENTITY] in EXPIRED_IDS:
            assert feast_row["age"] is not None, "Feast keeps serving stale values"
            assert all(row[name] is None for name in sd.FEATURES), row
        else:
            assert row == feast_row


def test_ttl_boundary_follows_the_clock(feature_env: FeatureEnv) -> None:
    """A customer's last transaction row is 3 days old: fresh until the 2-day TTL runs out."""
    last_row = feature_env.data.transactions.query(f"{sd.ENTITY} == {EXPIRED_IDS[0]}")
    event_time = last_row[sd.TIMESTAMP].max().to_pydatetime()
    ref = [f"{sd.TRANSACTION_VIEW}:txn_count_30d"]

    def read_at(now: datetime) -> object:
        reader = OnlineFeatureReader(feature_env.store, feature_env.redis_url, clock=lambda: now)
        return reader.get(ref, [EXPIRED_IDS[0]])[0]["txn_count_30d"]

    ttl = TTLS[sd.TRANSACTION_VIEW]
    assert read_at(event_time + ttl) is not None
    assert read_at(event_time + ttl + timedelta(microseconds=1)) is None
    assert read_at(datetime.now(UTC)) is None


def test_unknown_features_are_rejected_with_the_valid_ones(exact: OnlineFeatureReader) -> None:
    with pytest.raises(UnknownFeatureError) as raised:
        exact.get([f"{sd.PROFILE_VIEW}:agee"], [FIRST_ID])
    assert "customer_profile:agee" in str(raised.value)
    assert "customer_profile:age'" in str(raised.value)
    assert "customer_transactions:txn_count_7d" in str(raised.value)

    with pytest.raises(UnknownFeatureError, match="credit_risk_v1"):
        exact.get("credit_risk_v9", [FIRST_ID])


def test_one_round_trip_and_one_hmget_per_entity(
    feature_env: FeatureEnv, exact: OnlineFeatureReader
) -> None:
    import redis

    client = redis.Redis.from_url(feature_env.redis_url)

    def calls(command: str) -> int:
        stats = cast(dict[str, Any], client.info("commandstats"))
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    before = (calls("eval"), calls("hmget"))
    exact.get(SERVICE_NAME, list(range(FIRST_ID, FIRST_ID + 100)))
    after = (calls("eval"), calls("hmget"))

    # One script call from the client; inside it, one HMGET per entity (both views share the
    # entity's hash).
    assert (after[0] - before[0], after[1] - before[1]) == (1, 100)


def test_plans_from_the_definitions_equal_plans_from_the_applied_registry(
    feature_env: FeatureEnv, exact: OnlineFeatureReader
) -> None:
    """What the serving stack computes at synth (no registry) is what the registry yields."""
    project = feature_env.store.config.project
    from_definitions = build_plan(DefinitionsCatalog(project), SERVICE_NAME)
    assert from_definitions == exact.plan(SERVICE_NAME)
    assert RedisPlan.from_dict(from_definitions.to_dict()) == from_definitions
    assert from_definitions.outputs == list(sd.FEATURES)


def test_plans_refuse_features_the_feast_free_reader_cannot_decode(
    feature_env: FeatureEnv,
) -> None:
    from feast import FeatureView, Field
    from feast.types import Array, Float64

    catalog = DefinitionsCatalog(feature_env.store.config.project)
    profile = catalog.list_feature_views()[0]
    listy = FeatureView(
        name=profile.name, entities=[catalog.get_entity(profile.entities[0])], ttl=profile.ttl,
        source=profile.batch_source,
        schema=[Field(name="history", dtype=Array(Float64))],
    )  # fmt: skip
    catalog.list_feature_views = lambda: [listy]  # type: ignore[method-assign]
    with pytest.raises(ValueError, match=r"\['history'\] are not scalar features"):
        build_plan(catalog, (f"{profile.name}:history",))
