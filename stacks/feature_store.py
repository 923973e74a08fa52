"""The feature store: offline data lake (S3 + Glue + Athena) and online Redis (ElastiCache)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlops.config import EnvironmentConfig
from stacks.base import PlatformStack
from stacks.constructs.materialization import MaterializationSchedule
from stacks.constructs.offline_store import OfflineFeatureStore
from stacks.constructs.online_store import OnlineFeatureStore
from stacks.constructs.retention import retention
from stacks.nag_reasons import suppress_materialization_findings, suppress_online_store_findings
from stacks.security import removal_policy


class FeatureStoreStack(PlatformStack):
    """Composes the offline and online stores, the scheduled materialization job, the alarm
    topic and the outputs Feast needs.

    `consumers_security_group` is the one thing a client stack attaches to reach Redis (its
    only egress is Redis on 6379, so clients keep their own groups for everything else);
    `data_lake_bucket`, `database_name`, `workgroup_name`, `registry_uri` and
    `redis_auth_secret` are what `features.store.feature_store_config("aws", ...)` takes.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_config: EnvironmentConfig,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, env_config=env_config, **kwargs)
        config = env_config.feature_store
        policy = removal_policy(env_config)
        name = self.stack_name.lower()
        self.offline = OfflineFeatureStore(
            self, "Offline", config=config, name=name, data_key=data_key,
            access_logs=access_logs, removal_policy=policy,
        )  # fmt: skip
        self.online = OnlineFeatureStore(
            self, "Online", config=config, replication_group_id=name, vpc=vpc,
            data_key=data_key, removal_policy=policy,
        )  # fmt: skip
        self.materialization = MaterializationSchedule(
            self, "Materialization", config=config, name=name, vpc=vpc, offline=self.offline,
            online=self.online, data_key=data_key,
            log_retention=retention(env_config.log_retention_days),
            dependencies=env_config.lambda_dependencies,
        )  # fmt: skip
        self.alarm_topic = sns.Topic(
            self, "Alarms", master_key=data_key, enforce_ssl=True,
            display_name="MLOps feature store alarms",
        )  # fmt: skip
        action = cw_actions.SnsAction(self.alarm_topic)
        for alarm in [*self.online.alarms(), *self.materialization.alarms()]:
            alarm.add_alarm_action(action)
        suppress_online_store_findings(
            self.online.replication_group,
            self.online.auth_secret,
            single_node=config.redis_nodes < 2,
        )
        suppress_materialization_findings(
            self.materialization.role,
            self.materialization.state_machine.role,
            self.materialization.dead_letters,
        )
        self._outputs()

    @property
    def data_lake_bucket(self) -> s3.IBucket:
        return self.offline.bucket

    @property
    def consumers_security_group(self) -> ec2.ISecurityGroup:
        return self.online.consumers

    def _outputs(self) -> None:
        group = self.online.replication_group
        for name, value in {
            "DataLakeBucketName": self.offline.bucket.bucket_name,
            "GlueDatabaseName": self.offline.database_name,
            "AthenaWorkGroupName": self.offline.workgroup_name,
            "AthenaResultsBucketName": self.offline.results_bucket.bucket_name,
            "RegistryUri": self.offline.registry_uri,
            "RedisEndpointAddress": group.attr_primary_end_point_address,
            "RedisEndpointPort": group.attr_primary_end_point_port,
            "RedisAuthSecretArn": self.online.auth_secret.secret_arn,
            "ConsumersSecurityGroupId": self.online.consumers.security_group_id,
            "AlarmTopicArn": self.alarm_topic.topic_arn,
            "MaterializationStateMachineArn": (
                self.materialization.state_machine.state_machine_arn
            ),
            "MaterializationRunsUri": self.materialization.runs_uri,
        }.items():
            CfnOutput(self, name, value=value)
