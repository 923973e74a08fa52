"""Baselines and the population stability index (PSI), exactly as a model bundle defines them.

A registered version's evaluation report (`evaluation.json`, written by the bundle's
`evaluation.py`) carries `baselines`:

    {"method": "quantile", "source": "train", "bins": 10, "rows": N,
     "features": {name: {"edges": [9 floats], "proportions": [11 floats]}, ...},
     "score": {"edges": [...], "proportions": [...]}}

Numeric bins: bin i holds edges[i-1] < x <= edges[i], with -inf/+inf beyond the ends, so `bins`
value bins need `bins - 1` edges; one more proportion, the last, is the share of missing values
(NaN/None). Edges may repeat (discrete features); the bins between repeated edges are empty by
construction, which is why `psi` floors proportions.

Categorical bins (accepted here; the sample bundle's evaluation does not write them yet):

    {"categories": ["a", "b", ...], "proportions": [one per category, other, missing]}

`other` is any present value outside `categories`; values are matched by their string form
(`str` as is, `int` through `str()`).

PSI = sum over bins of (a - e) * ln(a / e), where e and a are the expected (baseline) and actual
(window) proportions, each floored at `floor` (default 1e-6) so empty bins stay finite. Values
and binning are bit-for-bit those of the sample `evaluation.py` (`proportions`, `psi`); a unit
test pins that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

PSI_FLOOR = 1e-6
SUM_TOLERANCE = 1e-4

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class BaselineError(ValueError):
    """A malformed `baselines` entry; the message names the offending field."""


@dataclass(frozen=True)
class NumericBins:
    """Quantile bins of one numeric column: `len(proportions) == len(edges) + 2` (missing last)."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]

    @property
    def kind(self) -> str:
        return "numeric"


@dataclass(frozen=True)
class CategoricalBins:
    """Category shares of one column: one per category, then `other`, then missing."""

    categories: tuple[str, ...]
    proportions: tuple[float, ...]

    @property
    def kind(self) -> str:
        return "categorical"


ColumnBaseline = NumericBins | CategoricalBins


@dataclass(frozen=True)
class Baseline:
    """The validated `baselines` entry of one version's evaluation report."""

    method: str
    source: str
    bins: int
    rows: int
    features: Mapping[str, ColumnBaseline]
    score: ColumnBaseline

    @classmethod
    def from_evaluation(cls, report: Mapping[str, Any]) -> Baseline:
        """Parse the `baselines` entry of a whole evaluation report (`evaluation.json`)."""
        if not isinstance(report, Mapping) or "baselines" not in report:
            raise BaselineError("baselines: the evaluation report has no baselines entry")
        return cls.parse(report["baselines"])

    @classmethod
    def parse(cls, raw: Any) -> Baseline:
        """Validate a `baselines` mapping; raise `BaselineError` naming the first bad field."""
        if not isinstance(raw, Mapping):
            raise BaselineError(f"baselines: expected an object, got {type(raw).__name__}")
        bins = _integer(raw, "bins", minimum=2)
        features = raw.get("features")
        if not isinstance(features, Mapping) or not features:
            raise BaselineError("baselines.features: expected a non-empty object")
        if "score" not in raw:
            raise BaselineError("baselines.score: missing")
        return cls(
            method=_text(raw, "method"),
            source=_text(raw, "source"),
            bins=bins,
            rows=_integer(raw, "rows", minimum=0),
            features={
                str(name): _column(spec, bins, f"baselines.features.{name}")
                for name, spec in features.items()
            },
            score=_column(raw["score"], bins, "baselines.score"),
        )


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise BaselineError(f"baselines.{key}: expected a non-empty string, got {value!r}")
    return value


def _integer(raw: Mapping[str, Any], key: str, *, minimum: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BaselineError(f"baselines.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _column(spec: Any, bins: int, field: str) -> ColumnBaseline:
    if not isinstance(spec, Mapping):
        raise BaselineError(f"{field}: expected an object, got {type(spec).__name__}")
    if "categories" in spec:
        categories = _categories(spec["categories"], f"{field}.categories")
        shares = _proportions(spec.get("proportions"), len(categories) + 2, field)
        return CategoricalBins(categories, shares)
    edges = _numbers(spec.get("edges"), f"{field}.edges")
    if len(edges) != bins - 1:
        raise BaselineError(
            f"{field}.edges: expected {bins - 1} values (bins - 1), got {len(edges)}"
        )
    if any(later < earlier for earlier, later in zip(edges, edges[1:], strict=False)):
        raise BaselineError(f"{field}.edges: must be sorted ascending (repeats allowed)")
    return NumericBins(edges, _proportions(spec.get("proportions"), bins + 1, field))


def _numbers(raw: Any, field: str) -> tuple[float, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise BaselineError(f"{field}: expected a list of numbers, got {type(raw).__name__}")
    for index, value in enumerate(raw):
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or not math.isfinite(value):
            raise BaselineError(f"{field}[{index}]: expected a finite number, got {value!r}")
    return tuple(float(v) for v in raw)


def _proportions(raw: Any, length: int, field: str) -> tuple[float, ...]:
    shares = _numbers(raw, f"{field}.proportions")
    if len(shares) != length:
        raise BaselineError(f"{field}.proportions: expected {length} values, got {len(shares)}")
    if any(s < 0 or s > 1 for s in shares):
        raise BaselineError(f"{field}.proportions: every share must lie in [0, 1]")
    total = math.fsum(shares)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise BaselineError(f"{field}.proportions: must sum to 1, sum to {total:.6g}")
    return shares


def _categories(raw: Any, field: str) -> tuple[str, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise BaselineError(f"{field}: expected a non-empty list of strings")
    if not all(isinstance(c, str) for c in raw):
        raise BaselineError(f"{field}: every category must be a string")
    if len(set(raw)) != len(raw):
        raise BaselineError(f"{field}: categories must be unique")
    return tuple(raw)


def as_float_array(values: Iterable[float | None]) -> FloatArray:
    """Numbers (or a numeric array) as float64, None -> NaN (missing).

    No type checking beyond numpy's conversion: callers pass numbers and None only.
    """
    if isinstance(values, np.ndarray):
        return np.asarray(values, dtype=np.float64)
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def bin_counts(values: FloatArray, edges: Sequence[float]) -> IntArray:
    """Rows per numeric bin, missing (NaN) last: `len(edges) + 2` counts.

    Right-closed bins through `searchsorted(side="left")`, as the bundle's evaluation does.
    """
    nan = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~nan], side="left")
    counts = np.append(np.bincount(index, minlength=len(edges) + 1), nan.sum())
    return np.asarray(counts, dtype=np.int64)


def shares(counts: IntArray) -> FloatArray:
    """Counts as proportions of their total (all zeros when there are no rows)."""
    return np.asarray(counts / max(int(counts.sum()), 1), dtype=np.float64)


def bin_proportions(values: Iterable[float | None], edges: Sequence[float]) -> FloatArray:
    """Share of values per numeric bin, missing (NaN/None) last -- the baseline's own meaning."""
    return shares(bin_counts(as_float_array(values), edges))


def category_key(value: object) -> str | None:
    """The string a categorical value is matched by; None for missing (None or float NaN).

    Raises TypeError for values that cannot be a category (bool, float, containers).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"not a category value: {value!r}")


def category_counts(values: Iterable[object], categories: Sequence[str]) -> IntArray:
    """Rows per category, then `other`, then missing: `len(categories) + 2` counts."""
    position = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 2, dtype=np.int64)
    for value in values:
        key = category_key(value)
        counts[-1 if key is None else position.get(key, len(categories))] += 1
    return counts


def category_proportions(values: Iterable[object], categories: Sequence[str]) -> FloatArray:
    """Share of values per category, then `other`, then missing."""
    return shares(category_counts(values, categories))


def psi(
    expected: Sequence[float] | FloatArray,
    actual: Sequence[float] | FloatArray,
    floor: float = PSI_FLOOR,
) -> float:
    """Population stability index of `actual` against `expected` (same bins, floored shares)."""
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    e = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    a = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected and actual need the same bins: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))
