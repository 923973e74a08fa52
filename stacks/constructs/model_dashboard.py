"""A CloudWatch dashboard per served model: traffic, errors, latency, the version serving,
drift per feature, training runs and feature freshness on one page.

Sources: the serving app's embedded-metric lines (`MLOps/Serving`: Requests, Status4xx,
Status5xx, Latency by Model; Predictions by Model and ModelVersion -- serving/metrics.py), the
drift job (`monitoring.metrics`: PSI by Model and Feature, MaxPSI, Records), the training
workflow's state machine (AWS/States, shared by every model), and materialization's freshness
lag per feature view (`MLOps/FeatureStore`). Versions and features are found with SEARCH
expressions, so a new version or feature appears without a redeploy.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

_FIVE = Duration.minutes(5)
_DAY = Duration.days(1)
_WIDTH = 8  # three widgets per row of 24


def _search(namespace: str, dims: str, metric: str, model: str, stat: str, seconds: int) -> str:
    return (f"SEARCH('{{{namespace},{dims}}} MetricName=\"{metric}\" Model=\"{model}\"', "
            f"'{stat}', {seconds})")  # fmt: skip


class ModelDashboard(Construct):
    """`dashboard` for `model`; thresholds are drawn on the drift graphs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        model: str,
        serving_namespace: str,
        drift_namespace: str,
        warn: float,
        act: float,
        state_machine: sfn.IStateMachine,
        freshness_namespace: str,
        feast_project: str,
        views: Sequence[str],
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)

        def serving(metric: str, stat: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=serving_namespace, metric_name=metric, dimensions_map={"Model": model},
                statistic=stat, period=_FIVE, label=label,
            )  # fmt: skip

        def drift(metric: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=drift_namespace, metric_name=metric, dimensions_map={"Model": model},
                statistic="Maximum", period=_DAY, label=label,
            )  # fmt: skip

        limits = [
            cloudwatch.HorizontalAnnotation(value=warn, label=f"warn {warn}",
                                            color=cloudwatch.Color.ORANGE),
            cloudwatch.HorizontalAnnotation(value=act, label=f"act {act}",
                                            color=cloudwatch.Color.RED),
        ]  # fmt: skip
        versions = cloudwatch.MathExpression(
            expression=_search(serving_namespace, "Model,ModelVersion", "Predictions", model,
                               "Sum", 300),
            label="", period=_FIVE,
        )  # fmt: skip
        psi = cloudwatch.MathExpression(
            expression=_search(drift_namespace, "Model,Feature", "PSI", model, "Maximum",
                               86400),
            label="", period=_DAY,
        )  # fmt: skip
        freshness = [
            cloudwatch.Metric(
                namespace=freshness_namespace,
                metric_name="FreshnessLagSeconds",
                dimensions_map={"Project": feast_project, "View": view},
                statistic="Maximum",
                period=_FIVE,
                label=view,
            )  # fmt: skip
            for view in views
        ]
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name,
            default_interval=Duration.days(7),
        )  # fmt: skip
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {model}\nServing (5-minute sums), drift (daily PSI of the "
                "champion against its training baselines), training runs and feature "
                "freshness. `mlops drift` prints the latest reading; `mlops models list` the "
                "versions.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Requests", width=_WIDTH, left=[
                serving("Requests", "Sum", "requests")]),
            cloudwatch.GraphWidget(title="Client and server errors", width=_WIDTH, left=[
                serving("Status4xx", "Sum", "4xx"), serving("Status5xx", "Sum", "5xx")]),
            cloudwatch.GraphWidget(title="Latency (ms, server side)", width=_WIDTH, left=[
                serving("Latency", "p50", "p50"), serving("Latency", "p99", "p99")]),
        )  # fmt: skip
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Predictions by model version", width=_WIDTH,
                                   left=[versions], stacked=True),
            cloudwatch.GraphWidget(title="PSI per feature (daily)", width=_WIDTH, left=[psi],
                                   left_annotations=limits),
            cloudwatch.GraphWidget(title="Worst PSI and records read", width=_WIDTH,
                                   left=[drift("MaxPSI", "max PSI")], left_annotations=limits,
                                   right=[drift("Records", "records in window")]),
        )  # fmt: skip
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Training runs (all models)", width=_WIDTH, left=[
                state_machine.metric_started(period=_FIVE, label="started"),
                state_machine.metric_succeeded(period=_FIVE, label="succeeded"),
                state_machine.metric_failed(period=_FIVE, label="failed")]),
            cloudwatch.GraphWidget(title="Online feature freshness (lag, s)", width=_WIDTH,
                                   left=freshness),
            cloudwatch.AlarmStatusWidget(title="Alarms", width=_WIDTH, alarms=list(alarms)),
        )  # fmt: skip
