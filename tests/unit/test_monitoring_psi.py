"""PSI and baselines: hand-checked numbers, and bit-for-bit the bundle's own binning and PSI."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from monitoring.psi import (
    Baseline,
    BaselineError,
    CategoricalBins,
    NumericBins,
    bin_counts,
    bin_proportions,
    category_proportions,
    psi,
)
from tests.helpers import load_sample_evaluation

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def evaluation() -> ModuleType:
    return load_sample_evaluation()


def test_psi_matches_the_hand_computed_value_of_a_known_shift() -> None:
    # e = [.25, .25, .25, .25], a = [.1, .2, .3, .4]; PSI = sum (a - e) * ln(a / e):
    #   (.1 - .25) * ln(.4) = -.15 * -0.916290731874155  = 0.13744360978112324
    #   (.2 - .25) * ln(.8) = -.05 * -0.2231435513142097 = 0.011157177565710486
    #   (.3 - .25) * ln(1.2) = .05 *  0.1823215567939546 = 0.00911607783969773
    #   (.4 - .25) * ln(1.6) = .15 *  0.4700036292457356 = 0.07050054438686035
    #   total                                              = 0.22821740957339182
    assert psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.22821740957339182, abs=1e-9)
    assert psi([0.1, 0.2, 0.3, 0.4], [0.25] * 4) == pytest.approx(0.22821740957339182, abs=1e-9)


def test_empty_bins_are_floored_not_infinite() -> None:
    # e = [.5, .5, 0] floored to [.5, .5, 1e-6]; a = [.5, .25, .25]:
    #   0 + (.25 - .5) * ln(.25 / .5) + (.25 - 1e-6) * ln(.25 / 1e-6)
    #   = -.25 * -0.6931471805599453 + 0.249999 * 12.429216196844383
    #   = 0.17328679513998632 + 3.107291619994899 = 3.2805784151348854
    assert psi([0.5, 0.5, 0.0], [0.5, 0.25, 0.25]) == pytest.approx(3.2805784151348854, abs=1e-9)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0
    assert psi([0.5, 0.5, 0.0], [0.5, 0.25, 0.25], floor=1e-3) < 1.8  # a bigger floor, less PSI


def test_psi_of_identical_distributions_is_zero() -> None:
    shares = np.random.default_rng(1).dirichlet(np.ones(11))
    assert abs(psi(shares, shares)) < 1e-9


def test_psi_rejects_mismatched_bins_and_a_non_positive_floor() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="floor"):
        psi([0.5, 0.5], [0.5, 0.5], floor=0.0)


def test_bins_are_right_closed_with_missing_last() -> None:
    counts = bin_counts(np.array([1.0, 1.5, 2.0, 3.0, 3.5, np.nan, -np.inf]), [1.0, 2.0, 3.0])
    assert counts.tolist() == [2, 2, 1, 1, 1]  # (-inf,1]: 1,-inf; (1,2]: 1.5,2; (2,3]: 3; >3; NaN
    assert bin_proportions([1.0, None, 5.0, None], [1.0, 2.0, 3.0]).tolist() == [
        0.25, 0.0, 0.0, 0.25, 0.5,
    ]  # fmt: skip
    assert bin_proportions([], [1.0]).tolist() == [0.0, 0.0, 0.0]


def sample_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Continuous, discrete (repeated edges), sparse-missing and edge-heavy columns."""
    continuous = rng.normal(50.0, 10.0, n)
    continuous[rng.random(n) < 0.05] = np.nan
    discrete = rng.poisson(0.7, n).astype(np.float64)
    on_edges = np.round(rng.uniform(0, 5, n), 0)
    extreme = rng.lognormal(0.0, 2.0, n)
    extreme[rng.random(n) < 0.01] = np.inf
    return {"continuous": continuous, "discrete": discrete, "on_edges": on_edges, "x": extreme}


@pytest.mark.parametrize("seed", [3, 17, 2024])
def test_binning_and_psi_equal_the_bundle_evaluation_functions(
    evaluation: ModuleType, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    train, window = sample_columns(rng, 5_000), sample_columns(rng, 1_237)
    window["continuous"] += 3.0  # some drift, so the PSI values are not all ~0
    for name, values in train.items():
        edges = evaluation.quantile_edges(values, 10)
        theirs = evaluation.proportions(values, edges)
        ours = bin_proportions(values, edges)
        assert ours.tolist() == theirs, name  # exact, not approximately
        assert bin_proportions([None if math.isnan(v) else v for v in values], edges).tolist() == (
            theirs
        )
        theirs_window = evaluation.proportions(window[name], edges)
        assert bin_proportions(window[name], edges).tolist() == theirs_window, name
        assert psi(theirs, theirs_window) == evaluation.psi(theirs, theirs_window), name
    assert evaluation.PSI_FLOOR == 1e-6  # the default floor here is the bundle's floor


def test_sampled_identical_distributions_stay_calm_and_a_one_sd_shift_acts() -> None:
    rng = np.random.default_rng(42)
    baseline = rng.normal(0.0, 1.0, 20_000)
    edges = [float(e) for e in np.quantile(baseline, np.linspace(0, 1, 11)[1:-1])]
    expected = bin_proportions(baseline, edges)
    same = psi(expected, bin_proportions(rng.normal(0.0, 1.0, 20_000), edges))
    shifted = psi(expected, bin_proportions(rng.normal(1.0, 1.0, 20_000), edges))
    assert same < 0.02
    assert shifted > 0.25


def valid_baselines(evaluation: ModuleType) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    train = {**sample_columns(rng, 2_000), "score": rng.beta(2.0, 8.0, 2_000)}
    test = {**sample_columns(rng, 500), "score": rng.beta(2.0, 8.0, 500)}
    baselines, _ = evaluation.baselines_and_drift(train, test, 10, 2_000)
    # a real report went through json.dumps(allow_nan=False); mirror that round trip
    return dict(json.loads(json.dumps(baselines, allow_nan=False)))


def test_the_evaluation_scripts_baselines_parse(evaluation: ModuleType) -> None:
    raw = valid_baselines(evaluation)
    baseline = Baseline.from_evaluation({"schema_version": 1, "baselines": raw})
    assert (baseline.method, baseline.source, baseline.bins, baseline.rows) == (
        "quantile", "train", 10, 2_000,
    )  # fmt: skip
    assert set(baseline.features) == {"continuous", "discrete", "on_edges", "x"}
    discrete = baseline.features["discrete"]
    assert isinstance(discrete, NumericBins) and discrete.kind == "numeric"
    assert discrete.edges == tuple(raw["features"]["discrete"]["edges"])
    assert len(set(discrete.edges)) < len(discrete.edges), "discrete columns repeat edges"
    assert isinstance(baseline.score, NumericBins)
    assert baseline.score.proportions == tuple(raw["score"]["proportions"])


def at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the dotted `path` of a baselines dict (`value` ... deletes it)."""
    *parents, leaf = path.split(".")

    def mutate(raw: dict[str, Any]) -> None:
        target = raw
        for key in parents:
            target = target[key]
        if value is ...:
            del target[leaf]
        else:
            target[leaf] = value

    return mutate


def edge(index: int, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        raw["features"]["continuous"]["edges"][index] = value

    return mutate


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no-bins", at("bins", ...), r"baselines\.bins: expected an integer >= 2"),
    ("bool-bins", at("bins", True), r"baselines\.bins: expected an integer"),
    ("negative-rows", at("rows", -1), r"baselines\.rows: expected an integer >= 0"),
    ("no-method", at("method", ...), r"baselines\.method: expected a non-empty string"),
    ("no-features", at("features", {}), r"baselines\.features: expected a non-empty object"),
    ("no-score", at("score", ...), r"baselines\.score: missing"),
    ("feature-not-object", at("features.x", [1, 2]), r"baselines\.features\.x: expected an obj"),
    ("short-edges", at("features.x.edges", [1.0] * 8),
     r"baselines\.features\.x\.edges: expected 9 values \(bins - 1\), got 8"),
    ("edges-not-list", at("features.x.edges", "1,2"), r"features\.x\.edges: expected a list"),
    ("nan-edge", edge(3, math.nan),
     r"baselines\.features\.continuous\.edges\[3\]: expected a finite number, got nan"),
    ("inf-edge", edge(0, -math.inf), r"features\.continuous\.edges\[0\]: expected a finite"),
    ("text-edge", edge(2, "5"), r"features\.continuous\.edges\[2\]: expected a finite number"),
    ("unsorted-edges", edge(8, -1e9), r"features\.continuous\.edges: must be sorted ascending"),
    ("long-proportions", at("score.proportions", [0.5, 0.5] + [0.0] * 10),
     r"baselines\.score\.proportions: expected 11 values, got 12"),
    ("proportions-not-one", at("score.proportions", [0.05] * 11),
     r"baselines\.score\.proportions: must sum to 1, sum to 0\.55"),
    ("negative-proportion", at("score.proportions", [1.5, -0.5] + [0.0] * 9),
     r"baselines\.score\.proportions: every share must lie in \[0, 1\]"),
    ("duplicate-categories", at("features.x", {"categories": ["a", "a"], "proportions": [1] * 4}),
     r"baselines\.features\.x\.categories: categories must be unique"),
    ("numeric-categories", at("features.x", {"categories": [1, 2], "proportions": [1, 0, 0, 0]}),
     r"baselines\.features\.x\.categories: every category must be a string"),
    ("category-proportions", at("features.x", {"categories": ["a"], "proportions": [1.0, 0.0]}),
     r"baselines\.features\.x\.proportions: expected 3 values, got 2"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_baselines_name_the_field(
    evaluation: ModuleType, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    raw = valid_baselines(evaluation)
    Baseline.parse(copy.deepcopy(raw))  # the unmutated baselines are fine
    mutate(raw)
    with pytest.raises(BaselineError, match=message):
        Baseline.parse(raw)


def test_a_report_without_baselines_or_not_an_object_is_rejected() -> None:
    with pytest.raises(BaselineError, match="no baselines entry"):
        Baseline.from_evaluation({"schema_version": 1, "metrics": {}})
    with pytest.raises(BaselineError, match="baselines: expected an object, got list"):
        Baseline.parse([1, 2, 3])


def test_categorical_baselines_parse_and_bin_with_other_and_missing_last() -> None:
    raw = {
        "method": "frequency", "source": "train", "bins": 10, "rows": 4,
        "features": {"channel": {"categories": ["app", "web", "7"],
                                 "proportions": [0.5, 0.25, 0.0, 0.125, 0.125]}},
        "score": {"edges": [0.1 * i for i in range(1, 10)], "proportions": [1 / 11] * 11},
    }  # fmt: skip
    baseline = Baseline.parse(raw)
    channel = baseline.features["channel"]
    assert isinstance(channel, CategoricalBins) and channel.kind == "categorical"
    assert channel.categories == ("app", "web", "7")
    window = ["app", "web", "web", 7, "kiosk", None, float("nan"), "app"]
    # app 2, web 2, "7" 1 (the int 7), other 1 (kiosk), missing 2 (None, NaN) of 8
    assert category_proportions(window, channel.categories).tolist() == [
        0.25, 0.25, 0.125, 0.125, 0.25,
    ]  # fmt: skip
    with pytest.raises(TypeError, match="not a category value"):
        category_proportions([True], channel.categories)
