"""CloudWatch metric alarms that evaluate, change state and act, as they do on AWS.

moto 5.2.5 stores alarms and metric data but never relates them: a new alarm is OK ("Unchecked:
Initial alarm creation") whatever data arrives, and re-putting an alarm resets its state. Here
PutMetricAlarm creates an alarm in INSUFFICIENT_DATA, an update keeps its state, and the alarm
is then evaluated; PutMetricData evaluates every alarm on a metric just put (same Namespace,
MetricName and exact set of Dimensions; the alarm's Unit, if set, filters the data); a
SetAlarmState that changes the state value is announced like an evaluated change.

Evaluation: periods are aligned to multiples of `Period` since the epoch, as CloudWatch
aggregates, and the range is the `EvaluationPeriods` periods ending with the period of the
metric's newest datapoint. A period's value is the `Statistic`, or the `ExtendedStatistic` pNN
(nearest rank over single values; a period holding only StatisticValues sets counts as
missing). ALARM when at least `DatapointsToAlarm` (default EvaluationPeriods) periods breach
`Threshold`, else OK. Periods without data, by TreatMissingData: `missing` (default) and `ignore`
judge the periods that have data -- with none, `missing` goes to INSUFFICIENT_DATA and `ignore`
keeps the state; `breaching`/`notBreaching` count them as breaching/not breaching.

A change of state value (the first one out of INSUFFICIENT_DATA included) goes through moto's
`Alarm.update_state` with CloudWatch's reason wording and reason data; the documented "CloudWatch
Alarm State Change" event goes to the default bus; with ActionsEnabled, the new state's SNS
topic actions get the standard alarm notification JSON. All in the calling request, in order;
failures are logged and never fail the API call.

Not emulated: evaluation on a clock (a metric that stops reporting never turns its alarm
INSUFFICIENT_DATA), reaching for older datapoints when some are missing, metric math, anomaly
detection and composite alarms (not evaluated; SetAlarmState still announces them),
EvaluateLowSampleCountPercentile, non-SNS actions (logged and skipped), DescribeAlarmHistory.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from localaws.events import put_aws_event
from localaws.patching import PatchSet

LOGGER = logging.getLogger(__name__)
_lock = threading.Lock()  # one evaluation or state change at a time, across server threads
_OPERATORS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": ("greater than", operator.gt),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", operator.ge),
    "LessThanThreshold": ("less than", operator.lt),
    "LessThanOrEqualToThreshold": ("less than or equal to", operator.le),
}
_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_ACTIONS = {"ALARM": "alarm_actions", "OK": "ok_actions"}


@dataclass(frozen=True)
class _Period:
    start: datetime
    value: float | None  # None: no data (or no percentile) in the period
    samples: int


def _utc(value: datetime) -> datetime:  # moto keeps naive UTC datetimes
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stamp(value: datetime) -> str:
    moment = _utc(value)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+0000"


def _dimension_set(dimensions: Iterable[Any]) -> frozenset[tuple[str, str]]:
    return frozenset((str(d.name), str(d.value)) for d in dimensions)


def _percentile(statistic: str | None) -> float | None:
    match = re.fullmatch(r"p(100|\d{1,2}(\.\d+)?)", statistic or "")
    return float(match.group(1)) if match else None


def evaluable(alarm: Any) -> bool:
    """A single-metric alarm with a static threshold and a statistic computed here."""
    static = alarm.comparison_operator in _OPERATORS and alarm.period and alarm.evaluation_periods
    if not static or alarm.metric_data_queries or alarm.rule:
        return False
    if alarm.extended_statistic:
        return _percentile(alarm.extended_statistic) is not None
    return alarm.statistic in _STATISTICS


# -- evaluation ------------------------------------------------------------------------------------
def _aggregate(alarm: Any, data: list[Any]) -> float | None:
    singles = [float(d.value) for d in data if hasattr(d, "value")]
    sets = [d for d in data if not hasattr(d, "value")]  # StatisticValues
    rank = _percentile(alarm.extended_statistic)
    if rank is not None:
        if sets or not singles:
            return None
        ordered = sorted(singles)
        return ordered[max(math.ceil(rank / 100 * len(ordered)) - 1, 0)]
    count = len(singles) + sum(float(s.sample_count) for s in sets)
    total = sum(singles) + sum(float(s.sum) for s in sets)
    if alarm.statistic == "Minimum":
        return min(singles + [float(s.min) for s in sets])
    if alarm.statistic == "Maximum":
        return max(singles + [float(s.max) for s in sets])
    by_name = {"SampleCount": count, "Sum": total, "Average": total / count if count else None}
    return by_name[alarm.statistic]


def _periods(backend: Any, alarm: Any) -> list[_Period]:
    """The evaluation range, oldest first, ending with the period of the newest datapoint."""
    wanted = _dimension_set(alarm.dimensions)
    data = [
        (_utc(d.timestamp).timestamp(), d)
        for d in backend.metric_data
        if (d.namespace, d.name) == (alarm.namespace, alarm.metric_name)
        and _dimension_set(d.dimensions) == wanted
        and (not alarm.unit or d.unit == alarm.unit)
    ]
    seconds = int(alarm.period)
    newest = max((at for at, _ in data), default=datetime.now(UTC).timestamp())
    last = newest - newest % seconds
    periods = []
    for back in range(int(alarm.evaluation_periods) - 1, -1, -1):
        start = last - back * seconds
        inside = [d for at, d in data if start <= at < start + seconds]
        value = _aggregate(alarm, inside) if inside else None
        periods.append(_Period(datetime.fromtimestamp(start, UTC), value, len(inside)))
    return periods


def _decide(alarm: Any, periods: list[_Period]) -> str | None:
    """The state the periods put the alarm in; None keeps the current one."""
    breaches = _OPERATORS[alarm.comparison_operator][1]
    values = [p.value for p in periods if p.value is not None]
    breaching = sum(1 for value in values if breaches(value, float(alarm.threshold)))
    treat = alarm.treat_missing_data or "missing"
    if treat == "breaching":
        breaching += len(periods) - len(values)
    if breaching >= int(alarm.datapoints_to_alarm or alarm.evaluation_periods):
        return "ALARM"
    if values or treat in ("breaching", "notBreaching"):
        return "OK"
    return None if treat == "ignore" else "INSUFFICIENT_DATA"


def _reason(alarm: Any, periods: list[_Period], old: str, new: str) -> str:
    """StateReason in CloudWatch's wording."""
    if new == "INSUFFICIENT_DATA":
        return f"Insufficient Data: {len(periods)} datapoint(s) unknown."
    word, breaches = _OPERATORS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    present = [(p.start, p.value) for p in reversed(periods) if p.value is not None]
    alarming = new == "ALARM"
    counted = sum(1 for _, value in present if breaches(value, threshold) == alarming)
    listed = ", ".join(f"{value!r} ({start:%d/%m/%y %H:%M:%S})" for start, value in present)
    minimum = int(alarm.datapoints_to_alarm or alarm.evaluation_periods) if alarming else 1
    return (
        f"Threshold Crossed: {counted} out of the last {len(periods)} datapoints [{listed}] "
        f"{'was' if counted == 1 else 'were'} {'' if alarming else 'not '}{word} the threshold "
        f"({threshold!r}) (minimum {minimum} datapoint{'' if minimum == 1 else 's'} for "
        f"{old} -> {new} transition)."
    )


def _reason_data(alarm: Any, periods: list[_Period]) -> str:
    """StateReasonData: CloudWatch's JSON with the evaluated datapoints, newest first."""
    kind = "extendedStatistic" if alarm.extended_statistic else "statistic"
    data = {
        "version": "1.0",
        "queryDate": _stamp(datetime.now(UTC)),
        "startDate": _stamp(periods[0].start),
        kind: alarm.extended_statistic or alarm.statistic,
        "period": int(alarm.period),
        "recentDatapoints": [p.value for p in periods if p.value is not None],
        "threshold": float(alarm.threshold),
        "evaluatedDatapoints": [
            {"timestamp": _stamp(p.start)}
            | ({} if p.value is None else {"sampleCount": float(p.samples), "value": p.value})
            for p in reversed(periods)
        ],
    }
    return json.dumps(data)


def _evaluate(backend: Any, alarm: Any) -> dict[str, Any] | None:
    """Evaluate one alarm (holding `_lock`); its previous state when the value changed."""
    if not evaluable(alarm):
        return None
    periods = _periods(backend, alarm)
    new = _decide(alarm, periods)
    if new is None or new == alarm.state_value:
        return None
    old = _snapshot(alarm)
    reason, data = _reason(alarm, periods, old["value"], new), _reason_data(alarm, periods)
    alarm.update_state(reason, data, new)
    return old


# -- what a change announces -----------------------------------------------------------------------
def _snapshot(alarm: Any) -> dict[str, Any]:
    state = {
        "value": alarm.state_value,
        "reason": alarm.state_reason,
        "timestamp": _stamp(alarm.state_updated_timestamp),
    }
    if alarm.state_reason_data not in (None, "", "{}"):
        state["reasonData"] = alarm.state_reason_data
    return state


def _metric(source: Any) -> dict[str, Any]:
    dimensions = {str(d.name): d.value for d in source.dimensions}
    return {"namespace": source.namespace, "name": source.metric_name, "dimensions": dimensions}


def _configuration(alarm: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"description": alarm.description} if alarm.description else {}
    if alarm.rule:
        return config | {"alarmRule": alarm.rule}
    metrics: list[dict[str, Any]] = []
    for query in alarm.metric_data_queries:  # a math alarm (SetAlarmState only)
        stat = query.metric_stat
        shown = {"expression": query.expression} if query.expression else {"metricStat": {
            "metric": _metric(stat.metric), "period": stat.period, "stat": stat.stat}}  # fmt: skip
        metrics.append({"id": query.id, **shown, "returnData": query.return_data is not False})
    if not metrics:
        stat = {"metric": _metric(alarm), "period": alarm.period,
                "stat": alarm.extended_statistic or alarm.statistic}  # fmt: skip
        metric_id = str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn))  # stable per alarm
        metrics.append({"id": metric_id, "metricStat": stat, "returnData": True})
    return config | {"metrics": metrics}


@cache
def _region_name(region: str) -> str:
    """`Asia Pacific (Seoul)` for `ap-northeast-2`, as alarm notifications name regions."""
    import botocore.session

    for partition in botocore.session.get_session().get_data("endpoints")["partitions"]:
        if region in partition["regions"]:
            return str(partition["regions"][region].get("description", region))
    return region


def notification(alarm: Any, old_value: str) -> tuple[dict[str, Any], str]:
    """The SNS message (a JSON object) and subject CloudWatch publishes for a state change."""
    region = _region_name(alarm.region_name)
    trigger: dict[str, Any] = {"MetricName": alarm.metric_name, "Namespace": alarm.namespace}
    if alarm.extended_statistic:
        trigger["StatisticType"] = "ExtendedStatistic"
        trigger["ExtendedStatistic"] = alarm.extended_statistic
    else:  # CloudWatch writes the statistic in capitals here, e.g. "MAXIMUM"
        trigger["StatisticType"] = "Statistic"
        trigger["Statistic"] = str(alarm.statistic or "").upper()
    trigger |= {
        "Unit": alarm.unit,
        "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
        "Period": alarm.period,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm or alarm.evaluation_periods,
        "ComparisonOperator": alarm.comparison_operator,
        "Threshold": alarm.threshold,
        "TreatMissingData": alarm.treat_missing_data or "missing",
        "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
    }
    message = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": alarm.alarm_arn.split(":")[4],
        "AlarmConfigurationUpdatedTimestamp": _stamp(alarm.configuration_updated_timestamp),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": _stamp(alarm.state_updated_timestamp),
        "Region": region,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old_value,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions or []),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "Trigger": trigger,
    }
    return message, f'{alarm.state_value}: "{alarm.name}" in {region}'[:100]


def _announce(backend: Any, alarm: Any, old: dict[str, Any]) -> None:
    """The state-change event, then the new state's actions (when enabled); never raises."""
    try:
        detail = {"alarmName": alarm.name, "state": _snapshot(alarm), "previousState": old,
                  "configuration": _configuration(alarm)}  # fmt: skip
        put_aws_event(backend.account_id, backend.region_name, "aws.cloudwatch",
                      "CloudWatch Alarm State Change", detail, [alarm.alarm_arn])  # fmt: skip
    except Exception:
        LOGGER.exception("could not put the state change event of alarm %s", alarm.name)
    if not alarm.actions_enabled:
        return
    for arn in getattr(alarm, _ACTIONS.get(alarm.state_value, "insufficient_data_actions")) or []:
        try:
            _run_action(alarm, old["value"], arn)
        except Exception as exc:
            LOGGER.warning("alarm %s could not run its action %s: %s", alarm.name, arn, exc)


def _run_action(alarm: Any, old: str, arn: str) -> None:
    _, _, service, region, account = arn.split(":")[:5]
    if service != "sns":
        raise NotImplementedError(f"{service} alarm actions are not emulated")
    from moto.sns.models import sns_backends

    message, subject = notification(alarm, old)
    sns_backends[account][region].publish(json.dumps(message), arn=arn, subject=subject)


# -- moto patches ----------------------------------------------------------------------------------
def _put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
    _PATCHES["CloudWatchBackend.put_metric_data"](self, namespace, metric_data)
    try:
        put = set()
        for datum in metric_data:
            dimensions = datum.get("Dimensions") or []
            put.add((datum["MetricName"], frozenset((d["Name"], d["Value"]) for d in dimensions)))
        changes = []
        with _lock:
            for alarm in list(self.alarms.values()):
                key = (alarm.metric_name, _dimension_set(alarm.dimensions))
                if alarm.namespace == namespace and key in put:
                    old = _evaluate(self, alarm)
                    if old is not None:
                        changes.append((alarm, old))
        for alarm, old in changes:
            _announce(self, alarm, old)
    except Exception:
        LOGGER.exception("could not evaluate the alarms on the %s metrics just put", namespace)


def _set_alarm_state(self: Any, name: str, reason: str, data: str, value: str) -> None:
    with _lock:
        alarm = self.alarms.get(name)
        old = _snapshot(alarm) if alarm is not None else None
        _PATCHES["CloudWatchBackend.set_alarm_state"](self, name, reason, data, value)
    if old is not None and old["value"] != value:
        _announce(self, alarm, old)


def _put_metric_alarm(self: Any) -> Any:
    """CloudWatchResponse.put_metric_alarm: AWS's state on creation and update, then evaluate."""
    backend, name = self.cloudwatch_backend, self._get_param("AlarmName")
    old = None
    with _lock:
        previous = backend.alarms.get(name)
        result = _PATCHES["CloudWatchResponse.put_metric_alarm"](self)
        alarm = backend.alarms.get(name)
        if alarm is not None and alarm is not previous:
            if previous is None:
                alarm.state_value = "INSUFFICIENT_DATA"
            else:
                for kept in ("state_value", "state_reason", "state_reason_data", "history",
                             "state_updated_timestamp"):  # fmt: skip
                    setattr(alarm, kept, getattr(previous, kept))
            try:
                old = _evaluate(backend, alarm)
            except Exception:
                LOGGER.exception("could not evaluate the alarm %s", name)
    if old is not None:
        _announce(backend, alarm, old)
    return result


def _patches() -> list[tuple[Any, str, Any]]:
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse

    return [
        (CloudWatchBackend, "put_metric_data", _put_metric_data),
        (CloudWatchBackend, "set_alarm_state", _set_alarm_state),
        (CloudWatchResponse, "put_metric_alarm", _put_metric_alarm),
    ]


_PATCHES = PatchSet(_patches)


def install() -> None:
    """Make moto's CloudWatch evaluate alarms and act on their state changes. Idempotent."""
    _PATCHES.install()


def uninstall() -> None:
    """Restore moto's CloudWatch."""
    _PATCHES.uninstall()
