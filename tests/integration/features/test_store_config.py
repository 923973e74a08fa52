"""Store configuration for both environments, the shared definitions and the key contract."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
import yaml
from feast import FileSource, RepoConfig
from feast.infra.offline_stores.contrib.athena_offline_store.athena import (
    AthenaOfflineStoreConfig,
)
from feast.infra.offline_stores.contrib.athena_offline_store.athena_source import AthenaSource
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from moto import mock_aws
from pydantic import ValidationError

from features import codec
from features.repo import CUSTOMER, SERVICE_NAME, TTLS, athena_sources, build_repo, file_sources
from features.store import (
    connection_string_from_url,
    feature_store_config,
    open_store,
    redis_password_from_secret,
    repo_config,
    write_feature_store_yaml,
)
from pipelines import sample_data as sd

pytestmark = pytest.mark.integration

AWS_PARAMS = {
    "region": "ap-northeast-2",
    "database": "mlops_features",
    "workgroup": "mlops",
    "s3_staging_location": "s3://mlops-athena-results/feast/",
    "registry_uri": "s3://mlops-feature-registry/registry.pb",
    "redis_host": "master.features.abc123.apn2.cache.amazonaws.com",
    "redis_password": "s3cr3t-token",
}


def test_aws_config_validates_as_feast_repo_config(tmp_path: Path) -> None:
    config = repo_config(feature_store_config("aws", **AWS_PARAMS), tmp_path)

    assert isinstance(config, RepoConfig)
    assert isinstance(config.offline_store, AthenaOfflineStoreConfig)
    assert config.offline_store.database == "mlops_features"
    assert config.offline_store.data_source == "AwsDataCatalog"
    assert isinstance(config.online_store, RedisOnlineStoreConfig)
    assert config.online_store.connection_string == (
        "master.features.abc123.apn2.cache.amazonaws.com:6379,ssl=true,password=s3cr3t-token"
    )
    assert config.registry.path == "s3://mlops-feature-registry/registry.pb"
    assert config.entity_key_serialization_version == 3


def test_local_config_opens_a_store_on_the_given_redis(tmp_path: Path) -> None:
    config = feature_store_config(
        "local", registry_path=str(tmp_path / "r.db"), redis_url="redis://127.0.0.1:6390/2"
    )
    store = open_store(config, tmp_path)

    assert store.config.offline_store.type == "file"
    assert store.config.online_store.connection_string == "127.0.0.1:6390,db=2"
    assert store.project == "credit_risk"


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("aws", {**AWS_PARAMS, "registry_uri": "/not/s3"}),
        ("aws", {k: v for k, v in AWS_PARAMS.items() if k != "redis_password"}),
        ("local", {"registry_path": "r.db", "unexpected": 1}),
    ],
)
def test_bad_parameters_are_rejected(kind: str, params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        feature_store_config(kind, **params)  # type: ignore[arg-type]


def test_secret_is_not_in_the_settings_repr() -> None:
    from features.store import AwsStoreSettings

    assert "s3cr3t-token" not in repr(AwsStoreSettings(**AWS_PARAMS))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6379", "localhost:6379"),
        ("redis://127.0.0.1:7000/3", "127.0.0.1:7000,db=3"),
        ("rediss://:p%40ss@cache.example:6380/0", "cache.example:6380,db=0,ssl=true,password=p@ss"),
    ],
)
def test_connection_string_from_url(url: str, expected: str) -> None:
    assert connection_string_from_url(url) == expected


def test_feature_store_yaml_round_trips_and_is_private(tmp_path: Path) -> None:
    config = feature_store_config("aws", **AWS_PARAMS)
    path = write_feature_store_yaml(config, tmp_path / "aws")

    assert yaml.safe_load(path.read_text()) == config
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@mock_aws
def test_redis_password_from_secrets_manager() -> None:
    client = boto3.client("secretsmanager", region_name="ap-northeast-2")
    client.create_secret(Name="plain", SecretString="tok-1")
    client.create_secret(Name="json", SecretString=json.dumps({"password": "tok-2"}))

    assert redis_password_from_secret("plain", region="ap-northeast-2") == "tok-1"
    assert redis_password_from_secret("json", region="ap-northeast-2") == "tok-2"


def test_definitions_are_identical_across_environments() -> None:
    local = build_repo(file_sources("s3://bucket/warehouse"))
    aws = build_repo(athena_sources("mlops_features"))

    assert local.entity is aws.entity is CUSTOMER
    for mine, theirs in zip(local.views, aws.views, strict=True):
        assert (mine.name, mine.features, mine.entities, mine.ttl) == (
            theirs.name,
            theirs.features,
            theirs.entities,
            theirs.ttl,
        )
        assert mine.batch_source is not None and theirs.batch_source is not None
        assert mine.batch_source.timestamp_field == theirs.batch_source.timestamp_field
    assert local.service.name == aws.service.name == SERVICE_NAME
    assert [(p.name, p.name_alias, p.features) for p in local.service.feature_view_projections] == [
        (p.name, p.name_alias, p.features) for p in aws.service.feature_view_projections
    ]
    assert isinstance(aws.profile.batch_source, AthenaSource)
    assert isinstance(local.profile.batch_source, FileSource)
    assert aws.profile.batch_source.table == sd.PROFILE_VIEW
    assert local.profile.batch_source.path == f"s3://bucket/warehouse/{sd.PROFILE_VIEW}"
    assert {v.name: v.ttl for v in local.views} == dict(TTLS)


def test_schemas_match_the_warehouse_parquet(tmp_path: Path) -> None:
    data = sd.generate(20, days=2)
    files = sd.write_parquet(data, tmp_path)
    repo = build_repo(file_sources(str(tmp_path)))
    for view in repo.views:
        arrow = pq.read_schema(files[view.name][0])
        assert [f.name for f in view.features] == [
            n for n in arrow.names if n not in (sd.ENTITY, sd.TIMESTAMP)
        ]
        for feature in view.features:
            expected = "int64" if feature.dtype.to_value_type().name == "INT64" else "double"
            assert str(arrow.field(feature.name).type) == expected, feature.name


def test_entity_keys_are_feasts_own_keys() -> None:
    """Contract: the spliced keys must equal feast.infra.online_stores.helpers._redis_key."""
    keys = codec.EntityKeys("credit_risk", sd.ENTITY, 3)
    ids = [0, 1, -1, 1_000_001, 1_004_999, 2**40 + 7, 2**63 - 1, -(2**63)]

    assert keys.fast, "Feast's entity key layout changed: serialize_entity_key (v3) no splice"
    assert keys.keys(ids) == [keys.feast_key(i) for i in ids]
