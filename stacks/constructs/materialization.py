"""Scheduled offline→online materialization: EventBridge Scheduler → Step Functions → a
SageMaker Processing job in the VPC's private subnets.

Feast with pyarrow and pandas is ~600 MB installed, far over Lambda's 250 MB, and there is no
container build here: the job (`features/materialize_entry.py` → `features.job`) runs on a
SageMaker prebuilt image through the platform launcher, as the training workflow's processing
steps do. It carries the feature store's consumers security group, so it reaches Redis, and
installs its dependencies from a wheelhouse asset (the subnets have no internet route).

A run is retriable by design (the job resumes from its freshness records), so the state
machine retries a failed job twice with backoff before the execution fails. The job reports
per-view metrics; the alarms watch the executions, the job's own failure metric, the
schedule's dead letters and, per view, freshness: no successful run for longer than
`materialization_max_staleness_hours` (missing data breaches, so a schedule that stopped
firing alarms too).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlops.config import FeatureStoreConfig
from mlops.images import platform_job_image
from pipelines.container import CODE_DIR, LAUNCHER
from pipelines.sample_data import PROFILE_VIEW, TRANSACTION_VIEW
from pipelines.workflow import SAGEMAKER_RETRY_ERRORS, s3_input
from stacks.constructs.materialization_alarms import failure_alarms, freshness_alarms
from stacks.constructs.materialization_assets import (
    ENTRY,
    REQUIREMENTS_FILE,
    code_hash,
    host_staged_asset,
    stage_code,
    stage_wheelhouse,
    wheelhouse_hash,
)
from stacks.constructs.materialization_role import job_role
from stacks.constructs.offline_store import OFFLINE_PREFIX, OfflineFeatureStore
from stacks.constructs.online_store import OnlineFeatureStore
from stacks.constructs.python_function import DependencyMode
from stacks.constructs.scheduler_role import scheduler_role

# The feature views the schedule materializes: those of the Feast repo
# (features.repo.definitions.VIEWS; a unit test keeps the two equal without importing Feast here).
MATERIALIZED_VIEWS = (PROFILE_VIEW, TRANSACTION_VIEW)
METRICS_NAMESPACE = "MLOps/FeatureStore"
RUNS_PREFIX = "materialization/runs/"
ATHENA_RESULTS_PREFIX = "materialization/"
WHEELHOUSE_DIR = "/opt/ml/processing/input/wheelhouse"
# SageMaker copies S3 inputs as they are and CDK uploads directory assets as zip files: unzip
# both inputs in place, then run the launcher exactly as the training workflow does. Python
# (not a shell), so the local engine runs the same entrypoint on its own interpreter.
UNPACK_AND_LAUNCH = (
    "import glob,runpy,sys,zipfile\n"
    "for d in sys.argv[1:3]:\n"
    " for z in glob.glob(d+'/*.zip'):zipfile.ZipFile(z).extractall(d)\n"
    "sys.argv=sys.argv[3:]\n"
    "runpy.run_path(sys.argv[0],run_name='__main__')"
)
JOB_NAME_LIMIT, UUID_LENGTH = 63, 36
PROVISIONING_ALLOWANCE = Duration.minutes(20)  # instance start, image pull, input download
FAILED_JOB_RETRIES = 2
# The managed rule through which Step Functions learns that a processing job finished (.sync).
SYNC_RULE = "StepFunctionsGetEventsForSageMakerProcessingJobsRule"


def processing_image(region: str) -> str:
    """The ECR URI of the job's image: the platform's job image (mlops.images), scikit-learn
    1.4-2 on Python 3.12 (sagemaker-core image_uri_config/sklearn.json, commit 26a9d211;
    aws/sagemaker-scikit-learn-container docker/1.4-2-py312/base/Dockerfile.cpu sets
    `ARG PYTHON_VERSION=3.12` on Ubuntu 24.04)."""
    return platform_job_image(region)


def image_repository_arn(image: str, partition: str) -> str:
    """`arn:<partition>:ecr:<region>:<registry>:repository/<name>` of an ECR image URI."""
    host, path = image.split("/", 1)
    account, _, _, region = host.split(".")[:4]
    return f"arn:{partition}:ecr:{region}:{account}:repository/{path.rsplit(':', 1)[0]}"


def job_name_prefix(name: str) -> str:
    """A prefix that leaves room for `-<uuid>` within SageMaker's 63-character job names."""
    prefix = name[: JOB_NAME_LIMIT - UUID_LENGTH - 1].rstrip("-")
    if not prefix or not all(c.isalnum() or c == "-" for c in prefix):
        raise ValueError(f"{name!r} cannot prefix SageMaker job names (letters, digits, '-')")
    return prefix


class MaterializationSchedule(Construct):
    """Code and wheelhouse assets, the job's role and security group, the state machine, the
    schedule with its dead-letter queue, and the alarms (`alarms()`, actions left to the stack).

    Contract: `state_machine` runs one materialization per execution (any input);
    `runs_uri` is where the job writes one JSON run record per run.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeatureStoreConfig,
        name: str,
        vpc: ec2.IVpc,
        offline: OfflineFeatureStore,
        online: OnlineFeatureStore,
        data_key: kms.IKey,
        log_retention: logs.RetentionDays,
        dependencies: DependencyMode,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config, self._offline, self._online, self._key = config, offline, online, data_key
        self.job_name_prefix = job_name_prefix(name)
        self.image = processing_image(Stack.of(self).region)
        self.runs_uri = f"s3://{offline.bucket.bucket_name}/{RUNS_PREFIX}"
        self.code = host_staged_asset(self, "Code", asset_hash=code_hash(), stage=stage_code)
        self.wheelhouse = host_staged_asset(
            self, "Wheelhouse", asset_hash=wheelhouse_hash(dependencies),
            stage=lambda out: stage_wheelhouse(out, dependencies),
        )  # fmt: skip
        self.security_group = self._job_security_group(vpc)
        self.subnets = vpc.select_subnets(subnet_group_name="private").subnet_ids
        self.security_groups = [online.consumers, self.security_group]
        self.role = job_role(
            self, "JobRole", offline=offline, online=online, data_key=data_key,
            assets=(self.code, self.wheelhouse), subnet_ids=self.subnets,
            security_groups=self.security_groups, job_name_prefix=self.job_name_prefix,
            image_repository_arn=image_repository_arn(self.image, Stack.of(self).partition),
            metrics_namespace=METRICS_NAMESPACE, runs_prefix=RUNS_PREFIX,
        )  # fmt: skip
        self.log_group = logs.LogGroup(
            self, "ExecutionLogs", encryption_key=data_key, retention=log_retention
        )
        self.state_machine = self._state_machine()
        self._grant_sagemaker(self.state_machine.role)
        self.dead_letters = sqs.Queue(
            self, "ScheduleDeadLetters", encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=data_key, enforce_ssl=True, retention_period=Duration.days(14),
        )  # fmt: skip
        self.schedule = self._schedule()
        self._alarms = self._create_alarms()

    def _job_security_group(self, vpc: ec2.IVpc) -> ec2.SecurityGroup:
        """HTTPS out only; Redis is reached through the consumers group the job also carries.

        Isolated subnets route only to the VPC's endpoints (interface endpoints in the VPC
        CIDR, the S3 gateway through a prefix list that synthesis cannot resolve without an
        AWS lookup), so 443 to anywhere reaches AWS APIs and nothing else.
        """
        group = ec2.SecurityGroup(
            self, "JobSecurityGroup", vpc=vpc, allow_all_outbound=False,
            description="Materialization job: HTTPS to AWS endpoints (Redis via consumers group)",
        )  # fmt: skip
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS endpoints")
        return group

    def environment(self) -> dict[str, str]:
        """The job's runtime contract (features.job.JobSettings) plus the launcher's inputs."""
        offline, online, config = self._offline, self._online, self._config
        group = online.replication_group
        return {
            "MLOPS_PROJECT": config.feast_project,
            "MLOPS_OFFLINE_STORE": config.offline_store,
            "MLOPS_DATA_LAKE_BUCKET": offline.bucket.bucket_name,
            "MLOPS_OFFLINE_PREFIX": f"{OFFLINE_PREFIX}/",
            "MLOPS_GLUE_DATABASE": offline.database_name,
            "MLOPS_ATHENA_WORKGROUP": offline.workgroup_name,
            "MLOPS_ATHENA_RESULTS": (
                f"s3://{offline.results_bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}"
            ),
            "AWS_REGION": Stack.of(self).region,
            "MLOPS_REDIS_HOST": group.attr_primary_end_point_address,
            "MLOPS_REDIS_PORT": group.attr_primary_end_point_port,
            "MLOPS_REDIS_TLS": "true",
            "MLOPS_REDIS_SECRET_ARN": online.auth_secret.secret_arn,
            "MLOPS_RUNS_URI": self.runs_uri,
            "MLOPS_LOOKBACK_DAYS": str(config.materialization_lookback_days),
            "MLOPS_VIEWS": ",".join(MATERIALIZED_VIEWS),
            "MLOPS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "MLOPS_REQUIREMENTS": REQUIREMENTS_FILE,
            "MLOPS_WHEELHOUSE": WHEELHOUSE_DIR,
        }

    def _processing_job(self) -> dict[str, Any]:
        """CreateProcessingJob parameters; one instance (the job is not distributed: a second
        one would redo the same work against the same keys and run records)."""
        config = self._config
        return {
            "ProcessingJobName.$": f"States.Format('{self.job_name_prefix}-{{}}', States.UUID())",
            "RoleArn": self.role.role_arn,
            "AppSpecification": {
                "ImageUri": self.image,
                "ContainerEntrypoint": [
                    "python3",
                    "-c",
                    UNPACK_AND_LAUNCH,
                    CODE_DIR,
                    WHEELHOUSE_DIR,
                    f"{CODE_DIR}/{LAUNCHER}",
                    ENTRY,
                ],
            },  # fmt: skip
            "ProcessingInputs": [
                s3_input("code", self.code.s3_object_url, CODE_DIR, from_state=False),
                s3_input(
                    "wheelhouse", self.wheelhouse.s3_object_url, WHEELHOUSE_DIR, from_state=False
                ),
            ],
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": config.materialization_instance_type,
                    "VolumeSizeInGB": config.materialization_volume_gb,
                    "VolumeKmsKeyId": self._key.key_arn,
                }
            },
            "NetworkConfig": {
                "EnableNetworkIsolation": False,
                "VpcConfig": {
                    "Subnets": self.subnets,
                    "SecurityGroupIds": [g.security_group_id for g in self.security_groups],
                },
            },
            "StoppingCondition": {
                "MaxRuntimeInSeconds": config.materialization_max_runtime_minutes * 60
            },
            "Environment": self.environment(),
            "Tags": [{"Key": "mlops:execution", "Value.$": "$$.Execution.Id"}],
        }

    def _state_machine(self) -> sfn.StateMachine:
        state_timeout = (
            Duration.minutes(self._config.materialization_max_runtime_minutes)
            .plus(PROVISIONING_ALLOWANCE)
            .to_seconds()
        )
        task = sfn.CustomState(
            self,
            "Materialize",
            state_json={
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createProcessingJob.sync",
                "Parameters": self._processing_job(),
                "TimeoutSeconds": state_timeout,
                "ResultSelector": {
                    "job_name.$": "$.ProcessingJobName",
                    "status.$": "$.ProcessingJobStatus",
                },
                "ResultPath": "$.job",
            },
        )
        task.add_retry(errors=SAGEMAKER_RETRY_ERRORS, interval=Duration.seconds(15),
                       backoff_rate=2.0, max_attempts=3)  # fmt: skip
        # A failed job (States.TaskFailed) is re-run: it resumes from the freshness records.
        task.add_retry(errors=["States.TaskFailed"], interval=Duration.minutes(2),
                       backoff_rate=2.0, max_attempts=FAILED_JOB_RETRIES)  # fmt: skip
        task.add_catch(
            sfn.Fail(self, "MaterializationFailed", error="MaterializationFailed",
                     cause_path="$.error.Cause"),
            errors=["States.ALL"], result_path="$.error",
        )  # fmt: skip
        attempts = 1 + FAILED_JOB_RETRIES
        timeout = Duration.seconds(attempts * state_timeout).plus(Duration.minutes(30))
        return sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(
                task.next(sfn.Succeed(self, "Materialized"))
            ),
            timeout=timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )

    def _grant_sagemaker(self, role: iam.IRole) -> None:
        """What the `.sync` processing-job integration needs, for this job's names only."""
        stack = Stack.of(self)
        jobs = stack.format_arn(service="sagemaker", resource="processing-job",
                                resource_name=f"{self.job_name_prefix}-*")  # fmt: skip
        rule = stack.format_arn(service="events", resource="rule", resource_name=SYNC_RULE)
        for statement in (
            iam.PolicyStatement(
                actions=["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
                         "sagemaker:StopProcessingJob", "sagemaker:AddTags"],
                resources=[jobs],
            ),
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[rule],
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
        ):  # fmt: skip
            role.add_to_principal_policy(statement)

    def _schedule(self) -> scheduler.Schedule:
        max_age = min(self._interval_seconds(), 3600)
        # Own role (the L2's default is a stack-wide singleton): start this state machine and
        # dead-letter to the KMS-encrypted queue, nothing else.
        self.schedule_role = scheduler_role(
            self,
            "ScheduleRole",
            description="EventBridge Scheduler: start materialization",
            data_key=self._key,
        )
        target = scheduler_targets.StepFunctionsStartExecution(
            self.state_machine,
            role=self.schedule_role,
            input=scheduler.ScheduleTargetInput.from_object(
                {"trigger": "schedule", "scheduled_time": scheduler.ContextAttribute.scheduled_time}
            ),
            dead_letter_queue=self.dead_letters,
            retry_attempts=3,
            max_event_age=Duration.seconds(max_age),
        )
        return scheduler.Schedule(
            self,
            "Schedule",
            schedule=scheduler.ScheduleExpression.expression(self._config.materialization_schedule),
            target=target,
            description="Materialize the offline feature store into Redis",
            time_window=scheduler.TimeWindow.off(),
        )

    def _interval_seconds(self) -> int:
        """The schedule's interval; an hour for cron expressions (no fixed interval)."""
        interval = self._config.materialization_interval() or timedelta(hours=1)
        return int(interval.total_seconds())

    def alarms(self) -> list[cloudwatch.Alarm]:
        return list(self._alarms)

    def _create_alarms(self) -> list[cloudwatch.Alarm]:
        config, project = self._config, self._config.feast_project
        return failure_alarms(
            self, state_machine=self.state_machine, dead_letters=self.dead_letters,
            namespace=METRICS_NAMESPACE, project=project,
        ) + freshness_alarms(
            self, views=MATERIALIZED_VIEWS, namespace=METRICS_NAMESPACE, project=project,
            max_staleness_hours=config.materialization_max_staleness_hours,
            period_seconds=self._interval_seconds(),
        )  # fmt: skip
