"""The sample warehouse batch: deterministic, on contract, point-in-time correct, with signal."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from pipelines import sample_data as sd

pytestmark = pytest.mark.unit

START = date(2024, 3, 1)


@pytest.fixture(scope="module")
def data() -> sd.SampleData:
    return sd.generate(n_customers=800, start=START, days=20, seed=11)


def test_same_seed_gives_identical_frames_and_bytes(tmp_path: Path) -> None:
    first = sd.generate(n_customers=300, start=START, days=10, seed=3)
    second = sd.generate(n_customers=300, start=START, days=10, seed=3)
    for name in ("profiles", "transactions", "labels"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    files_a = sd.write_parquet(first, tmp_path / "a")
    files_b = sd.write_parquet(second, tmp_path / "b")
    for table, paths in files_a.items():
        assert len(paths) == 10
        for path_a, path_b in zip(paths, files_b[table], strict=True):
            assert path_a.read_bytes() == path_b.read_bytes(), path_a


def test_another_seed_gives_other_data() -> None:
    first = sd.generate(n_customers=300, start=START, days=10, seed=3)
    other = sd.generate(n_customers=300, start=START, days=10, seed=4)
    assert not first.profiles.equals(other.profiles)
    assert not first.labels.equals(other.labels)


def test_schema_is_the_feature_store_contract(data: sd.SampleData) -> None:
    ints = {"age", "months_since_first_credit", "num_credit_lines", "late_payments_12m"}
    ints |= {"txn_count_7d", "txn_count_30d", "distinct_merchants_30d"}
    for frame, features in (
        (data.profiles, sd.PROFILE_FEATURES),
        (data.transactions, sd.TRANSACTION_FEATURES),
    ):
        assert list(frame.columns) == [sd.ENTITY, sd.TIMESTAMP, *features]
        assert frame[sd.ENTITY].dtype == np.int64
        assert str(frame[sd.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
        for name in features:
            assert frame[name].dtype == (np.int64 if name in ints else np.float64), name
        assert len(frame) == 800 * 20
        assert not frame.duplicated([sd.ENTITY, sd.TIMESTAMP]).any()
        assert (frame[sd.TIMESTAMP].dt.normalize() == frame[sd.TIMESTAMP]).all()
    assert list(data.labels.columns) == [sd.ENTITY, sd.TIMESTAMP, sd.LABEL]
    assert set(data.labels[sd.LABEL].unique()) == {0, 1}
    assert sd.FEATURES == sd.PROFILE_FEATURES + sd.TRANSACTION_FEATURES
    assert len(sd.FEATURES) == 14


def test_values_are_realistic(data: sd.SampleData) -> None:
    p, t = data.profiles, data.transactions
    assert p["age"].between(19, 81).all()
    assert p["credit_utilization"].between(0.0, 1.5).all()
    assert t["night_txn_ratio_30d"].between(0.0, 1.0).all()
    assert (t["txn_count_7d"] <= t["txn_count_30d"]).all()
    assert (t["distinct_merchants_30d"] <= t["txn_count_30d"]).all()
    assert 0.01 < p["income_monthly"].isna().mean() < 0.08
    assert p.drop(columns="income_monthly").notna().all().all()
    assert t["avg_txn_amount_30d"].isna().equals(t["txn_count_30d"] == 0)
    amounts = t.loc[t["txn_count_30d"] > 0, "txn_amount_30d"]
    assert amounts.mean() > 1.3 * amounts.median(), "amounts should be right-skewed"


def test_mild_time_drift(data: sd.SampleData) -> None:
    day = data.profiles[sd.TIMESTAMP]
    first, last = day == day.min(), day == day.max()
    util = data.profiles["credit_utilization"]
    assert 0.01 < util[last].mean() - util[first].mean() < 0.1
    txns = data.transactions["txn_count_30d"]
    assert txns[last].mean() > txns[first].mean()


def test_label_rate_is_sane_and_the_features_carry_signal(data: sd.SampleData) -> None:
    frame = sd.training_frame(data)
    assert 0.04 < frame[sd.LABEL].mean() < 0.15
    assert 800 * 20 * 0.03 < len(frame) < 800 * 20 * 0.07
    x = frame[list(sd.FEATURES)].fillna(frame[list(sd.FEATURES)].median()).to_numpy()
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    model = LogisticRegression(max_iter=500).fit(x, frame[sd.LABEL])
    auc = roc_auc_score(frame[sd.LABEL], model.predict_proba(x)[:, 1])
    assert 0.72 < auc < 0.92


def test_training_frame_is_point_in_time_correct(data: sd.SampleData) -> None:
    frame = sd.training_frame(data, with_provenance=True)
    assert len(frame) == len(data.labels)
    assert list(frame.columns[: 2 + len(sd.FEATURES) + 1]) == [
        sd.ENTITY,
        sd.TIMESTAMP,
        *sd.FEATURES,
        sd.LABEL,
    ]
    for view in (sd.PROFILE_VIEW, sd.TRANSACTION_VIEW):
        used = frame[f"{view}__{sd.TIMESTAMP}"]
        assert (used <= frame[sd.TIMESTAMP]).all()
        # Snapshots are daily: the latest one at or before a decision is that day's.
        assert (used == frame[sd.TIMESTAMP].dt.floor("D")).all()


def test_training_frame_never_uses_a_later_feature_row(data: sd.SampleData) -> None:
    """Plant a poisoned snapshot one second after every decision; none may leak in."""
    future = data.labels[[sd.ENTITY, sd.TIMESTAMP]].copy()
    future[sd.TIMESTAMP] += pd.Timedelta(seconds=1)
    poisoned_profiles = pd.concat(
        [data.profiles, future.assign(**dict.fromkeys(sd.PROFILE_FEATURES, -1))],
        ignore_index=True,
    )
    poisoned_txns = pd.concat(
        [data.transactions, future.assign(**dict.fromkeys(sd.TRANSACTION_FEATURES, -1))],
        ignore_index=True,
    )
    poisoned = sd.SampleData(poisoned_profiles, poisoned_txns, data.labels)
    frame = sd.training_frame(poisoned)
    assert not (frame[list(sd.FEATURES)] == -1).any().any()
    pd.testing.assert_frame_equal(frame, sd.training_frame(data))


def test_ttl_treats_stale_feature_rows_as_missing(data: sd.SampleData) -> None:
    frame = sd.training_frame(data, ttl=timedelta(hours=6))
    fresh = frame[sd.TIMESTAMP] - frame[sd.TIMESTAMP].dt.floor("D") <= pd.Timedelta(hours=6)
    assert 0.15 < fresh.mean() < 0.35
    assert frame.loc[~fresh, "age"].isna().all()
    assert frame.loc[fresh, "age"].notna().all()


def test_write_parquet_is_hive_partitioned_and_round_trips(
    data: sd.SampleData, tmp_path: Path
) -> None:
    files = sd.write_parquet(data, tmp_path)
    assert set(files) == {sd.PROFILE_VIEW, sd.TRANSACTION_VIEW, sd.LABEL_TABLE}
    first = tmp_path / sd.PROFILE_VIEW / "dt=2024-03-01" / "part-0.parquet"
    assert files[sd.PROFILE_VIEW][0] == first
    assert files[sd.PROFILE_VIEW][-1].parent.name == "dt=2024-03-20"
    back = pd.read_parquet(tmp_path / sd.PROFILE_VIEW)
    assert back["dt"].astype(str).iloc[0] == "2024-03-01"
    back = back.drop(columns="dt")
    back[sd.TIMESTAMP] = back[sd.TIMESTAMP].dt.as_unit("ns")
    pd.testing.assert_frame_equal(back, data.profiles)


def test_write_parquet_without_partitions(data: sd.SampleData, tmp_path: Path) -> None:
    files = sd.write_parquet(data, tmp_path, partition_by_date=False)
    assert files[sd.LABEL_TABLE] == [tmp_path / sd.LABEL_TABLE / "part-0.parquet"]
    assert len(pd.read_parquet(files[sd.LABEL_TABLE][0])) == len(data.labels)


def test_cli_writes_tables_and_the_training_frame(tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path), "--customers", "50", "--days", "3", "--start", "2024-05-01"]
    assert sd.main(argv) == 0
    frame = pd.read_parquet(tmp_path / "training_frame" / "part-0.parquet")
    assert list(frame.columns) == [sd.ENTITY, sd.TIMESTAMP, *sd.FEATURES, sd.LABEL]
    assert len(list((tmp_path / sd.TRANSACTION_VIEW).glob("dt=*/part-0.parquet"))) == 3


@pytest.mark.parametrize(("customers", "days"), [(0, 10), (10, 0)])
def test_generate_rejects_empty_shapes(customers: int, days: int) -> None:
    with pytest.raises(ValueError, match="need n_customers >= 1"):
        sd.generate(n_customers=customers, days=days)
