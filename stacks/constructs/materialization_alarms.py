"""Alarms of the scheduled materialization; the stack adds the actions (its alarm topic).

Failures are alarmed three ways: an execution that failed after its retries or timed out, the
job's own `MaterializationFailed` metric (every failed attempt, retried or not), and schedule
deliveries that ended in the dead-letter queue. Freshness is alarmed per view: in every period
of the staleness window the job reported a `FreshnessLagSeconds` (now minus the end of the last
materialized window) above the limit, or reported nothing. Missing data breaches, so a job that
stopped running -- schedule disabled, executions failing before the job starts -- alarms too.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


def failure_alarms(
    scope: Construct,
    *,
    state_machine: sfn.StateMachine,
    dead_letters: sqs.IQueue,
    namespace: str,
    project: str,
) -> list[cloudwatch.Alarm]:
    five = Duration.minutes(5)
    checks = [
        ("ExecutionsFailed", state_machine.metric_failed(period=five),
         "A materialization execution failed after its retries"),
        ("ExecutionsTimedOut", state_machine.metric_timed_out(period=five),
         "A materialization execution timed out"),
        ("JobFailed", cloudwatch.Metric(
            namespace=namespace, metric_name="MaterializationFailed",
            dimensions_map={"Project": project}, statistic="Maximum", period=five),
         "A materialization run failed (it is retried; see its run record)"),
        ("ScheduleUndelivered", dead_letters.metric_approximate_number_of_messages_visible(
            period=five), "The schedule could not start materialization executions"),
    ]  # fmt: skip
    return [
        metric.create_alarm(
            scope, alarm_id, threshold=1, evaluation_periods=1, alarm_description=description,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for alarm_id, metric, description in checks
    ]  # fmt: skip


def freshness_alarms(
    scope: Construct,
    *,
    views: Sequence[str],
    namespace: str,
    project: str,
    max_staleness_hours: int,
    period_seconds: int,
) -> list[cloudwatch.Alarm]:
    """One per view; periods of the schedule's interval spanning the staleness window."""
    periods = max(1, max_staleness_hours * 3600 // period_seconds)
    alarms = []
    for view in views:
        metric = cloudwatch.Metric(
            namespace=namespace, metric_name="FreshnessLagSeconds",
            dimensions_map={"Project": project, "View": view},
            statistic="Maximum", period=Duration.seconds(period_seconds),
        )  # fmt: skip
        alarms.append(
            metric.create_alarm(
                scope, f"{view.title().replace('_', '')}Stale",
                threshold=max_staleness_hours * 3600,
                evaluation_periods=periods, datapoints_to_alarm=periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
                alarm_description=f"Online features of {view} are older than "
                f"{max_staleness_hours} h, or no materialization run reported them for as long",
            )
        )  # fmt: skip
    return alarms
