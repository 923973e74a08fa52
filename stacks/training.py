"""The training pipeline: model-code upload → validated trigger → Step Functions → registry."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.training_trigger.domain import CONTINUOUS_TRAINING_PREFIX
from lambdas.training_trigger.execution import PLATFORM_FILES
from mlops.config import EnvironmentConfig
from mlops.runs import MODEL_INDEX
from pipelines.workflow import TrainingWorkflow
from stacks.base import PlatformStack, retrain_role_name
from stacks.constructs.offline_store import OfflineFeatureStore
from stacks.constructs.python_function import LambdaSource, PythonFunction
from stacks.constructs.retention import retention
from stacks.constructs.secure_bucket import SecureBucket
from stacks.nag_reasons import (
    suppress_dead_letter_queue,
    suppress_grant_wildcards,
    suppress_sagemaker_role,
)
from stacks.security import removal_policy

SOURCES = {
    "trigger": LambdaSource(
        handler="lambdas.training_trigger.handler.handler",
        include=(
            "lambdas/training_trigger",
            "mlops/bundle",
            "mlops/runs.py",
            "mlops/dynamo.py",
            "mlops/images.py",
            "pipelines/container",
            *PLATFORM_FILES,  # staged for the training-set step, never imported by the trigger
        ),  # fmt: skip
        requirements="lambdas/training_trigger/requirements.txt",
    ),
    "gate": LambdaSource(
        handler="lambdas.gate.handler.handler",
        include=("lambdas/gate", "lambdas/common.py"),
        requirements="lambdas/gate/requirements.txt",
    ),
    "register": LambdaSource(
        handler="lambdas.register_model.handler.handler",
        include=("lambdas/register_model", "lambdas/common.py"),
        requirements="lambdas/register_model/requirements.txt",
    ),
    "recorder": LambdaSource(
        handler="lambdas.run_recorder.handler.handler",
        include=("lambdas/run_recorder", "lambdas/common.py", "mlops/runs.py", "mlops/dynamo.py"),
        requirements="lambdas/run_recorder/requirements.txt",
    ),
}


# Where Feast's Athena offline store stages entity dataframes for training sets.
TRAINING_SET_STAGING = "training-sets/"


class TrainingStack(PlatformStack):
    """Buckets, runs table, notifications, the four functions, the rule and the workflow."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_config: EnvironmentConfig,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
        offline_store: OfflineFeatureStore | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        policy = removal_policy(env_config)
        self._key = data_key
        self.code_bucket = SecureBucket(
            self, "Code", encryption_key=data_key, access_logs=access_logs,
            removal_policy=policy, event_bridge=True,
        ).bucket  # fmt: skip
        self.artifacts_bucket = SecureBucket(
            self, "Artifacts", encryption_key=data_key, access_logs=access_logs,
            removal_policy=policy,
        ).bucket  # fmt: skip
        self._reserve_continuous_training_prefix()
        self.runs_table = self._runs_table(policy)
        self.topic = sns.Topic(
            self, "Notifications", master_key=data_key, enforce_ssl=True,
            display_name="MLOps training notifications",
        )  # fmt: skip
        self.sagemaker_role = self._sagemaker_role()
        functions = {name: self._function(name) for name in SOURCES}
        self.workflow = TrainingWorkflow(
            self, "Workflow", sagemaker_role=self.sagemaker_role, data_key=data_key,
            gate=functions["gate"].function, register=functions["register"].function,
            recorder=functions["recorder"].function,
            log_retention=retention(env_config.log_retention_days),
        )  # fmt: skip
        self._wire(functions)
        if offline_store is not None:
            self._training_sets_from(offline_store, functions["trigger"].function)
        self._upload_rule(functions["trigger"])
        self._alarms(functions)
        suppress_sagemaker_role(self.sagemaker_role)
        for function in functions.values():
            suppress_grant_wildcards(function.role)
        suppress_grant_wildcards(self.workflow.state_machine.role)
        for name, value in {
            "CodeBucketName": self.code_bucket.bucket_name,
            "ArtifactsBucketName": self.artifacts_bucket.bucket_name,
            "RunsTableName": self.runs_table.table_name,
            "StateMachineArn": self.workflow.state_machine.state_machine_arn,
            "NotificationTopicArn": self.topic.topic_arn,
            "SageMakerRoleArn": self.sagemaker_role.role_arn,
        }.items():
            CfnOutput(self, name, value=value)

    def _reserve_continuous_training_prefix(self) -> None:
        """Only the monitoring stack's retraining role writes under continuous-training/: a
        run's origin decides whether `auto_approve` applies, so people must not forge it.
        The role is named, not referenced, to keep the stacks free of a dependency cycle."""
        retrain_role = self.format_arn(
            service="iam", region="", resource="role",
            resource_name=retrain_role_name(self.stack_name.removesuffix("-training")),
        )  # fmt: skip
        self.code_bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ContinuousTrainingWritesOnly", effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()], actions=["s3:PutObject"],
            resources=[self.code_bucket.arn_for_objects(f"{CONTINUOUS_TRAINING_PREFIX}*")],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": retrain_role}},
        ))  # fmt: skip

    def _runs_table(self, policy: Any) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "Runs",
            partition_key=dynamodb.Attribute(name="run_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self._key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=policy,
        )
        table.add_global_secondary_index(
            index_name=MODEL_INDEX,
            partition_key=dynamodb.Attribute(name="model_name", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="received_at", type=dynamodb.AttributeType.STRING),
        )
        return table

    def _sagemaker_role(self) -> iam.Role:
        """What processing and training jobs may do: read code and data, write outputs."""
        role = iam.Role(
            self,
            "SageMakerExecution",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker processing and training jobs of the training workflow",
        )
        self.artifacts_bucket.grant_read_write(role)
        self._key.grant_encrypt_decrypt(role)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                         "logs:DescribeLogStreams"],
                resources=[f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/sagemaker/*"],
            )
        )  # fmt: skip
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:GetAuthorizationToken", "ecr:BatchGetImage",
                         "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=["*"],
            )
        )  # fmt: skip
        return role

    def _function(self, name: str) -> PythonFunction:
        env = self.env_config
        return PythonFunction(
            self,
            f"{name.capitalize()}Function",
            source=SOURCES[name],
            python_version=env.lambda_python,
            dependencies=env.lambda_dependencies,
            log_retention_days=env.log_retention_days,
            log_key=self._key,
            description=f"training workflow: {name}",
            timeout=Duration.minutes(5) if name == "trigger" else Duration.minutes(1),
            memory_size=1024 if name == "trigger" else 512,
            environment={
                "RUNS_TABLE": self.runs_table.table_name,
                "NOTIFICATION_TOPIC_ARN": self.topic.topic_arn,
                "ARTIFACTS_BUCKET": self.artifacts_bucket.bucket_name,
                "POWERTOOLS_SERVICE_NAME": f"training-{name}",
            },
        )

    def _wire(self, functions: dict[str, PythonFunction]) -> None:
        trigger = functions["trigger"].function
        trigger.add_environment("STATE_MACHINE_ARN", self.workflow.state_machine.state_machine_arn)
        trigger.add_environment("ALLOWED_MODELS", ",".join(self.env_config.training.allowed_models))
        trigger.add_environment(
            "MAX_BUNDLE_BYTES", str(self.env_config.training.max_bundle_mb << 20)
        )
        trigger.add_environment("MAX_BUNDLE_FILES", str(self.env_config.training.max_bundle_files))
        self.code_bucket.grant_read(trigger)
        self.artifacts_bucket.grant_put(trigger)
        self.runs_table.grant_read_write_data(trigger)
        self.workflow.state_machine.grant_start_execution(trigger)
        self.topic.grant_publish(trigger)
        self.artifacts_bucket.grant_read(functions["gate"].function)
        for name in ("gate", "register"):
            functions[name].function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sagemaker:ListModelPackages", "sagemaker:DescribeModelPackage",
                             "sagemaker:CreateModelPackage", "sagemaker:CreateModelPackageGroup",
                             "sagemaker:DescribeModelPackageGroup", "sagemaker:AddTags"],
                    resources=[
                        f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:model-package-group/*",
                        f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:model-package/*",
                    ],
                )
            )  # fmt: skip
        auto = sorted(m for m, c in self.env_config.monitoring.models.items() if c.auto_approve)
        register = functions["register"].function
        register.add_environment("AUTO_APPROVE_MODELS", ",".join(auto))
        if auto:
            register.add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:UpdateModelPackage"],
                resources=[self.format_arn(service="sagemaker", resource="model-package",
                                           resource_name=f"{m}/*") for m in auto],
            ))  # fmt: skip
        self.runs_table.grant_read_write_data(functions["recorder"].function)
        self.topic.grant_publish(functions["recorder"].function)

    def _training_sets_from(self, offline: OfflineFeatureStore, trigger: Any) -> None:
        """Feature-service runs: the trigger learns where the feature store is; the jobs' role
        may read the data lake's tables and labels and run Feast's Athena queries (which
        upload the entity dataframe as a temporary table: Glue create/delete, results bucket)."""
        config = self.env_config.feature_store
        results = f"s3://{offline.results_bucket.bucket_name}/{TRAINING_SET_STAGING}"
        for name, value in {
            "FEATURE_STORE_OFFLINE": config.offline_store,
            "FEAST_PROJECT": config.feast_project,
            "DATA_LAKE_BUCKET": offline.bucket.bucket_name,
            "GLUE_DATABASE": offline.database_name,
            "ATHENA_WORKGROUP": offline.workgroup_name,
            "ATHENA_RESULTS": results,
        }.items():
            trigger.add_environment(name, value)
        role = self.sagemaker_role
        offline.bucket.grant_read(role, "offline/*")
        offline.results_bucket.grant_read_write(role)
        stack = Stack.of(self)
        arn = f"arn:{stack.partition}:%s:{stack.region}:{stack.account}:%s"
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["athena:StartQueryExecution", "athena:GetQueryExecution",
                         "athena:GetQueryResults", "athena:StopQueryExecution",
                         "athena:GetWorkGroup"],
                resources=[arn % ("athena", f"workgroup/{offline.workgroup_name}")],
            )
        )  # fmt: skip
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["glue:GetDatabase", "glue:GetTable", "glue:GetTables",
                         "glue:GetPartition", "glue:GetPartitions", "glue:CreateTable",
                         "glue:DeleteTable"],
                resources=[arn % ("glue", "catalog"),
                           arn % ("glue", f"database/{offline.database_name}"),
                           arn % ("glue", f"table/{offline.database_name}/*")],
            )
        )  # fmt: skip

    def _upload_rule(self, trigger: PythonFunction) -> None:
        dlq = sqs.Queue(
            self, "TriggerDeadLetters", encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self._key, enforce_ssl=True,
            retention_period=Duration.days(14),
        )  # fmt: skip
        self.trigger_dlq = dlq
        suppress_dead_letter_queue(dlq)
        events.Rule(
            self,
            "BundleUploaded",
            description="A model bundle was uploaded: validate it and start training",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [self.code_bucket.bucket_name]},
                    "object": {
                        "key": [{"prefix": "bundles/"}, {"prefix": CONTINUOUS_TRAINING_PREFIX}]
                    },
                },
            ),
            targets=[
                targets.LambdaFunction(
                    trigger.function,
                    dead_letter_queue=dlq,
                    retry_attempts=4,
                    max_event_age=Duration.hours(2),
                )
            ],
        )

    def _alarms(self, functions: dict[str, PythonFunction]) -> None:
        action = cw_actions.SnsAction(self.topic)
        alarms = [
            self.workflow.state_machine.metric_failed(period=Duration.minutes(5)).create_alarm(
                self, "RunsFailing", threshold=1, evaluation_periods=1,
                alarm_description="A training run failed (see the runs table for the reason)",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            self.trigger_dlq.metric_approximate_number_of_messages_visible().create_alarm(
                self, "UploadsUndelivered", threshold=1, evaluation_periods=1,
                alarm_description="Upload events could not be delivered to the trigger",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]  # fmt: skip
        for name, fn in functions.items():
            alarms.append(
                fn.function.metric_errors(period=Duration.minutes(5)).create_alarm(
                    self, f"{name.capitalize()}Errors", threshold=1, evaluation_periods=1,
                    alarm_description=f"The {name} function raised errors",
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )  # fmt: skip
        for alarm in alarms:
            alarm.add_alarm_action(action)
