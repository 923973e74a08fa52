"""Point-in-time historical retrieval through Feast for the feature service."""

from __future__ import annotations

import pandas as pd
import pytest

from features.repo import SERVICE_NAME
from pipelines import sample_data as sd
from tests.integration.features.conftest import (
    EXPIRED_IDS,
    FeatureEnv,
    expected_training_frame,
    sorted_training_frame,
)

pytestmark = pytest.mark.integration


def test_training_frame_is_point_in_time_correct(feature_env: FeatureEnv) -> None:
    labels = feature_env.data.labels
    # A decision one second before midnight: the next day's snapshot (00:00) must not leak in.
    probe = labels.iloc[[0]].copy()
    probe[sd.TIMESTAMP] = probe[sd.TIMESTAMP].dt.normalize() + pd.Timedelta("23:59:59")
    entity_df = pd.concat([labels, probe], ignore_index=True)

    job = feature_env.store.get_historical_features(
        entity_df=entity_df, features=feature_env.store.get_feature_service(SERVICE_NAME)
    )
    actual = sorted_training_frame(job.to_df())
    expected = sorted_training_frame(expected_training_frame(feature_env, entity_df))
    # Feast 0.67's local engine drops label rows for which a view has no row within its TTL
    # (instead of returning nulls); only the customers made to expire in conftest have those.
    outside_ttl = expected[["age", "txn_count_7d"]].isna().any(axis=1)

    assert set(expected.loc[outside_ttl, sd.ENTITY]) <= set(EXPIRED_IDS)
    assert outside_ttl.sum() > 0
    pd.testing.assert_frame_equal(
        actual, expected.loc[~outside_ttl].reset_index(drop=True), check_dtype=False
    )
    customer, moment = int(probe[sd.ENTITY].iloc[0]), probe[sd.TIMESTAMP].iloc[0]
    profiles = feature_env.data.profiles.query(f"{sd.ENTITY} == {customer}").set_index(
        sd.TIMESTAMP
    )["credit_utilization"]
    got = actual.query(f"{sd.ENTITY} == {customer} and {sd.TIMESTAMP} == @moment")
    same_day, next_day = (
        profiles[moment.normalize()],
        profiles[moment.normalize() + pd.Timedelta("1D")],
    )
    assert same_day != next_day, "the probe needs a value that changes overnight"
    assert got["credit_utilization"].tolist() == [same_day]
