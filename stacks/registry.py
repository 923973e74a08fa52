"""The model registry side of the platform: groups, the approval hook, the deployment ledger.

* One SageMaker model package group per served model (`serving.models`), with a resource policy
  for `registry.cross_account_readers` when configured.
* Two EventBridge rules invoke the approval hook: a model package of *these* groups became
  `Approved` or `Rejected` (never on registration or `PendingManualApproval`: the pattern filters
  on both status and group), and a CodeDeploy deployment of the serving application ended. Each
  target retries and has a dead-letter queue; the hook's own failed invocations land there too.
* The ledger (DynamoDB, point-in-time recovery, the data key) and the champion pointers (SSM
  parameters under `/<project>/<env>/champions/`, written by the hook).
* Alarms to the notification topic: hook errors, undelivered events, failed rollouts.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.approval_hook.domain import (
    DECISIONS,
    PACKAGE_DETAIL_TYPE,
    PACKAGE_SOURCE,
    ROLLOUT_DETAIL_TYPE,
    ROLLOUT_ENDED_BADLY,
    ROLLOUT_SOURCE,
    ROLLOUT_SUCCEEDED,
)
from mlops.config import EnvironmentConfig
from stacks.base import PlatformStack, model_id
from stacks.constructs.python_function import LambdaSource, PythonFunction
from stacks.constructs.serving_lambda import (
    MODEL_ARTIFACTS,
    pointer_parameter_arns,
    registry_statements,
)
from stacks.nag_reasons import (
    suppress_approval_hook_findings,
    suppress_dead_letter_queue,
    suppress_grant_wildcards,
)
from stacks.security import removal_policy
from stacks.serving import ServingStack

HOOK_SOURCE = LambdaSource(
    handler="lambdas.approval_hook.handler.handler",
    include=(
        "lambdas/approval_hook",
        "lambdas/common.py",
        "mlops/__init__.py",
        "mlops/deployments.py",
        "mlops/dynamo.py",
        "serving/__init__.py",
        "serving/spec.py",
        "serving/model.py",
        "serving/champion.py",
        "features/__init__.py",
        "features/redis_plan.py",
    ),
    requirements="lambdas/approval_hook/requirements.txt",
)
METRICS_NAMESPACE = "MLOps/Deployments"
_FIVE_MINUTES = Duration.minutes(5)


class RegistryStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_config: EnvironmentConfig,
        data_key: kms.IKey,
        champion_prefix: str,
        serving: ServingStack,
        artifacts_bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        self._key = data_key
        self.models = sorted(env_config.serving.models)
        self.groups = [self._group(name) for name in self.models]
        self.ledger = dynamodb.Table(
            self, "Ledger",
            partition_key=dynamodb.Attribute(name="model", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="entry", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED, encryption_key=data_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=removal_policy(env_config),
        )  # fmt: skip
        self.dead_letters = sqs.Queue(
            self, "HookDeadLetters", encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=data_key, enforce_ssl=True, retention_period=Duration.days(14),
        )  # fmt: skip
        suppress_dead_letter_queue(self.dead_letters)
        self.hook = self._hook(champion_prefix, serving)
        self._grant(champion_prefix, serving, artifacts_bucket)
        self._rules(serving)
        action = cw_actions.SnsAction(alarm_topic)
        for alarm in self._alarms():
            alarm.add_alarm_action(action)
        suppress_grant_wildcards(self.hook.role)
        suppress_approval_hook_findings(self.hook.role)
        for name, value in {
            "LedgerTableName": self.ledger.table_name,
            "ChampionParameterPrefix": champion_prefix,
            "ApprovalHookFunctionName": self.hook.function.function_name,
            "HookDeadLetterQueueUrl": self.dead_letters.queue_url,
            "ModelPackageGroups": ",".join(self.models),
        }.items():
            CfnOutput(self, name, value=value)

    def _group(self, name: str) -> sagemaker.CfnModelPackageGroup:
        readers = self.env_config.registry.cross_account_readers
        policy = None
        if readers:
            arn = self.format_arn(service="sagemaker", resource="model-package-group",
                                  resource_name=name)  # fmt: skip
            versions = self.format_arn(service="sagemaker", resource="model-package",
                                       resource_name=f"{name}/*")  # fmt: skip
            policy = {"Version": "2012-10-17", "Statement": [{
                "Sid": "CrossAccountRead", "Effect": "Allow",
                "Principal": {"AWS": [f"arn:{self.partition}:iam::{a}:root" for a in readers]},
                "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages",
                           "sagemaker:DescribeModelPackageGroup"],
                "Resource": [arn, versions],
            }]}  # fmt: skip
        group = sagemaker.CfnModelPackageGroup(
            self, f"Group{model_id(name)}", model_package_group_name=name,
            model_package_group_description=f"{name}: versions registered by the training "
            "workflow; approving one deploys it",
            model_package_group_policy=policy,
        )  # fmt: skip
        group.apply_removal_policy(removal_policy(self.env_config))
        return group

    def _hook(self, champion_prefix: str, serving: ServingStack) -> PythonFunction:
        env = self.env_config
        environment = {
            "LEDGER_TABLE": self.ledger.table_name,
            "CHAMPION_PREFIX": champion_prefix,
            "MODELS": ",".join(self.models),
            "MLOPS_SERVING_SPEC": serving.spec,
            "EKS_ENABLED": str(serving.eks is not None).lower(),
            "POWERTOOLS_SERVICE_NAME": "approval-hook",
        }
        function = serving.function
        if function is not None:
            environment |= {"SERVING_FUNCTION": function.function.function_name,
                            "SERVING_ALIAS": function.alias.alias_name}  # fmt: skip
            if function.rollout_group is not None:
                environment |= {
                    "ROLLOUT_APPLICATION": function.rollout_group.application.application_name,
                    "ROLLOUT_GROUP": function.rollout_group.deployment_group_name,
                }
        hook = PythonFunction(
            self, "ApprovalHook", source=HOOK_SOURCE, python_version=env.lambda_python,
            dependencies=env.lambda_dependencies, log_retention_days=env.log_retention_days,
            log_key=self._key, description="approval hook: approvals deploy, rejections roll back, "
            "both recorded in the ledger", timeout=Duration.minutes(5),
            memory_size=env.registry.hook_memory_mb, environment=environment,
            reserved_concurrent_executions=1,
        )  # fmt: skip
        hook.function.configure_async_invoke(
            retry_attempts=2, max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dead_letters),
        )  # fmt: skip
        return hook

    def _grant(self, prefix: str, serving: ServingStack, artifacts: s3.IBucket) -> None:
        role = self.hook.role
        self.ledger.grant_read_write_data(role)
        for statement in registry_statements(self, self.models):
            role.add_to_principal_policy(statement)
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["ssm:GetParameter", "ssm:PutParameter"],
            resources=pointer_parameter_arns(self, prefix, self.models),
        ))  # fmt: skip
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[artifacts.arn_for_objects(MODEL_ARTIFACTS)]
            )
        )
        self._key.grant_decrypt(role)
        function = serving.function
        if function is None:
            return
        fn = function.function
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration",
                     "lambda:PublishVersion", "lambda:GetAlias", "lambda:UpdateAlias"],
            resources=[fn.function_arn, f"{fn.function_arn}:{function.alias.alias_name}"],
        ))  # fmt: skip
        group = function.rollout_group
        if group is not None:
            role.add_to_principal_policy(iam.PolicyStatement(
                actions=["codedeploy:CreateDeployment", "codedeploy:GetDeployment",
                         "codedeploy:StopDeployment", "codedeploy:GetDeploymentConfig",
                         "codedeploy:RegisterApplicationRevision",
                         "codedeploy:GetApplicationRevision"],
                resources=[group.deployment_group_arn, group.application.application_arn,
                           group.deployment_config.deployment_config_arn],
            ))  # fmt: skip

    def _rules(self, serving: ServingStack) -> None:
        def target() -> targets.LambdaFunction:
            return targets.LambdaFunction(
                self.hook.function, dead_letter_queue=self.dead_letters, retry_attempts=8,
                max_event_age=Duration.hours(6),
            )  # fmt: skip

        events.Rule(
            self, "ApprovalDecided",
            description="A platform model version was approved or rejected: deploy or roll back",
            event_pattern=events.EventPattern(
                source=[PACKAGE_SOURCE], detail_type=[PACKAGE_DETAIL_TYPE],
                detail={"ModelPackageGroupName": self.models,
                        "ModelApprovalStatus": list(DECISIONS)},
            ),
            targets=[target()],
        )  # fmt: skip
        function = serving.function
        if function is not None and function.rollout_group is not None:
            events.Rule(
                self, "RolloutEnded",
                description="A traffic shift of the serving alias ended: record its outcome",
                event_pattern=events.EventPattern(
                    source=[ROLLOUT_SOURCE], detail_type=[ROLLOUT_DETAIL_TYPE],
                    detail={"application": [function.rollout_group.application.application_name],
                            "state": [ROLLOUT_SUCCEEDED, *ROLLOUT_ENDED_BADLY]},
                ),
                targets=[target()],
            )  # fmt: skip

    def _alarms(self) -> list[cloudwatch.Alarm]:
        failed = logs.MetricFilter(
            self, "FailedRollouts", log_group=self.hook.log_group,
            filter_pattern=logs.FilterPattern.string_value("$.outcome", "=", "failed"),
            metric_namespace=METRICS_NAMESPACE, metric_name="RolloutsFailed", metric_value="1",
            default_value=0,
        )  # fmt: skip
        quiet = cloudwatch.TreatMissingData.NOT_BREACHING
        return [
            failed.metric(statistic="Sum", period=_FIVE_MINUTES).create_alarm(
                self, "RolloutFailed", threshold=1, evaluation_periods=1, treat_missing_data=quiet,
                alarm_description="An approved version could not be rolled out, or a rollback "
                "found nothing to return to (see `mlops deployments MODEL`)",
            ),
            self.hook.function.metric_errors(period=_FIVE_MINUTES).create_alarm(
                self, "HookErrors", threshold=1, evaluation_periods=1, treat_missing_data=quiet,
                alarm_description="The approval hook raised (it retries; see its logs)",
            ),
            self.dead_letters.metric_approximate_number_of_messages_visible().create_alarm(
                self, "DecisionsUndelivered", threshold=1, evaluation_periods=1,
                treat_missing_data=quiet,
                alarm_description="Approval or rollout events the hook never handled (in the DLQ)",
            ),
        ]  # fmt: skip
