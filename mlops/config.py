"""The platform's typed configuration: one model for every environment.

The values live in `cdk.json` under the context key `platform`; `app.py` reads them once,
validates them here, and passes the resulting frozen objects down to the stacks as typed
arguments. Nothing else reads CDK context or deployment-time environment variables.

Validation happens before any synthesis, and every error names the offending key with its
full path (for example `platform.environments.dev.network.nat_gateways`), so a typo in
`cdk.json` is a one-line fix rather than a CloudFormation failure twenty minutes later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from enum import StrEnum
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops.config_monitoring import MonitoringConfig
from mlops.config_registry import RegistryConfig
from mlops.config_serving import ServingConfig

ENVIRONMENT_NAMES = ("local", "dev", "prod")
EnvironmentName = Literal["local", "dev", "prod"]

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
     2922, 3288, 3653}
)  # fmt: skip

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names every bad key."""


class InterfaceEndpoint(StrEnum):
    """AWS services the platform reaches through interface VPC endpoints."""

    SAGEMAKER_API = "sagemaker.api"
    SAGEMAKER_RUNTIME = "sagemaker.runtime"
    STEP_FUNCTIONS = "states"
    LOGS = "logs"
    SECRETS_MANAGER = "secretsmanager"
    ECR_API = "ecr.api"
    ECR_DOCKER = "ecr.dkr"
    STS = "sts"
    MONITORING = "monitoring"
    # The materialization job in the isolated subnets reads the offline store through Athena.
    ATHENA = "athena"
    GLUE = "glue"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(_Strict):
    """The VPC. Private subnets are isolated unless NAT gateways are configured."""

    cidr: IPv4Network = Field(
        default=IPv4Network("10.20.0.0/16"), description="VPC IPv4 range; /16 to /24."
    )
    availability_zones: tuple[str, ...] = Field(
        min_length=1,
        max_length=3,
        description="AZ names; explicit so synthesis needs no AWS lookup.",
    )
    nat_gateways: int = Field(
        default=0,
        ge=0,
        le=3,
        description="0 keeps private subnets isolated: AWS is reached through endpoints only.",
    )
    interface_endpoints: tuple[InterfaceEndpoint, ...] = Field(
        default=tuple(InterfaceEndpoint), description="Interface endpoints to create."
    )
    flow_log_retention_days: int = Field(default=90, description="VPC flow log retention.")

    @field_validator("cidr")
    @classmethod
    def _cidr_size(cls, value: IPv4Network) -> IPv4Network:
        if not 16 <= value.prefixlen <= 24:
            raise ValueError(f"prefix length must be between /16 and /24, got /{value.prefixlen}")
        return value

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @field_validator("interface_endpoints")
    @classmethod
    def _unique_endpoints(
        cls, value: tuple[InterfaceEndpoint, ...]
    ) -> tuple[InterfaceEndpoint, ...]:
        if len(set(value)) != len(value):
            raise ValueError("interface endpoints must not repeat")
        return value


class TrainingConfig(_Strict):
    """What the upload trigger accepts."""

    allowed_models: tuple[str, ...] = Field(
        default=("*",),
        min_length=1,
        description="Model names that may be trained here; '*' allows any valid name.",
    )
    max_bundle_mb: int = Field(default=50, ge=1, le=500, description="Bundle archive limit.")
    max_bundle_files: int = Field(default=500, ge=1, le=10_000)

    @field_validator("allowed_models")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in value if n != "*" and not re.match(r"^[a-z][a-z0-9-]{1,29}$", n)]
        if bad:
            raise ValueError(f"not valid model names: {bad} (lowercase, digits, '-', 2-30 chars)")
        return value


class FeatureStoreConfig(_Strict):
    """The feature store: offline data lake + Athena, and the ElastiCache Redis online store.

    Defaults suit a single-node development store; production sets `redis_nodes` >= 2, which
    turns on Multi-AZ with automatic failover.
    """

    redis_node_type: str = Field(
        default="cache.t4g.small", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$"
    )
    redis_nodes: int = Field(
        default=1, ge=1, le=6, description="Primary + replicas; >= 2 enables Multi-AZ failover."
    )
    redis_engine_version: str = Field(default="7.1", pattern=r"^7\.\d+$")
    redis_maxmemory_policy: Literal["volatile-lru", "allkeys-lru", "noeviction"] = Field(
        default="volatile-lru",
        description="Which keys Redis may evict when full (Feast's key TTL marks volatile keys).",
    )
    redis_snapshot_retention_days: int = Field(default=1, ge=0, le=35)
    athena_bytes_scanned_cutoff_per_query: int = Field(
        default=10 * 1024**3, ge=10_000_000, description="Athena cancels queries above this."
    )
    athena_engine_version: str = "Athena engine version 3"
    athena_results_retention_days: int = Field(default=30, ge=1, le=3650)
    intelligent_tiering_after_days: int = Field(
        default=30, ge=0, description="Feature data moves to S3 Intelligent-Tiering after this."
    )
    noncurrent_version_retention_days: int = Field(default=90, ge=1, le=3650)
    partition_projection_start: date = Field(
        default=date(2020, 1, 1), description="First `dt` partition Athena's projection knows."
    )
    offline_store: Literal["athena", "file"] = Field(
        default="athena",
        description=(
            "How Feast reads the data lake: Athena over the Glue tables (AWS), or the file "
            "offline store over the same Parquet partitions copied from S3 (the local engine, "
            "which has no Athena)."
        ),
    )
    materialization_schedule: str = Field(
        default="rate(1 hour)",
        pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$",
        description="EventBridge Scheduler expression for offline→online materialization.",
    )
    feast_project: str = Field(
        default="credit_risk",
        pattern=r"^[A-Za-z0-9_]+$",
        description="Feast project: part of every online key, so writers and readers agree.",
    )
    materialization_lookback_days: int = Field(
        default=2,
        ge=1,
        le=365,
        description="Window start of a view's first materialization (later runs resume).",
    )
    materialization_instance_type: str = Field(
        default="ml.m5.large",
        pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$",
        description="SageMaker Processing instance of the materialization job (EBS-only types: "
        "the volume is encrypted with the data key, which instance-store types reject).",
    )
    materialization_volume_gb: int = Field(
        default=30, ge=5, le=1024, description="The job's storage volume (wheels + Parquet)."
    )
    materialization_max_runtime_minutes: int = Field(
        default=60, ge=5, le=24 * 60, description="SageMaker stops a run after this long."
    )
    materialization_max_staleness_hours: int = Field(
        default=3,
        ge=1,
        le=24,
        description="Freshness alarm: a view's online data is older than this, or no run "
        "reported it for this long. At least the schedule's interval.",
    )

    def materialization_interval(self) -> timedelta | None:
        """The interval of a `rate(...)` schedule; None for `cron(...)` (no fixed interval)."""
        match = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", self.materialization_schedule)
        if match is None:
            return None
        return timedelta(**{f"{match.group(2)}s": int(match.group(1))})

    @model_validator(mode="after")
    def _staleness_covers_the_schedule(self) -> FeatureStoreConfig:
        interval = self.materialization_interval()
        if interval is not None and interval.total_seconds() < 60:
            raise ValueError("materialization_schedule: the shortest rate is 1 minute")
        if interval is not None and interval > timedelta(
            hours=self.materialization_max_staleness_hours
        ):
            raise ValueError(
                f"materialization_max_staleness_hours ({self.materialization_max_staleness_hours})"
                f" is shorter than the materialization_schedule interval "
                f"({self.materialization_schedule}): the freshness alarm would always fire"
            )
        return self


class EnvironmentConfig(_Strict):
    """Everything that differs between local, dev and prod."""

    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = Field(
        default=None,
        description="Target account; when null, CDK_DEFAULT_ACCOUNT (if set) or env-agnostic.",
    )
    region: str = Field(description="Target region, e.g. ap-northeast-2.")
    removal_policy: Literal["retain", "destroy"] = Field(
        description="What happens to data stores (buckets, keys, tables) on stack deletion."
    )
    termination_protection: bool = False
    log_retention_days: int = 30
    access_log_retention_days: int = Field(default=365, ge=1, le=3650)
    lambda_python: Literal["3.12", "3.13", "3.14"] = Field(
        default="3.14", description="Python version of every Lambda runtime and its bundle."
    )
    lambda_dependencies: Literal["vendored", "provided"] = Field(
        default="vendored",
        description=(
            "'vendored' installs each function's requirements into its bundle (AWS, LocalStack);"
            " 'provided' ships only the project's code, for the local engine, whose Lambda "
            "runtime imports third-party packages from its own environment."
        ),
    )
    network: NetworkConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    feature_store: FeatureStoreConfig = Field(default_factory=FeatureStoreConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name (e.g. ap-northeast-2)")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @model_validator(mode="after")
    def _zones_in_region(self) -> EnvironmentConfig:
        foreign = [az for az in self.network.availability_zones if not az.startswith(self.region)]
        if foreign:
            raise ValueError(
                f"network.availability_zones {foreign} are not in region {self.region}"
            )
        unserved = sorted(set(self.monitoring.models) - set(self.serving.models))
        if unserved:
            raise ValueError(
                f"monitoring.models {unserved} are not in serving.models: only a served model "
                "has prediction logs to watch"
            )
        return self


class PlatformConfig(_Strict):
    """The whole configuration: a project name and one block per environment."""

    project: str = Field(pattern=r"^[a-z][a-z0-9-]{1,19}$", description="Prefix of stack names.")
    environments: dict[EnvironmentName, EnvironmentConfig]

    @field_validator("environments")
    @classmethod
    def _all_present(
        cls, value: dict[EnvironmentName, EnvironmentConfig]
    ) -> dict[EnvironmentName, EnvironmentConfig]:
        missing = [name for name in ENVIRONMENT_NAMES if name not in value]
        if missing:
            raise ValueError(f"missing environment(s): {', '.join(missing)}")
        return value


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(v) for v in sorted(LOG_RETENTION_DAYS))
        raise ValueError(f"{value} is not a CloudWatch Logs retention period; use one of {allowed}")
    return value


def _format_errors(error: ValidationError, root: str) -> str:
    lines = []
    for item in error.errors():
        path = ".".join([root, *(str(part) for part in item["loc"])])
        lines.append(f"  {path}: {item['msg']}")
    return "invalid platform configuration:\n" + "\n".join(lines)


def load_platform_config(raw: Mapping[str, Any] | None, root: str = "platform") -> PlatformConfig:
    """Validate the raw `platform` context object; raise ConfigError naming each bad key."""
    if raw is None:
        raise ConfigError(f"missing configuration: cdk.json has no context key '{root}'")
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, root)) from None


def select_environment(config: PlatformConfig, name: str | None) -> EnvironmentConfig:
    """The block for `-c env=NAME`, with a clear error for an unknown name."""
    if name not in ENVIRONMENT_NAMES:
        raise ConfigError(
            f"unknown environment {name!r}: choose one of {', '.join(ENVIRONMENT_NAMES)} "
            "with `-c env=NAME`"
        )
    return config.environments[name]  # type: ignore[index]


def read_cdk_context(cdk_json: Path) -> dict[str, Any]:
    """The `context` object of a cdk.json file (what the CDK CLI passes to app.py)."""
    import json

    context = json.loads(cdk_json.read_text())["context"]
    if not isinstance(context, dict):
        raise ConfigError(f"{cdk_json}: 'context' must be an object")
    return context
