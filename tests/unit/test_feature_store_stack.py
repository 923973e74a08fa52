from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from mlops.config import FeatureStoreConfig
from pipelines.sample_data import ENTITY, PROFILE_VIEW, TIMESTAMP, TRANSACTION_VIEW, generate
from stacks.constructs.offline_store import glue_columns
from tests.conftest import SynthesizedEnvironment

pytestmark = pytest.mark.unit
Synth = Callable[[str], SynthesizedEnvironment]
DATA_KEY_IMPORT = {"Fn::ImportValue": Match.string_like_regexp(r"-security:.*DataKey.*Arn")}


def _template(synthesized: Synth, env: str = "dev") -> Template:
    return Template.from_stack(synthesized(env).stack("feature-store"))


def _only(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    resources = template.find_resources(resource_type)
    assert len(resources) == 1, f"expected one {resource_type}, found {sorted(resources)}"
    logical_id, resource = next(iter(resources.items()))
    return logical_id, resource["Properties"]


def _logical_id(template: Template, resource_type: str, description: str) -> str:
    found = template.find_resources(
        resource_type, {"Properties": {"GroupDescription": Match.string_like_regexp(description)}}
    )
    assert len(found) == 1, (resource_type, description, sorted(found))
    return next(iter(found))


def test_redis_is_encrypted_authenticated_and_single_node_in_dev(synthesized: Synth) -> None:
    template = _template(synthesized)
    secret_id, secret = _only(template, "AWS::SecretsManager::Secret")
    assert "DataKey" in secret["KmsKeyId"]["Fn::ImportValue"]
    assert secret["GenerateSecretString"] == {"ExcludePunctuation": True, "PasswordLength": 64}
    _, group = _only(template, "AWS::ElastiCache::ReplicationGroup")
    assert group["TransitEncryptionEnabled"] is True
    assert group["AtRestEncryptionEnabled"] is True
    assert "DataKey" in group["KmsKeyId"]["Fn::ImportValue"]
    assert group["AuthToken"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:::}}"]]
    }
    assert group["Engine"] == "redis"
    assert group["Port"] == 6379
    assert group["NumCacheClusters"] == 1
    assert group["AutomaticFailoverEnabled"] is False
    assert group["MultiAZEnabled"] is False
    assert group["ReplicationGroupId"] == "mlops-dev-feature-store"


def test_redis_is_multi_az_with_failover_in_prod(synthesized: Synth) -> None:
    _, group = _only(_template(synthesized, "prod"), "AWS::ElastiCache::ReplicationGroup")
    assert group["NumCacheClusters"] >= 2
    assert group["AutomaticFailoverEnabled"] is True
    assert group["MultiAZEnabled"] is True
    assert group["SnapshotRetentionLimit"] == 7


def _suppressed(template: Template, resource_type: str) -> set[str]:
    resource = next(iter(template.find_resources(resource_type).values()))
    return {rule["id"] for rule in resource["Metadata"]["cdk_nag"]["rules_to_suppress"]}


@pytest.mark.parametrize(
    ("env", "expected"),
    [("dev", {"AwsSolutions-AEC4", "AwsSolutions-AEC5"}), ("prod", {"AwsSolutions-AEC5"})],
)
def test_multi_az_finding_is_accepted_only_for_single_node_environments(
    synthesized: Synth, env: str, expected: set[str]
) -> None:
    template = _template(synthesized, env)
    assert _suppressed(template, "AWS::ElastiCache::ReplicationGroup") == expected
    assert _suppressed(template, "AWS::SecretsManager::Secret") == {"AwsSolutions-SMG4"}


@pytest.mark.parametrize(
    "bad",
    [{"redis_nodes": 0}, {"redis_nodes": 7}, {"athena_bytes_scanned_cutoff_per_query": 1000},
     {"redis_engine_version": "6.2"}, {"redis_node_type": "t4g.small"}, {"redis_port": 6380},
     {"materialization_instance_type": "m5.large"}, {"materialization_max_staleness_hours": 0},
     {"materialization_max_staleness_hours": 25}, {"materialization_schedule": "hourly"}],
)  # fmt: skip
def test_feature_store_config_rejects_invalid_values(bad: dict[str, Any]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        FeatureStoreConfig.model_validate(bad)


@pytest.mark.parametrize(
    ("schedule", "hours", "message"),
    [
        ("rate(6 hours)", 3, "shorter than the materialization_schedule interval"),
        ("rate(0 minutes)", 3, "the shortest rate is 1 minute"),
    ],
)
def test_freshness_window_must_cover_the_schedule(schedule: str, hours: int, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        FeatureStoreConfig(
            materialization_schedule=schedule, materialization_max_staleness_hours=hours
        )


@pytest.mark.parametrize(
    ("schedule", "minutes"),
    [
        ("rate(1 hour)", 60),
        ("rate(15 minutes)", 15),
        ("rate(1 day)", 1440),
        ("cron(0 * * * ? *)", None),
    ],
)
def test_schedule_interval_is_read_from_rate_expressions(
    schedule: str, minutes: int | None
) -> None:
    config = FeatureStoreConfig(
        materialization_schedule=schedule, materialization_max_staleness_hours=24
    )
    interval = config.materialization_interval()
    assert (interval.total_seconds() / 60 if interval else None) == minutes


def test_redis_lives_in_the_private_subnets_with_its_parameter_group(synthesized: Synth) -> None:
    template = _template(synthesized)
    subnet_group_id, subnet_group = _only(template, "AWS::ElastiCache::SubnetGroup")
    exports = [ref["Fn::ImportValue"] for ref in subnet_group["SubnetIds"]]
    assert len(exports) == 2  # one per configured availability zone
    assert all(
        name.startswith("mlops-dev-network:") and "privateSubnet" in name for name in exports
    ), exports
    parameters_id, parameters = _only(template, "AWS::ElastiCache::ParameterGroup")
    assert parameters["CacheParameterGroupFamily"] == "redis7"
    assert parameters["Properties"] == {"maxmemory-policy": "volatile-lru"}
    _, group = _only(template, "AWS::ElastiCache::ReplicationGroup")
    assert group["CacheSubnetGroupName"] == {"Ref": subnet_group_id}
    assert group["CacheParameterGroupName"] == {"Ref": parameters_id}


def test_only_the_consumers_group_reaches_redis_on_6379(synthesized: Synth) -> None:
    template = _template(synthesized)
    redis_sg = _logical_id(template, "AWS::EC2::SecurityGroup", "^Online feature store")
    consumers_sg = _logical_id(template, "AWS::EC2::SecurityGroup", "^Clients of the online")
    _, group = _only(template, "AWS::ElastiCache::ReplicationGroup")
    assert group["SecurityGroupIds"] == [{"Fn::GetAtt": [redis_sg, "GroupId"]}]
    redis_props = template.to_json()["Resources"][redis_sg]["Properties"]
    assert "SecurityGroupIngress" not in redis_props
    _, ingress = _only(template, "AWS::EC2::SecurityGroupIngress")
    assert ingress == {
        "Description": "Redis (TLS) to the feature store",
        "GroupId": {"Fn::GetAtt": [redis_sg, "GroupId"]},
        "SourceSecurityGroupId": {"Fn::GetAtt": [consumers_sg, "GroupId"]},
        "IpProtocol": "tcp",
        "FromPort": 6379,
        "ToPort": 6379,
    }
    template.has_output(
        "ConsumersSecurityGroupId", {"Value": {"Fn::GetAtt": [consumers_sg, "GroupId"]}}
    )


def test_athena_workgroup_enforces_encrypted_results_and_a_scan_cutoff(synthesized: Synth) -> None:
    template = _template(synthesized)
    _, workgroup = _only(template, "AWS::Athena::WorkGroup")
    config = workgroup["WorkGroupConfiguration"]
    assert workgroup["Name"] == "mlops-dev-feature-store"
    assert config["EnforceWorkGroupConfiguration"] is True
    assert (
        config["BytesScannedCutoffPerQuery"]
        == FeatureStoreConfig().athena_bytes_scanned_cutoff_per_query
    )
    assert config["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}
    result = config["ResultConfiguration"]
    assert result["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert "DataKey" in result["EncryptionConfiguration"]["KmsKey"]["Fn::ImportValue"]
    results_bucket = template.find_resources(
        "AWS::S3::Bucket",
        {"Properties": {"LifecycleConfiguration": {"Rules": [
            Match.object_like({"Id": "expire-query-results", "ExpirationInDays": 30})]}}},
    )  # fmt: skip
    assert len(results_bucket) == 1
    join = result["OutputLocation"]["Fn::Join"][1]
    assert join[0] == "s3://" and join[1] == {"Ref": next(iter(results_bucket))}


@pytest.mark.parametrize("view", [PROFILE_VIEW, TRANSACTION_VIEW])
def test_glue_tables_are_partitioned_parquet_with_the_warehouse_columns(
    synthesized: Synth, view: str
) -> None:
    template = _template(synthesized)
    _, database = _only(template, "AWS::Glue::Database")
    tables = template.find_resources(
        "AWS::Glue::Table", {"Properties": {"TableInput": {"Name": view}}}
    )
    assert len(tables) == 1
    table = next(iter(tables.values()))["Properties"]
    assert table["DatabaseName"] == database["DatabaseInput"]["Name"] == "mlops_dev_feature_store"
    table_input = table["TableInput"]
    assert table_input["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    assert table_input["TableType"] == "EXTERNAL_TABLE"
    storage = table_input["StorageDescriptor"]
    assert storage["InputFormat"].endswith("MapredParquetInputFormat")
    assert storage["OutputFormat"].endswith("MapredParquetOutputFormat")
    assert storage["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    columns = [(c["Name"], c["Type"]) for c in storage["Columns"]]
    assert columns[:2] == [(ENTITY, "bigint"), (TIMESTAMP, "timestamp")]
    assert columns == glue_columns(view)
    location = storage["Location"]["Fn::Join"][1]
    assert location[-1] == f"/offline/{view}/"
    params = table_input["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    assert params["storage.location.template"]["Fn::Join"][1][-1] == f"/offline/{view}/dt=${{dt}}/"


def test_glue_column_types_match_the_sample_data_and_feast() -> None:
    """Glue types follow the warehouse contract: int64 -> bigint, float64 -> double."""
    from feast.types import Int64

    from features.repo.definitions import schema

    sample = generate(n_customers=3, days=1)
    frames = {PROFILE_VIEW: sample.profiles, TRANSACTION_VIEW: sample.transactions}
    athena_type = {"int64": "bigint", "float64": "double"}
    for view, frame in frames.items():
        columns = glue_columns(view)
        expected = [
            (name, "timestamp" if name == TIMESTAMP else athena_type[str(dtype)])
            for name, dtype in frame.dtypes.items()
        ]
        assert columns == expected, view
        feast = [(f.name, "bigint" if f.dtype == Int64 else "double") for f in schema(view)]
        assert columns[2:] == feast, view


def test_data_lake_bucket_is_encrypted_tls_only_logged_and_tiered(synthesized: Synth) -> None:
    template = _template(synthesized)
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [Match.object_like({
                "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                  "KMSMasterKeyID": DATA_KEY_IMPORT}})]},
            "LoggingConfiguration": {
                "DestinationBucketName": {"Fn::ImportValue": Match.string_like_regexp(
                    "-security:.*AccessLogs")},
                "LogFilePrefix": "datalake/",
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {"Rules": Match.array_with([
                Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 90}}),
                Match.object_like({
                    "Id": "offline-features-to-intelligent-tiering",
                    "Prefix": "offline/",
                    "Transitions": [{"StorageClass": "INTELLIGENT_TIERING",
                                     "TransitionInDays": 30}],
                }),
            ])},
        },
    )  # fmt: skip
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


@pytest.mark.parametrize(("env", "nodes"), [("dev", 1), ("prod", 2)])
def test_redis_alarms_notify_the_encrypted_topic(synthesized: Synth, env: str, nodes: int) -> None:
    template = _template(synthesized, env)
    topic_id, topic = _only(template, "AWS::SNS::Topic")
    assert "DataKey" in topic["KmsMasterKeyId"]["Fn::ImportValue"]
    alarms = [
        a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == "AWS/ElastiCache"
    ]
    metrics = sorted({a["MetricName"] for a in alarms})
    expected = ["CPUUtilization", "DatabaseMemoryUsagePercentage", "EngineCPUUtilization",
                "Evictions"] + (["ReplicationLag"] if nodes > 1 else [])  # fmt: skip
    assert metrics == sorted(expected)
    assert len(alarms) == nodes * len(expected)
    nodes_watched = {a["Dimensions"][0]["Value"] for a in alarms}
    group_id = f"mlops-{env}-feature-store"
    assert nodes_watched == {f"{group_id}-{n:03d}" for n in range(1, nodes + 1)}
    assert all(a["AlarmActions"] == [{"Ref": topic_id}] for a in alarms)
    assert all(a["Namespace"] == "AWS/ElastiCache" for a in alarms)
    _, topic_policy = _only(template, "AWS::SNS::TopicPolicy")
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in topic_policy["PolicyDocument"]["Statement"]
    )


def test_data_key_lets_cloudwatch_publish_to_encrypted_topics(synthesized: Synth) -> None:
    Template.from_stack(synthesized("dev").stack("security")).has_resource_properties(
        "AWS::KMS::Key",
        {"KeyPolicy": {"Statement": Match.array_with([Match.object_like({
            "Sid": "AllowCloudWatchAlarmsToPublishToEncryptedTopics",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        })])}},
    )  # fmt: skip


def test_outputs_name_everything_feast_and_consumers_need(synthesized: Synth) -> None:
    outputs = _template(synthesized).to_json()["Outputs"]
    assert outputs["GlueDatabaseName"]["Value"] == "mlops_dev_feature_store"
    assert outputs["AthenaWorkGroupName"]["Value"] == "mlops-dev-feature-store"
    registry = outputs["RegistryUri"]["Value"]["Fn::Join"][1]
    assert registry[0] == "s3://" and registry[-1] == "/feast/registry.db"
    assert outputs["RedisEndpointAddress"]["Value"]["Fn::GetAtt"][1] == "PrimaryEndPoint.Address"
    assert outputs["RedisEndpointPort"]["Value"]["Fn::GetAtt"][1] == "PrimaryEndPoint.Port"
    secret_id, _ = _only(_template(synthesized), "AWS::SecretsManager::Secret")
    assert outputs["RedisAuthSecretArn"]["Value"] == {"Ref": secret_id}
    assert {"DataLakeBucketName", "ConsumersSecurityGroupId", "AlarmTopicArn"} <= set(outputs)
