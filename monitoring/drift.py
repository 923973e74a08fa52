"""Drift of one model version over one window of prediction logs, against its baselines.

`compute_drift` reads prediction-log records (`serving/predictlog.py`: `model`, `version`, `ts`,
`features` {name: value or null}, `score`, ...) and, for every baseline feature and for the
score, bins the window's values exactly as the baseline was binned (`monitoring.psi`) and reads
the PSI against it.

Per column, `status` is one of (mildest first; the report's `status` is the worst of them):

- `ok` (PSI < warn), `warn` (warn <= PSI < act), `act` (PSI >= act) -- defaults 0.1 and 0.25;
- `insufficient_rows`: fewer than `min_rows` (default 100) usable values; PSI on a handful of
  rows is noise, so it is not reported (None) -- the window's proportions still are;
- `missing_feature`: the column is absent from every record (the logs do not carry it);
- `empty_window`: no record of this model (and version) at all.

Data problems rank above drift: a reading that cannot be trusted must neither look calm nor be
mistaken for drift. Nothing here raises on bad log data: a value of the wrong type for its
column (a string for a numeric feature, a bool, an object) is counted as `invalid` and left out
of that column only; a record that is not an object or whose `features` is not an object is a
`malformed_record`; records of other models or versions are `skipped`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from monitoring.logs import LogLines, read_log_lines
from monitoring.psi import (
    PSI_FLOOR,
    Baseline,
    CategoricalBins,
    ColumnBaseline,
    IntArray,
    NumericBins,
    bin_counts,
    category_key,
    psi,
    shares,
)

__all__ = [
    "ColumnDrift",
    "DriftReport",
    "Status",
    "Thresholds",
    "compute_drift",
    "read_log_lines",
]

SCORE = "score"
_FLUSH_EVERY = 4096
_PLAIN = frozenset({float, int, type(None)})  # what JSON numbers and null decode to (not bool)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    ACT = "act"
    INSUFFICIENT_ROWS = "insufficient_rows"
    MISSING_FEATURE = "missing_feature"
    EMPTY_WINDOW = "empty_window"

    @property
    def severity(self) -> int:
        return list(Status).index(self)


@dataclass(frozen=True)
class Thresholds:
    """PSI thresholds (`warn` <= `act`) and the fewest usable values a PSI is read on."""

    warn: float = 0.1
    act: float = 0.25
    min_rows: int = 100
    floor: float = PSI_FLOOR

    def __post_init__(self) -> None:
        if not (0 < self.warn <= self.act and math.isfinite(self.act)):
            raise ValueError(f"need 0 < warn <= act, got warn={self.warn} act={self.act}")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be >= 1, got {self.min_rows}")
        if not self.floor > 0:
            raise ValueError(f"floor must be > 0, got {self.floor}")

    def status_of(self, value: float) -> Status:
        if value >= self.act:
            return Status.ACT
        return Status.WARN if value >= self.warn else Status.OK


@dataclass(frozen=True)
class ColumnDrift:
    """One feature's (or the score's) reading: counts, proportions next to the baseline's."""

    name: str
    baseline: ColumnBaseline
    status: Status
    psi: float | None
    rows: int
    missing: int
    invalid: int
    absent: int
    proportions: tuple[float, ...]

    @property
    def missing_share(self) -> float | None:
        return self.missing / self.rows if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        bins = self.baseline
        labels = (
            {"edges": list(bins.edges)}
            if isinstance(bins, NumericBins)
            else {"categories": list(bins.categories)}
        )
        return {
            "name": self.name,
            "kind": bins.kind,
            "status": self.status.value,
            "psi": self.psi,
            "rows": self.rows,
            "missing": self.missing,
            "missing_share": self.missing_share,
            "invalid": self.invalid,
            "absent": self.absent,
            **labels,
            "baseline_proportions": list(bins.proportions),
            "window_proportions": list(self.proportions),
        }


@dataclass(frozen=True)
class WindowCounts:
    """What the window held: records used, skipped (other model/version), malformed."""

    records: int = 0
    skipped: int = 0
    malformed_records: int = 0
    outside_window: int = 0
    lines: int | None = None
    malformed_lines: int | None = None
    broken_sources: int | None = None
    first_ts: float | None = None
    last_ts: float | None = None


@dataclass(frozen=True)
class DriftReport:
    """Drift of one model version over one window; `status` is the worst column status."""

    model: str
    version: str | None
    thresholds: Thresholds
    window: WindowCounts
    features: Mapping[str, ColumnDrift]
    score: ColumnDrift
    baseline_rows: int = 0
    baseline_source: str = ""

    @property
    def columns(self) -> list[ColumnDrift]:
        return [*self.features.values(), self.score]

    @property
    def status(self) -> Status:
        return max((c.status for c in self.columns), key=lambda s: s.severity)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (no NaN or infinities; `json.dumps(..., allow_nan=False)` works)."""
        t = self.thresholds
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status.value,
            "thresholds": {"warn": t.warn, "act": t.act, "min_rows": t.min_rows, "floor": t.floor},
            "window": asdict(self.window),
            "baseline": {"rows": self.baseline_rows, "source": self.baseline_source},
            "features": {name: c.to_dict() for name, c in self.features.items()},
            "score": self.score.to_dict(),
        }


@dataclass
class _Tally:
    """Counts one column's values as they stream by, binned in chunks (memory stays flat)."""

    baseline: ColumnBaseline
    invalid: int = 0
    absent: int = 0
    counts: IntArray = field(init=False)
    _pending: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.baseline.proportions), dtype=np.int64)

    def add(self, value: object) -> None:
        """Numeric values wait, unchecked, for `flush` (which checks a whole chunk at C speed);
        categorical ones are counted at once. The caller flushes every `_FLUSH_EVERY` records."""
        if isinstance(self.baseline, CategoricalBins):
            self._add_category(value, self.baseline)
        else:
            self._pending.append(value)

    def _add_category(self, value: object, bins: CategoricalBins) -> None:
        try:
            key = category_key(value)
        except TypeError:
            self.invalid += 1
            return
        if key is None:
            self.counts[-1] += 1
        elif key in bins.categories:
            self.counts[bins.categories.index(key)] += 1
        else:
            self.counts[-2] += 1

    def pusher(self) -> Callable[[object], None]:
        """The cheapest way to hand this tally one value (`compute_drift`'s inner loop)."""
        return self._pending.append if isinstance(self.baseline, NumericBins) else self.add

    def flush(self) -> None:
        raw = list(self._pending)
        self._pending.clear()  # in place: `pusher` holds this list's append
        if not raw or not isinstance(self.baseline, NumericBins):
            return
        values: np.ndarray[Any, np.dtype[np.float64]] | None = None
        if set(map(type, raw)) <= _PLAIN:  # JSON numbers and nulls only: one conversion
            try:
                values = np.asarray(raw, dtype=np.float64)  # None -> NaN (the missing bin)
            except OverflowError:  # an integer beyond float range: judge value by value
                values = None
        if values is None:
            values = self._checked(raw)
        self.counts += bin_counts(values, self.baseline.edges)

    def _checked(self, raw: list[object]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Value by value: null is missing, a number counts, anything else is `invalid`."""
        kept: list[float] = []
        for value in raw:
            if value is None:
                kept.append(math.nan)
            elif (number := _number(value)) is not None:
                kept.append(number)
            else:
                self.invalid += 1
        return np.asarray(kept, dtype=np.float64)

    def result(self, name: str, records: int, thresholds: Thresholds) -> ColumnDrift:
        self.flush()
        rows = int(self.counts.sum())
        actual = shares(self.counts)
        value: float | None = None
        if records == 0:
            status = Status.EMPTY_WINDOW
        elif self.absent == records:
            status = Status.MISSING_FEATURE
        elif rows < thresholds.min_rows:
            status = Status.INSUFFICIENT_ROWS
        else:
            value = psi(self.baseline.proportions, actual, thresholds.floor)
            status = thresholds.status_of(value)
        return ColumnDrift(
            name=name,
            baseline=self.baseline,
            status=status,
            psi=value,
            rows=rows,
            missing=int(self.counts[-1]),
            invalid=self.invalid,
            absent=self.absent,
            proportions=tuple(float(s) for s in actual),
        )


@dataclass
class _Window:
    records: int = 0
    skipped: int = 0
    malformed: int = 0
    outside: int = 0
    first_ts: float | None = None
    last_ts: float | None = None

    def saw(self, ts: object) -> None:
        self.records += 1
        stamp = _number(ts)
        if stamp is not None and math.isfinite(stamp):
            self.first_ts = stamp if self.first_ts is None else min(self.first_ts, stamp)
            self.last_ts = stamp if self.last_ts is None else max(self.last_ts, stamp)

    def counts(self, source: Iterable[Any]) -> WindowCounts:
        lines = source if isinstance(source, LogLines) else None
        return WindowCounts(
            records=self.records,
            skipped=self.skipped,
            malformed_records=self.malformed,
            outside_window=self.outside,
            lines=lines.lines if lines else None,
            malformed_lines=lines.malformed if lines else None,
            broken_sources=lines.broken_sources if lines else None,
            first_ts=self.first_ts,
            last_ts=self.last_ts,
        )


def compute_drift(
    records: Iterable[Any],
    baseline_report: Baseline | Mapping[str, Any],
    *,
    model: str,
    version: str | int | None = None,
    thresholds: Thresholds | None = None,
    between: tuple[float, float] | None = None,
) -> DriftReport:
    """Drift of `model` (one `version`, or every version when None) over `records`.

    `between` = (start, end) in epoch seconds keeps only records with `start <= ts < end`; the
    others of the model (and those without a numeric `ts`) count as `outside_window`. Logs are
    partitioned by arrival day, so a window read from whole partitions needs it to be exact.

    `baseline_report` is a parsed `Baseline` or a whole evaluation report (`evaluation.json`);
    a malformed one raises `BaselineError` -- that is the version's fault, not the window's.
    Versions match by their string form (`3` matches `"3"`). `records` may be a `LogLines`
    (from `read_log_lines`); its line counts then appear in the report's window.
    """
    if isinstance(baseline_report, Baseline):
        baseline = baseline_report
    else:
        baseline = Baseline.from_evaluation(baseline_report)
    limits = thresholds or Thresholds()
    wanted = None if version is None else str(version)
    tallies = {name: _Tally(spec) for name, spec in baseline.features.items()}
    score = _Tally(baseline.score)
    columns = [(name, tally, tally.pusher()) for name, tally in tallies.items()]
    push_score = score.pusher()
    window = _Window()
    for record in records:
        if not isinstance(record, Mapping):
            window.malformed += 1
            continue
        if record.get("model") != model or (
            wanted is not None and str(record.get("version")) != wanted
        ):
            window.skipped += 1
            continue
        if between is not None and not _within(record.get("ts"), between):
            window.outside += 1
            continue
        values = record.get("features")
        if not isinstance(values, Mapping):
            window.malformed += 1
            continue
        window.saw(record.get("ts"))
        for name, tally, push in columns:
            value = values.get(name, _ABSENT)
            if value is _ABSENT:
                tally.absent += 1
            else:
                push(value)
        value = record.get(SCORE, _ABSENT)
        if value is _ABSENT:
            score.absent += 1
        else:
            push_score(value)
        if window.records % _FLUSH_EVERY == 0:
            for tally in (*tallies.values(), score):
                tally.flush()
    return DriftReport(
        model=model,
        version=wanted,
        thresholds=limits,
        window=window.counts(records),
        features={n: t.result(n, window.records, limits) for n, t in tallies.items()},
        score=score.result(SCORE, window.records, limits),
        baseline_rows=baseline.rows,
        baseline_source=baseline.source,
    )


def _number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (bools, strings, ints beyond float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _within(ts: object, between: tuple[float, float]) -> bool:
    stamp = _number(ts)
    return stamp is not None and between[0] <= stamp < between[1]


_ABSENT = object()
