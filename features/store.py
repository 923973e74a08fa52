"""Build the Feast `FeatureStore` from a typed configuration instead of a hand-written yaml.

Two environments share the feature definitions and differ only here:

* ``local``: file offline store over Parquet, a local Redis online store, a registry file.
* ``aws``: Athena offline store (Glue tables over the same S3 layout), ElastiCache Redis with TLS
  and an AUTH token taken from Secrets Manager, a registry object in S3.

`feature_store_config` validates the parameters (unknown ones are an error) and returns the plain
dict that `feature_store.yaml` would hold; `open_store` turns it into a `FeatureStore`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import redis
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_PROJECT = "credit_risk"
ENTITY_KEY_SERIALIZATION_VERSION = 3


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(default=DEFAULT_PROJECT, pattern=r"^[A-Za-z0-9_]+$")
    key_ttl_seconds: int | None = Field(default=None, gt=0)
    registry_cache_ttl_seconds: int = Field(default=60, ge=0)


class LocalStoreSettings(_Settings):
    """File offline store + local Redis; `registry_path` is a local file."""

    registry_path: str
    redis_url: str = "redis://127.0.0.1:6379/0"


class AwsStoreSettings(_Settings):
    """Athena offline store + ElastiCache Redis (TLS, AUTH); registry in S3."""

    region: str
    database: str
    workgroup: str
    s3_staging_location: str = Field(pattern=r"^s3://")
    registry_uri: str = Field(pattern=r"^s3://")
    redis_host: str
    redis_port: int = 6379
    redis_password: SecretStr
    data_source: str = "AwsDataCatalog"


class AthenaOfflineSettings(BaseModel):
    """Feast's Athena offline store (Glue tables queried through an Athena workgroup)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(min_length=1)
    database: str = Field(min_length=1)
    workgroup: str = Field(min_length=1)
    s3_staging_location: str = Field(pattern=r"^s3://")
    data_source: str = "AwsDataCatalog"


def athena_offline_store(**params: Any) -> dict[str, Any]:
    """The `offline_store` section for Athena (see `AthenaOfflineSettings`), for configs whose
    registry is not the S3 one, e.g. a job applying the definitions to a throwaway registry."""
    return {"type": "athena", **AthenaOfflineSettings(**params).model_dump()}


def connection_string_from_url(url: str) -> str:
    """Feast's Redis connection string (`host:port,db=0,ssl=true,password=...`) for a URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ValueError(f"not a redis:// or rediss:// URL: {url!r}")
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    db = parsed.path.lstrip("/")
    if db:
        parts.append(f"db={int(db)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    return ",".join(parts)


def _online_store(connection_string: str, key_ttl_seconds: int | None) -> dict[str, Any]:
    online: dict[str, Any] = {"type": "redis", "connection_string": connection_string}
    if key_ttl_seconds is not None:
        online["key_ttl_seconds"] = key_ttl_seconds
    return online


def feature_store_config(kind: Literal["local", "aws"], **params: Any) -> dict[str, Any]:
    """The repo configuration for `kind`; see `LocalStoreSettings` / `AwsStoreSettings`."""
    common: dict[str, Any] = {
        "provider": "local" if kind == "local" else "aws",
        "entity_key_serialization_version": ENTITY_KEY_SERIALIZATION_VERSION,
    }
    if kind == "local":
        local = LocalStoreSettings(**params)
        return {
            "project": local.project,
            **common,
            "registry": {
                "registry_type": "file",
                "path": local.registry_path,
                "cache_ttl_seconds": local.registry_cache_ttl_seconds,
            },
            "offline_store": {"type": "file"},
            "online_store": _online_store(
                connection_string_from_url(local.redis_url), local.key_ttl_seconds
            ),
        }
    if kind == "aws":
        aws = AwsStoreSettings(**params)
        password = aws.redis_password.get_secret_value()
        return {
            "project": aws.project,
            **common,
            "registry": {
                "registry_type": "file",
                "path": aws.registry_uri,
                "cache_ttl_seconds": aws.registry_cache_ttl_seconds,
            },
            "offline_store": {
                "type": "athena",
                "region": aws.region,
                "database": aws.database,
                "workgroup": aws.workgroup,
                "data_source": aws.data_source,
                "s3_staging_location": aws.s3_staging_location,
            },
            "online_store": _online_store(
                f"{aws.redis_host}:{aws.redis_port},ssl=true,password={password}",
                aws.key_ttl_seconds,
            ),
        }
    raise ValueError(f"kind must be 'local' or 'aws', got {kind!r}")


def repo_config(config: Mapping[str, Any], repo_path: Path | str) -> Any:
    """Validate `config` as a Feast `RepoConfig` (contacts nothing)."""
    from feast import RepoConfig

    return RepoConfig(repo_path=Path(repo_path), **dict(config))


def open_store(config: Mapping[str, Any], repo_path: Path | str) -> Any:
    """A `feast.FeatureStore` for `config`; `repo_path` anchors relative source paths."""
    from feast import FeatureStore

    return FeatureStore(config=repo_config(config, repo_path))


def write_feature_store_yaml(config: Mapping[str, Any], directory: Path | str) -> Path:
    """Write `config` as `feature_store.yaml` for the `feast` CLI; owner-only (it may hold the
    Redis password)."""
    path = Path(directory) / "feature_store.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(dict(config), handle, sort_keys=False)
    return path


def redis_password_from_secret(
    secret_id: str, *, region: str | None = None, endpoint_url: str | None = None
) -> str:
    """The ElastiCache AUTH token stored in Secrets Manager (a plain string, or JSON with a
    `password` key as CDK-generated secrets hold it)."""
    import boto3

    client = boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint_url)
    secret = str(client.get_secret_value(SecretId=secret_id)["SecretString"])
    try:
        document = json.loads(secret)
    except json.JSONDecodeError:
        return secret
    if isinstance(document, dict) and isinstance(document.get("password"), str):
        return str(document["password"])
    raise ValueError(f"secret {secret_id!r} is JSON without a string 'password' field")


def redis_client(store: Any, redis_url: str | None = None) -> redis.Redis:
    """A redis-py client for `redis_url`, or for the store's online store when it is None.

    Uses Feast's own connection-string parser, so a client built here talks to exactly the
    server (db, TLS, password) Feast's Redis online store uses.
    """
    if redis_url is not None:
        return redis.Redis.from_url(redis_url)
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

    online = store.config.online_store
    if not isinstance(online, RedisOnlineStoreConfig) or online.redis_type != "redis":
        raise ValueError(f"the store's online store is not a single Redis: {online!r}")
    nodes, params = RedisOnlineStore._parse_connection_string(online.connection_string)
    return redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)
