"""Drift reports over prediction-log windows: statuses, data problems, log reading, end to end."""

from __future__ import annotations

import gzip
import io
import json
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from monitoring.drift import Status, Thresholds, compute_drift, read_log_lines
from monitoring.psi import Baseline, BaselineError, bin_proportions, psi
from pipelines import sample_data as sd
from tests.helpers import load_sample_evaluation

pytestmark = pytest.mark.unit

MODEL = "credit-risk"


@pytest.fixture(scope="module")
def evaluation() -> ModuleType:
    return load_sample_evaluation()


def draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """A normal feature `x` (shiftable), a discrete `n` with repeated edges, and a score."""
    return {
        "x": rng.normal(10.0 + shift, 2.0, n),
        "n": rng.poisson(1.0, n).astype(np.float64),
        "score": rng.beta(2.0, 8.0, n),
    }


@pytest.fixture(scope="module")
def report(evaluation: ModuleType) -> dict[str, Any]:
    """An evaluation report whose baselines the bundle's own script computed."""
    rng = np.random.default_rng(8)
    train, test = draw(rng, 20_000), draw(rng, 2_000)
    baselines, drift = evaluation.baselines_and_drift(train, test, 10, 20_000)
    return {"schema_version": 1, "baselines": baselines, "drift": drift}


def records(
    n: int, *, seed: int = 1, shift: float = 0.0, version: Any = "3", model: str = MODEL
) -> list[dict[str, Any]]:
    columns = draw(np.random.default_rng(seed), n, shift)
    return [
        {"model": model, "version": version, "request_id": f"r{i}", "id": None,
         "ts": 1_700_000_000.0 + i, "latency_ms": 1.5, "entity": 1_000_001 + i,
         "features": {"x": float(columns["x"][i]), "n": float(columns["n"][i])},
         "score": float(columns["score"][i])}
        for i in range(n)
    ]  # fmt: skip


def test_same_distribution_is_ok_and_a_one_sd_shift_acts(report: dict[str, Any]) -> None:
    calm = compute_drift(records(5_000), report, model=MODEL, version="3")
    assert calm.status is Status.OK
    assert all(c.psi is not None and c.psi < 0.02 for c in calm.columns)
    drifted = compute_drift(records(5_000, shift=2.0), report, model=MODEL)
    x = drifted.features["x"]
    assert x.status is Status.ACT and x.psi is not None and x.psi > 0.25
    assert drifted.features["n"].status is Status.OK
    assert drifted.status is Status.ACT
    assert x.proportions[0] < 0.02 and x.proportions[-2] > 0.3  # mass moved to the top bins


def test_thresholds_decide_the_status_and_are_configurable(report: dict[str, Any]) -> None:
    limits = Thresholds()
    assert [limits.status_of(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        Status.OK, Status.OK, Status.WARN, Status.WARN, Status.ACT, Status.ACT,
    ]  # fmt: skip
    mild = compute_drift(records(5_000, shift=0.3), report, model=MODEL)
    x_psi = mild.features["x"].psi
    assert x_psi is not None and 0.01 < x_psi < 0.1 and mild.features["x"].status is Status.OK
    strict = Thresholds(warn=x_psi / 2, act=x_psi * 2)
    again = compute_drift(records(5_000, shift=0.3), report, model=MODEL, thresholds=strict)
    assert (again.features["x"].psi, again.features["x"].status) == (x_psi, Status.WARN)
    assert again.thresholds == strict and again.status is Status.WARN


def test_data_problems_outrank_drift_in_the_overall_status() -> None:
    assert sorted(Status, key=lambda s: s.severity) == [
        Status.OK, Status.WARN, Status.ACT,
        Status.INSUFFICIENT_ROWS, Status.MISSING_FEATURE, Status.EMPTY_WINDOW,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warn": 0.3, "act": 0.2}, "warn <= act"),
        ({"warn": 0.0}, "warn <= act"),
        ({"act": float("inf")}, "warn <= act"),
        ({"min_rows": 0}, "min_rows"),
        ({"floor": 0.0}, "floor"),
    ],
)
def test_bad_thresholds_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Thresholds(**kwargs)


def test_an_empty_window_is_a_status_not_a_crash(report: dict[str, Any]) -> None:
    for window in ([], records(300, model="fraud")):
        drift = compute_drift(window, report, model=MODEL)
        assert drift.status is Status.EMPTY_WINDOW
        assert {c.status for c in drift.columns} == {Status.EMPTY_WINDOW}
        assert all(c.psi is None and c.rows == 0 for c in drift.columns)
        assert drift.window.records == 0 and drift.window.first_ts is None
        json.dumps(drift.to_dict(), allow_nan=False)
    assert compute_drift(records(300, model="fraud"), report, model=MODEL).window.skipped == 300


def test_a_feature_absent_from_every_record_is_missing(report: dict[str, Any]) -> None:
    window = records(500)
    for record in window:
        del record["features"]["n"]
    drift = compute_drift(window, report, model=MODEL)
    n = drift.features["n"]
    assert (n.status, n.psi, n.rows, n.absent) == (Status.MISSING_FEATURE, None, 0, 500)
    assert drift.features["x"].status is Status.OK
    assert drift.status is Status.MISSING_FEATURE
    for record in window:
        del record["score"]
    assert compute_drift(window, report, model=MODEL).score.status is Status.MISSING_FEATURE


def test_absent_in_some_records_only_counts_them_and_reads_the_rest(
    report: dict[str, Any],
) -> None:
    window = records(500)
    for record in window[:40]:
        del record["features"]["n"]
    n = compute_drift(window, report, model=MODEL).features["n"]
    assert (n.absent, n.rows) == (40, 460)
    expected = report["baselines"]["features"]["n"]
    values = [r["features"]["n"] for r in window[40:]]
    assert n.psi == psi(expected["proportions"], bin_proportions(values, expected["edges"]))


def test_too_few_rows_give_insufficient_rows_but_keep_the_proportions(
    report: dict[str, Any],
) -> None:
    drift = compute_drift(records(50), report, model=MODEL)
    assert drift.status is Status.INSUFFICIENT_ROWS
    x = drift.features["x"]
    assert (x.status, x.psi, x.rows) == (Status.INSUFFICIENT_ROWS, None, 50)
    assert sum(x.proportions) == pytest.approx(1.0)
    relaxed = compute_drift(records(50), report, model=MODEL, thresholds=Thresholds(min_rows=50))
    assert relaxed.features["x"].psi is not None
    assert relaxed.features["x"].status in {Status.OK, Status.WARN, Status.ACT}


def test_non_numeric_values_are_invalid_and_left_out_of_that_column(
    report: dict[str, Any],
) -> None:
    window = records(400)
    bad_values = ["12.5", True, {"v": 1}, [1.0], 10**400] * 6  # 10**400: valid JSON, no float
    for record, bad in zip(window[:30], bad_values, strict=True):
        record["features"]["x"] = bad
    window[0]["ts"], window[1]["ts"] = 10**400, "yesterday"
    for record in window[30:60]:
        record["features"]["x"] = None
    drift = compute_drift(window, report, model=MODEL)
    x = drift.features["x"]
    assert (x.invalid, x.rows, x.missing) == (30, 370, 30)
    assert x.missing_share == pytest.approx(30 / 370)
    valid = [r["features"]["x"] for r in window[30:]]
    expected = report["baselines"]["features"]["x"]
    assert x.proportions == tuple(bin_proportions(valid, expected["edges"]).tolist())
    assert x.psi == psi(expected["proportions"], x.proportions)
    n = drift.features["n"]
    assert (n.invalid, n.rows, n.missing) == (0, 400, 0)
    assert (drift.window.first_ts, drift.window.records) == (window[2]["ts"], 400)


def test_only_the_requested_model_and_version_count(report: dict[str, Any]) -> None:
    window: list[Any] = records(300, version="3") + records(200, seed=2, version=2)
    window += records(100, model="fraud") + ["not a record", {"model": MODEL, "version": "3"}]
    v3 = compute_drift(window, report, model=MODEL, version=3)
    assert (v3.version, v3.window.records, v3.window.skipped) == ("3", 300, 300)
    assert v3.window.malformed_records == 2  # a string; a record without `features`
    assert v3.features["x"].rows == 300
    assert (v3.window.first_ts, v3.window.last_ts) == (1_700_000_000.0, 1_700_000_299.0)
    every = compute_drift(window, report, model=MODEL)
    assert (every.version, every.window.records, every.window.skipped) == (None, 500, 100)


def test_a_malformed_baseline_is_the_versions_fault_and_raises(report: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(report))
    broken["baselines"]["features"]["x"]["edges"].pop()
    with pytest.raises(BaselineError, match=r"baselines\.features\.x\.edges: expected 9"):
        compute_drift(records(10), broken, model=MODEL)
    parsed = Baseline.from_evaluation(report)
    assert compute_drift(records(200), parsed, model=MODEL).status is Status.OK


def test_categorical_columns_count_other_missing_and_invalid() -> None:
    baselines = {
        "method": "frequency", "source": "train", "bins": 10, "rows": 1000,
        "features": {"channel": {"categories": ["app", "web"],
                                 "proportions": [0.6, 0.3, 0.05, 0.05]}},
        "score": {"edges": [0.1 * i for i in range(1, 10)], "proportions": [0.1] * 10 + [0.0]},
    }  # fmt: skip
    values = ["app"] * 60 + ["web"] * 30 + ["kiosk"] * 5 + [None] * 5 + [False] * 3
    window = [
        {"model": MODEL, "version": "1", "features": {"channel": v}, "score": 0.05 + i % 10 / 10}
        for i, v in enumerate(values)
    ]
    drift = compute_drift(window, {"baselines": baselines}, model=MODEL)
    channel = drift.features["channel"]
    assert (channel.rows, channel.invalid, channel.missing) == (100, 3, 5)
    assert channel.proportions == (0.6, 0.3, 0.05, 0.05)
    assert channel.psi == 0.0 and channel.status is Status.OK
    assert channel.to_dict()["categories"] == ["app", "web"]


def test_the_report_is_json_safe_and_carries_both_proportions(report: dict[str, Any]) -> None:
    drift = compute_drift(records(1_000, shift=2.0), report, model=MODEL, version="3")
    body = json.loads(json.dumps(drift.to_dict(), allow_nan=False))
    assert (body["model"], body["version"], body["status"]) == (MODEL, "3", drift.status.value)
    assert body["thresholds"] == {"warn": 0.1, "act": 0.25, "min_rows": 100, "floor": 1e-6}
    assert body["baseline"] == {"rows": 20_000, "source": "train"}
    x = body["features"]["x"]
    assert x["baseline_proportions"] == report["baselines"]["features"]["x"]["proportions"]
    assert len(x["window_proportions"]) == 11 and len(x["edges"]) == 9
    assert (x["kind"], x["psi"], x["status"]) == ("numeric", drift.features["x"].psi, "act")
    assert body["score"]["name"] == "score" and body["window"]["records"] == 1_000


def jsonl(items: list[Any]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def test_log_lines_are_read_from_gzip_plain_and_streams_counting_bad_lines(
    report: dict[str, Any], tmp_path: Path
) -> None:
    window = records(600, shift=2.0)
    day = tmp_path / "predictions" / "dt=2026-11-20"
    day.mkdir(parents=True)
    gz = day / "stream-1-2026-11-20-10-00-00-abc"  # Firehose names carry no extension
    gz.write_bytes(gzip.compress(jsonl(window[:300]) + b"{truncated\n\n[1, 2]\n"))
    plain = day / "local.jsonl"
    plain.write_bytes(jsonl(window[300:500]) + b"\xff\xfe not utf-8\n")
    stream = io.BytesIO(gzip.compress(jsonl(window[500:])))
    broken = io.BytesIO(b"\x1f\x8b not really gzip")
    lines = read_log_lines([gz, str(plain), broken, stream])
    drift = compute_drift(lines, report, model=MODEL, version="3")
    counts = drift.window
    assert (counts.lines, counts.malformed_lines, counts.broken_sources) == (603, 3, 1)
    assert (counts.records, counts.malformed_records) == (600, 0)
    assert drift.features["x"].status is Status.ACT
    assert drift.features["x"].psi == compute_drift(window, report, model=MODEL).features["x"].psi
    single = read_log_lines(gz)
    assert [r["request_id"] for r in single] == [f"r{i}" for i in range(300)]
    assert (single.lines, single.malformed) == (302, 2)


def test_a_truncated_gzip_keeps_the_lines_before_the_damage(tmp_path: Path) -> None:
    whole = gzip.compress(jsonl(records(2_000)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    lines = read_log_lines([cut])
    kept = list(lines)
    assert 0 < len(kept) < 2_000 and lines.broken_sources == 1
    assert [r["request_id"] for r in kept] == [f"r{i}" for i in range(len(kept))]
    assert list(lines) == kept and lines.broken_sources == 1  # paths re-read, counts restart


@pytest.fixture(scope="module")
def credit_risk(evaluation: ModuleType) -> dict[str, Any]:
    """Sample warehouse data; a model on the early labelled rows; baselines from the bundle's
    script; and the feature snapshots of the last five days, scored as serving would."""
    data = sd.generate(n_customers=1_500, start=date(2024, 1, 1), days=60, seed=7)
    frame = sd.training_frame(data)
    train = frame[frame[sd.TIMESTAMP] < pd.Timestamp("2024-02-10", tz="UTC")]
    snapshots = data.profiles.merge(data.transactions, on=[sd.ENTITY, sd.TIMESTAMP])
    served = snapshots[snapshots[sd.TIMESTAMP] >= pd.Timestamp("2024-02-25", tz="UTC")]
    features = list(sd.FEATURES)
    x_train = train[features].to_numpy(np.float32)
    x_served = served[features].to_numpy(np.float32)
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(x_train, train[sd.LABEL])
    p_train, p_served = model.predict_proba(x_train)[:, 1], model.predict_proba(x_served)[:, 1]
    columns = {f: x_train[:, i].astype(np.float64) for i, f in enumerate(features)}
    served_columns = {f: x_served[:, i].astype(np.float64) for i, f in enumerate(features)}
    baselines, drift = evaluation.baselines_and_drift(
        {**columns, "score": p_train}, {**served_columns, "score": p_served}, 10, len(train)
    )
    report = json.loads(json.dumps({"baselines": baselines, "drift": drift}, allow_nan=False))
    return {
        "report": report,
        "served": log_records(features, x_served, p_served, served[sd.ENTITY].to_numpy()),
        "trained": log_records(features, x_train, p_train, train[sd.ENTITY].to_numpy()),
        "served_columns": served_columns,
    }


def log_records(
    features: list[str], x: np.ndarray, scores: np.ndarray, entities: np.ndarray
) -> list[dict[str, Any]]:
    """Records shaped as serving logs them: float32 values as floats, NaN as null."""
    out = []
    for i, row in enumerate(x.tolist()):
        values = {f: (None if v != v else v) for f, v in zip(features, row, strict=True)}
        out.append(
            {"model": MODEL, "version": "3", "request_id": f"q{i}", "id": None,
             "ts": 1_708_819_200.0 + i, "latency_ms": 2.0, "entity": int(entities[i]),
             "features": values, "score": float(scores[i])}
        )  # fmt: skip
    return out


def test_sample_data_end_to_end_matches_the_bundles_first_reading(
    credit_risk: dict[str, Any], evaluation: ModuleType
) -> None:
    report = credit_risk["report"]
    served = credit_risk["served"]
    drift = compute_drift(iter(served), report, model=MODEL, version=3)
    assert drift.window.records == len(served) == 7_500  # > one flush chunk: binned in parts
    bundle_psi = report["drift"]["psi"]
    for name, column in drift.features.items():
        assert column.rows == len(served) and column.invalid == 0, name
        assert column.psi == pytest.approx(bundle_psi[name], abs=1e-12), name
        edges = report["baselines"]["features"][name]["edges"]
        served_values = credit_risk["served_columns"][name]
        assert list(column.proportions) == evaluation.proportions(served_values, edges), name
    assert drift.score.psi == pytest.approx(bundle_psi["score"], abs=1e-12)
    income = drift.features["income_monthly"].missing_share
    assert income is not None and 0.01 < income < 0.08  # the generator hides ~3 % of incomes
    assert drift.features["age"].missing == 0
    # the generator's documented drift: utilisation creeps up over the window, most of all
    worst = max(drift.features.values(), key=lambda c: c.psi or 0.0)
    assert worst.name == "credit_utilization"
    statuses = {c.status for c in drift.columns}
    assert statuses <= {Status.OK, Status.WARN, Status.ACT}
    assert drift.status is max(statuses, key=lambda s: s.severity)


def test_the_training_rows_themselves_show_no_drift(credit_risk: dict[str, Any]) -> None:
    drift = compute_drift(credit_risk["trained"], credit_risk["report"], model=MODEL)
    assert drift.status is Status.OK
    assert all(c.psi == 0.0 for c in drift.columns)
    for name, column in drift.features.items():
        baseline = credit_risk["report"]["baselines"]["features"][name]["proportions"]
        assert list(column.proportions) == baseline, name
