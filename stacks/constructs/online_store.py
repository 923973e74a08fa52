"""The online feature store: ElastiCache for Redis in the VPC's private subnets.

Access needs three things at once: the network path (only from the `consumers` security group,
which this construct creates for the materialization job and the serving tier to attach), TLS
(`ssl=true` in Feast's connection string) and the AUTH token kept in Secrets Manager
(`features.store.redis_password_from_secret` reads it).

AUTH-token rotation is not configured. Secrets Manager has no managed (Lambda-free) rotation for
ElastiCache AUTH tokens; rotating one takes a function that calls `ModifyReplicationGroup` with
`AuthTokenUpdateStrategy=ROTATE`, waits for the group, updates the secret, and later sets the
strategy to `SET` once every client has the new token. That is a rotation Lambda with its own
failure modes; it belongs with the consumers that must re-read the token, not half-built here.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlops.config import FeatureStoreConfig

REDIS_PORT = 6379

# (metric, statistic, threshold, description). Evictions > 0 means features were dropped and
# readers now see None for those entities; the others warn before Redis degrades.
_NODE_ALARMS: tuple[tuple[str, str, float, str], ...] = (
    ("DatabaseMemoryUsagePercentage", "Maximum", 80.0, "memory usage above 80 %"),
    ("Evictions", "Sum", 1.0, "Redis evicted keys: online features were lost"),
    ("EngineCPUUtilization", "Maximum", 80.0, "Redis engine thread CPU above 80 %"),
    ("CPUUtilization", "Maximum", 90.0, "host CPU above 90 %"),
)
_REPLICATION_LAG = ("ReplicationLag", "Maximum", 5.0, "replication lag above 5 s")


class OnlineFeatureStore(Construct):
    """A Redis replication group: TLS, KMS at rest, AUTH token, Multi-AZ when `redis_nodes` >= 2.

    Contract: `consumers` is the security group a client must carry to reach port 6379;
    `auth_secret` holds the AUTH token as its whole SecretString; `replication_group` exposes
    `attr_primary_end_point_address`/`attr_primary_end_point_port`.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeatureStoreConfig,
        replication_group_id: str,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.node_ids = [
            f"{replication_group_id}-{n:03d}" for n in range(1, config.redis_nodes + 1)
        ]
        self.auth_secret = secretsmanager.Secret(
            self,
            "AuthToken",
            description=f"AUTH token of the {replication_group_id} Redis replication group",
            encryption_key=data_key,
            # ElastiCache accepts 16-128 printable characters but only !&#$^<>- as symbols.
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=removal_policy,
        )
        self.consumers = ec2.SecurityGroup(
            self, "Consumers", vpc=vpc, allow_all_outbound=False,
            description="Clients of the online feature store (materialization, serving)",
        )  # fmt: skip
        self.security_group = ec2.SecurityGroup(
            self, "Redis", vpc=vpc, allow_all_outbound=False,
            description="Online feature store: Redis TLS from the consumers group only",
        )  # fmt: skip
        self.consumers.connections.allow_to(
            self.security_group, ec2.Port.tcp(REDIS_PORT), "Redis (TLS) to the feature store"
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self, "Subnets",
            description="Private subnets of the platform VPC",
            subnet_ids=vpc.select_subnets(subnet_group_name="private").subnet_ids,
        )  # fmt: skip
        parameters = elasticache.CfnParameterGroup(
            self, "Parameters",
            cache_parameter_group_family=f"redis{config.redis_engine_version.split('.')[0]}",
            description="Online feature store settings",
            properties={"maxmemory-policy": config.redis_maxmemory_policy},
        )  # fmt: skip
        self.replication_group = self._replication_group(
            config, replication_group_id, subnet_group, parameters, data_key
        )

    def _replication_group(
        self,
        config: FeatureStoreConfig,
        group_id: str,
        subnet_group: elasticache.CfnSubnetGroup,
        parameters: elasticache.CfnParameterGroup,
        data_key: kms.IKey,
    ) -> elasticache.CfnReplicationGroup:
        replicated = config.redis_nodes >= 2
        return elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_id=group_id,
            replication_group_description="Online feature store (Feast Redis format)",
            engine="redis",
            engine_version=config.redis_engine_version,
            cache_node_type=config.redis_node_type,
            num_cache_clusters=config.redis_nodes,
            automatic_failover_enabled=replicated,
            multi_az_enabled=replicated,
            cache_subnet_group_name=subnet_group.ref,
            cache_parameter_group_name=parameters.ref,
            security_group_ids=[self.security_group.security_group_id],
            port=REDIS_PORT,
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=data_key.key_arn,
            auth_token=self.auth_secret.secret_value.unsafe_unwrap(),
            auto_minor_version_upgrade=True,
            snapshot_retention_limit=config.redis_snapshot_retention_days,
        )

    def alarms(self) -> list[cloudwatch.Alarm]:
        """Per-node alarms (the primary moves on failover, so every node is watched)."""
        alarms = []
        for index, node in enumerate(self.node_ids, start=1):
            checks = list(_NODE_ALARMS)
            if len(self.node_ids) >= 2:
                # Reported by replicas only; on the primary the data is missing, not breaching.
                checks.append(_REPLICATION_LAG)
            for metric_name, statistic, threshold, description in checks:
                metric = cloudwatch.Metric(
                    namespace="AWS/ElastiCache", metric_name=metric_name,
                    dimensions_map={"CacheClusterId": node},
                    statistic=statistic, period=Duration.minutes(5),
                )  # fmt: skip
                alarms.append(
                    metric.create_alarm(
                        self, f"{metric_name}Node{index}", threshold=threshold,
                        evaluation_periods=1 if metric_name == "Evictions" else 3,
                        comparison_operator=(
                            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
                        ),
                        alarm_description=f"Online feature store node {node}: {description}",
                        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    )
                )  # fmt: skip
        return alarms
