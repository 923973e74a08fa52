"""Monitoring: the scheduled drift job, drift alarms, continuous training and dashboards.

* **Drift job** (`lambdas/drift_job`): EventBridge Scheduler runs it on `monitoring.
  drift_schedule` (daily by default) with the scheduled time as the window's end. It reads each
  served model's champion against the last `window_days` of prediction logs, publishes PSI
  metrics and writes an HTML + JSON report to the reports bucket.
* **Alarms** per model on `MaxPSI`: `warn` and `act` (thresholds from config), to the
  notification topic unless the model's policy is `off`; plus the job's and the retraining
  function's errors and undelivered schedules.
* **Continuous training** (`lambdas/retrain`): for policy `retrain`, an EventBridge rule turns
  the `act` alarm's transition into ALARM into one retraining run; `retrain_schedule` adds a
  time-based one. The function's role has a fixed name, the only principal the training
  stack's code bucket lets write under `continuous-training/`.
* **Dashboards**: one per served model (stacks/constructs/model_dashboard.py).
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.retrain.domain import ALARM_DETAIL_TYPE, ALARM_SOURCE, PREFIX
from mlops.config import EnvironmentConfig
from stacks.base import PlatformStack, model_id, retrain_role_name
from stacks.constructs.materialization import MATERIALIZED_VIEWS
from stacks.constructs.materialization import METRICS_NAMESPACE as FRESHNESS_NAMESPACE
from stacks.constructs.model_dashboard import ModelDashboard
from stacks.constructs.python_function import LambdaSource, PythonFunction
from stacks.constructs.scheduler_role import scheduler_role
from stacks.constructs.secure_bucket import SecureBucket
from stacks.constructs.serving_lambda import (
    SERVING_METRICS_NAMESPACE,
    pointer_parameter_arns,
    registry_statements,
)
from stacks.nag_reasons import (
    suppress_dead_letter_queue,
    suppress_grant_wildcards,
    suppress_monitoring_findings,
)
from stacks.security import removal_policy
from stacks.serving import ServingStack
from stacks.training import TrainingStack

_MONITORING = ("monitoring/__init__.py", "monitoring/_svg.py", "monitoring/drift.py",
               "monitoring/job.py", "monitoring/logs.py", "monitoring/metrics.py",
               "monitoring/psi.py", "monitoring/report.py")  # fmt: skip
_POINTER = ("mlops/__init__.py", "mlops/deployments.py", "mlops/dynamo.py")
DRIFT_SOURCE = LambdaSource(
    handler="lambdas.drift_job.handler.handler",
    include=("lambdas/drift_job", "lambdas/common.py", *_MONITORING, *_POINTER),
    requirements="lambdas/drift_job/requirements.txt",
)
RETRAIN_SOURCE = LambdaSource(
    handler="lambdas.retrain.handler.handler",
    include=("lambdas/retrain", "lambdas/common.py", "mlops/runs.py", *_POINTER),
    requirements="lambdas/retrain/requirements.txt",
)
REPORT_PREFIX = "drift-reports/"
EVALUATION_REPORTS = "runs/*/evaluation/*"
_FIVE = Duration.minutes(5)


class MonitoringStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_config: EnvironmentConfig,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
        champion_prefix: str,
        serving: ServingStack,
        training: TrainingStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        config = env_config.monitoring
        self._key, self._prefix = data_key, champion_prefix
        self.models = sorted(env_config.serving.models)
        self.reports = SecureBucket(
            self, "Reports", encryption_key=data_key, access_logs=access_logs,
            removal_policy=removal_policy(env_config), versioned=False,
        ).bucket  # fmt: skip
        self.reports.add_lifecycle_rule(
            id="expire-drift-reports", expiration=Duration.days(config.report_retention_days)
        )
        self.dead_letters = sqs.Queue(
            self, "MonitoringDeadLetters", encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=data_key, enforce_ssl=True, retention_period=Duration.days(14),
        )  # fmt: skip
        suppress_dead_letter_queue(self.dead_letters, "the drift and retraining schedules")
        self.drift_job = self._drift_job(serving, training)
        self.scheduler_role = scheduler_role(
            self,
            "SchedulerRole",
            description="EventBridge Scheduler: drift job and retraining",
            data_key=data_key,
        )
        self.drift_schedule = self._schedule(
            "DriftSchedule", config.drift_schedule, self.drift_job,
            {"end": scheduler.ContextAttribute.scheduled_time},
            "Drift readings of the served models' champions",
        )  # fmt: skip
        action = cw_actions.SnsAction(training.topic)
        self.drift_alarms = {m: self._drift_alarms(m) for m in self.models}
        for model, alarms in self.drift_alarms.items():
            if config.of(model).policy != "off":
                for alarm in alarms:
                    alarm.add_alarm_action(action)
        self.retrain = self._continuous_training(training)
        for alarm in self._ops_alarms():
            alarm.add_alarm_action(action)
        self.dashboards = [self._dashboard(m, training) for m in self.models]
        for function in (self.drift_job, self.retrain):
            if function is not None:
                suppress_monitoring_findings(function.role)
        suppress_grant_wildcards(self.scheduler_role)
        outputs = {
            "DriftReportBucket": self.reports.bucket_name,
            "DriftReportPrefix": REPORT_PREFIX,
            "DriftJobFunctionName": self.drift_job.function.function_name,
            "DriftScheduleName": self.drift_schedule.schedule_name,
            "DriftMetricsNamespace": config.metrics_namespace,
            "Dashboards": ",".join(d.dashboard.dashboard_name for d in self.dashboards),
        }
        if self.retrain is not None:
            outputs["RetrainFunctionName"] = self.retrain.function.function_name
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    # -- drift job --------------------------------------------------------------------------
    def _drift_job(self, serving: ServingStack, training: TrainingStack) -> PythonFunction:
        env, config = self.env_config, self.env_config.monitoring
        job = PythonFunction(
            self, "DriftJob", source=DRIFT_SOURCE, python_version=env.lambda_python,
            dependencies=env.lambda_dependencies, log_retention_days=env.log_retention_days,
            log_key=self._key, description="drift job: PSI of each champion over the last "
            "window of prediction logs; metrics and an HTML report",
            timeout=Duration.minutes(config.job_timeout_minutes), memory_size=config.job_memory_mb,
            reserved_concurrent_executions=1,
            environment={
                "LOG_BUCKET": serving.prediction_log.bucket.bucket_name,
                "REPORT_BUCKET": self.reports.bucket_name, "REPORT_PREFIX": REPORT_PREFIX,
                "CHAMPION_PREFIX": self._prefix, "MODELS": ",".join(self.models),
                "METRICS_NAMESPACE": config.metrics_namespace,
                "WINDOW_HOURS": str(config.window_days * 24), "WARN": str(config.warn),
                "ACT": str(config.act), "MIN_ROWS": str(config.min_rows),
                "POWERTOOLS_SERVICE_NAME": "drift-job",
            },
        )  # fmt: skip
        role = job.role
        serving.prediction_log.bucket.grant_read(role, "predictions/*")
        self.reports.grant_put(role, f"{REPORT_PREFIX}*")
        training.artifacts_bucket.grant_read(role, EVALUATION_REPORTS)
        for statement in self._registry_reads():
            role.add_to_principal_policy(statement)
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": config.metrics_namespace}},
        ))  # fmt: skip
        return job

    def _registry_reads(self) -> list[iam.PolicyStatement]:
        groups = [self.format_arn(service="sagemaker", resource="model-package-group",
                                  resource_name=m) for m in self.models]  # fmt: skip
        return [
            *registry_statements(self, self.models),
            iam.PolicyStatement(actions=["sagemaker:DescribeModelPackageGroup"], resources=groups),
            iam.PolicyStatement(actions=["ssm:GetParameter"],
                                resources=pointer_parameter_arns(self, self._prefix, self.models)),
        ]  # fmt: skip

    def _schedule(
        self, construct_id: str, expression: str, function: PythonFunction,
        payload: dict[str, Any], description: str,
    ) -> scheduler.Schedule:  # fmt: skip
        target = scheduler_targets.LambdaInvoke(
            function.function, role=self.scheduler_role,
            input=scheduler.ScheduleTargetInput.from_object(payload),
            dead_letter_queue=self.dead_letters, retry_attempts=2,
            max_event_age=Duration.hours(1),
        )  # fmt: skip
        return scheduler.Schedule(
            self, construct_id, schedule=scheduler.ScheduleExpression.expression(expression),
            target=target, description=description, time_window=scheduler.TimeWindow.off(),
        )  # fmt: skip

    def _drift_alarms(self, model: str) -> list[cloudwatch.Alarm]:
        config = self.env_config.monitoring
        metric = cloudwatch.Metric(
            namespace=config.metrics_namespace, metric_name="MaxPSI",
            dimensions_map={"Model": model}, statistic="Maximum", period=Duration.days(1),
        )  # fmt: skip
        name = model_id(model)
        return [
            metric.create_alarm(
                self, f"{name}Drift{level.title()}", threshold=threshold, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
                alarm_description=f"{model}: a feature or the score drifted (PSI >= {threshold},"
                f" {level}); see `mlops drift {model}` and the drift report",
            )
            for level, threshold in (("warn", config.warn), ("act", config.act))
        ]  # fmt: skip

    # -- continuous training ----------------------------------------------------------------
    def _continuous_training(self, training: TrainingStack) -> PythonFunction | None:
        config = self.env_config.monitoring
        watched = {m: config.of(m) for m in self.models}
        if not any(c.policy == "retrain" or c.retrain_schedule for c in watched.values()):
            return None
        env = self.env_config
        policies = {m: {"policy": c.policy, "schedule": bool(c.retrain_schedule)}
                    for m, c in watched.items()}  # fmt: skip
        retrain = PythonFunction(
            self, "Retrain", source=RETRAIN_SOURCE, python_version=env.lambda_python,
            dependencies=env.lambda_dependencies, log_retention_days=env.log_retention_days,
            log_key=self._key, description="continuous training: a drift alarm or a schedule "
            "copies the champion's bundle to continuous-training/ (one run per trigger)",
            timeout=Duration.minutes(1), reserved_concurrent_executions=1,
            role_name=retrain_role_name(self.stack_name.removesuffix("-monitoring")),
            environment={
                "CODE_BUCKET": training.code_bucket.bucket_name,
                "RUNS_TABLE": training.runs_table.table_name, "CHAMPION_PREFIX": self._prefix,
                "NOTIFICATION_TOPIC_ARN": training.topic.topic_arn,
                "POLICIES": json.dumps(policies, sort_keys=True),
                "POWERTOOLS_SERVICE_NAME": "retrain",
            },
        )  # fmt: skip
        self._grant_retrain(retrain.role, training)
        act_alarms = [self.drift_alarms[m][1].alarm_arn for m, c in watched.items()
                      if c.policy == "retrain"]  # fmt: skip
        if act_alarms:
            events.Rule(
                self, "DriftActs", description="A drift `act` alarm fired: retrain the model",
                event_pattern=events.EventPattern(
                    source=[ALARM_SOURCE], detail_type=[ALARM_DETAIL_TYPE], resources=act_alarms,
                    detail={"state": {"value": ["ALARM"]}},
                ),
                targets=[targets.LambdaFunction(
                    retrain.function, dead_letter_queue=self.dead_letters, retry_attempts=8,
                    max_event_age=Duration.hours(6))],
            )  # fmt: skip
        for model, settings in watched.items():
            if settings.retrain_schedule:
                name = model_id(model)
                self._schedule(
                    f"{name}RetrainSchedule", settings.retrain_schedule, retrain,
                    {"model": model, "reason": "schedule",
                     "scheduled_time": scheduler.ContextAttribute.scheduled_time},
                    f"Scheduled retraining of {model}",
                )  # fmt: skip
        return retrain

    def _grant_retrain(self, role: iam.IRole, training: TrainingStack) -> None:
        code = training.code_bucket
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[code.arn_for_objects("bundles/*"), code.arn_for_objects(f"{PREFIX}*")],
        ))  # fmt: skip
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[code.arn_for_objects(f"{PREFIX}*")]
            )
        )
        # HeadObject of a missing key answers 404 (not 403) only with ListBucket.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"], resources=[code.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{PREFIX}*"]}},
        ))  # fmt: skip
        self._key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
        training.runs_table.grant_read_data(role)
        training.topic.grant_publish(role)
        for statement in self._registry_reads():
            role.add_to_principal_policy(statement)

    # -- operations -------------------------------------------------------------------------
    def _ops_alarms(self) -> list[cloudwatch.Alarm]:
        quiet = cloudwatch.TreatMissingData.NOT_BREACHING
        alarms = [
            self.drift_job.function.metric_errors(period=_FIVE).create_alarm(
                self, "DriftJobErrors", threshold=1, evaluation_periods=1,
                treat_missing_data=quiet, alarm_description="The drift job failed for at least "
                "one model (its log names which; the others were still read)",
            ),
            self.dead_letters.metric_approximate_number_of_messages_visible().create_alarm(
                self, "MonitoringUndelivered", threshold=1, evaluation_periods=1,
                treat_missing_data=quiet, alarm_description="A drift or retraining schedule, or "
                "a drift alarm's event, never reached its function (in the DLQ)",
            ),
        ]  # fmt: skip
        if self.retrain is not None:
            alarms.append(self.retrain.function.metric_errors(period=_FIVE).create_alarm(
                self, "RetrainErrors", threshold=1, evaluation_periods=1,
                treat_missing_data=quiet,
                alarm_description="The retraining function failed to start a run (it retries)",
            ))  # fmt: skip
        return alarms

    def _dashboard(self, model: str, training: TrainingStack) -> ModelDashboard:
        config = self.env_config.monitoring
        name = model_id(model)
        return ModelDashboard(
            self, f"{name}Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-{model}",
            model=model, serving_namespace=SERVING_METRICS_NAMESPACE,
            drift_namespace=config.metrics_namespace, warn=config.warn, act=config.act,
            state_machine=training.workflow.state_machine,
            freshness_namespace=FRESHNESS_NAMESPACE,
            feast_project=self.env_config.feature_store.feast_project,
            views=MATERIALIZED_VIEWS, alarms=self.drift_alarms[model],
        )  # fmt: skip
