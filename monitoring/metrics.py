"""CloudWatch metrics of one drift reading (what the drift job publishes, dashboards plot and
alarms watch).

In the configured namespace (`monitoring.metrics_namespace`, default `MLOps/Drift`):

- `PSI` {Model, Feature}: each column's PSI (the score is `Feature=score`), for the columns
  with a reading;
- `MaxPSI` {Model}: the largest PSI of the reading, what the `warn` and `act` alarms watch;
- `Records` {Model}: records of the served version in the window (0 = no traffic or no logs);
- `DataProblems` {Model}: columns whose status is a data problem (missing feature, too few
  rows, empty window).

`MaxPSI` is left out when no column has a PSI (an empty window): the alarms treat a missing
reading as "no change", so a quiet day neither raises nor clears them. The timestamp is the
reading's time, so an alarm with a one-day period sees each daily reading once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from monitoring.drift import DriftReport

MAX_PER_CALL = 500  # PutMetricData takes up to 1,000 values per request; stay well within
DATA_PROBLEMS = frozenset({"insufficient_rows", "missing_feature", "empty_window"})


def metric_data(report: DriftReport, at: datetime) -> list[dict[str, Any]]:
    """PutMetricData `MetricData` entries for `report`, stamped `at`."""
    model = {"Name": "Model", "Value": report.model}
    readings = [(c.name, c.psi) for c in report.columns if c.psi is not None]
    data: list[dict[str, Any]] = [
        {"MetricName": "PSI", "Dimensions": [model, {"Name": "Feature", "Value": name}],
         "Timestamp": at, "Value": value, "Unit": "None"}
        for name, value in readings
    ]  # fmt: skip
    if readings:
        data.append({"MetricName": "MaxPSI", "Dimensions": [model], "Timestamp": at,
                     "Value": max(v for _, v in readings), "Unit": "None"})  # fmt: skip
    problems = sum(1 for c in report.columns if c.status.value in DATA_PROBLEMS)
    data += [
        {"MetricName": "Records", "Dimensions": [model], "Timestamp": at,
         "Value": float(report.window.records), "Unit": "Count"},
        {"MetricName": "DataProblems", "Dimensions": [model], "Timestamp": at,
         "Value": float(problems), "Unit": "Count"},
    ]  # fmt: skip
    return data


def batches(data: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(data), MAX_PER_CALL):
        yield data[start : start + MAX_PER_CALL]


def publish(cloudwatch: Any, namespace: str, report: DriftReport, at: datetime) -> int:
    """Put the reading's metrics; returns how many values were put."""
    data = metric_data(report, at)
    for batch in batches(data):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=batch)
    return len(data)
