"""The evaluation gate's decision, free of AWS: may this trained model become a version?

A candidate passes when its metric clears the manifest's threshold and, if the group already
has an approved version (the champion), beats the champion by `min_improvement`. "Beats"
follows `direction`: higher is better for `max` (AUC), lower for `min` (log loss). The
reason is written for the approver and the data scientist, so it always carries the numbers.

Comparisons at exactly the threshold or exactly the margin pass; a tolerance of 1e-9 relative
(1e-12 absolute) absorbs binary float noise such as 0.77 + 0.005 != 0.775, so "exactly at" means
what a person reading four decimals would expect.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

METADATA_PREFIX = "metric."


class EvaluationReportError(Exception):
    """evaluation.json is unreadable, malformed, or lacks the gate's metric.

    A Step Functions error name: the run fails (it is not a gate decision), and the reason
    names what is missing and what the report does contain.
    """


class Direction(StrEnum):
    MAX = "max"  # higher is better
    MIN = "min"  # lower is better


@dataclass(frozen=True)
class Criteria:
    metric: str
    direction: Direction
    threshold: float
    min_improvement: float = 0.0


@dataclass(frozen=True)
class Champion:
    """The newest approved version; `value` is None when its metadata lacks the metric."""

    arn: str
    version: int | None
    label: str  # "<group>/<version>", as approvers see it in the registry
    value: float | None


@dataclass(frozen=True)
class Decision:
    passed: bool
    reason: str
    value: float | None  # the candidate's metric, None when not a finite number
    improvement: float | None  # positive = better than the champion, in `direction`


def report_metrics(text: str | bytes, source: str) -> dict[str, Any]:
    """The `metrics` object of an evaluation.json document."""
    try:
        report = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EvaluationReportError(f"{source} is not valid JSON: {exc}") from None
    metrics = report.get("metrics") if isinstance(report, dict) else None
    if not isinstance(metrics, dict):
        raise EvaluationReportError(f"{source} has no 'metrics' object")
    return metrics


def metric_of(metrics: Mapping[str, Any], name: str, source: str) -> Any:
    """The raw value of `name`; raises when the report does not contain it at all."""
    if name not in metrics:
        available = ", ".join(sorted(metrics)) or "none"
        raise EvaluationReportError(
            f"metric {name!r} is not in {source}; available metrics: {available}"
        )
    return metrics[name]


def as_number(value: Any) -> float | None:
    """A float for JSON numbers (NaN/inf included); None for strings, booleans, null..."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def champion_value(properties: Mapping[str, str] | None, metric: str) -> float | None:
    """The champion's metric from its `metric.<name>` metadata; None if absent or unusable."""
    raw = (properties or {}).get(f"{METADATA_PREFIX}{metric}")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def json_safe(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics with non-finite floats as None: NaN is not JSON, and Step Functions rejects it."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()
    }


def fmt(value: float) -> str:
    """Four decimals, as approvers read metrics; tiny non-zero values keep two significant."""
    if value != 0 and abs(value) < 0.00005:
        return f"{value:.2g}"
    return f"{value:.4f}"


def _at_least(a: float, b: float) -> bool:
    return a >= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def decide(criteria: Criteria, value: Any, champion: Champion | None) -> Decision:
    """Pass or fail `value` (the candidate's raw metric) against the criteria and champion."""
    name = criteria.metric
    number = as_number(value)
    if number is None:
        reason = f"{name} is {value!r} ({type(value).__name__}), not a number, so it cannot pass"
        return Decision(False, reason, None, None)
    if not math.isfinite(number):
        reason = f"{name} is {number} in the evaluation report, so it cannot pass"
        return Decision(False, reason, None, None)
    v, threshold = fmt(number), fmt(criteria.threshold)
    if criteria.direction is Direction.MAX and not _at_least(number, criteria.threshold):
        return Decision(False, f"{name} {v} is below the threshold {threshold}", number, None)
    if criteria.direction is Direction.MIN and not _at_least(criteria.threshold, number):
        reason = f"{name} {v} is above the threshold {threshold} (lower is better)"
        return Decision(False, reason, number, None)
    passes = f"{name} {v} passes the threshold {threshold}"
    if champion is None:
        reason = f"{passes}; no approved version to compare with yet (first version)"
        return Decision(True, reason, number, None)
    if champion.value is None:
        reason = (
            f"{passes}; champion {champion.label} has no recorded {name} "
            f"(metadata {METADATA_PREFIX}{name}), so it was compared by threshold only"
        )
        return Decision(True, reason, number, None)
    return _versus_champion(criteria, number, champion, champion.value)


def _versus_champion(
    criteria: Criteria, number: float, champion: Champion, champion_metric: float
) -> Decision:
    gain = number - champion_metric
    if criteria.direction is Direction.MIN:
        gain = -gain
    improvement = round(gain, 12)  # drop float noise from the reported number
    name, v, c = criteria.metric, fmt(number), fmt(champion_metric)
    required = fmt(criteria.min_improvement)
    if _at_least(gain, criteria.min_improvement):
        reason = (
            f"{name} {v} passes the threshold {fmt(criteria.threshold)} and beats champion "
            f"{champion.label} ({c}) by {fmt(improvement)} (required {required})"
        )
        return Decision(True, reason, number, improvement)
    reason = (
        f"{name} {v} does not beat the champion {champion.label} ({c}) by the required "
        f"{required} (improvement {fmt(improvement)})"
    )
    return Decision(False, reason, number, improvement)
