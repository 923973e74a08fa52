"""Compose the platform's stacks for one environment.

Stacks only compose constructs and wire references between them; they receive the typed
environment configuration and never read CDK context themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Aspects, Environment, Stack, Tags
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from mlops.config import (
    EnvironmentConfig,
    EnvironmentName,
    load_platform_config,
    select_environment,
)
from mlops.deployments import pointer_prefix
from stacks.feature_store import FeatureStoreStack
from stacks.monitoring import MonitoringStack
from stacks.network import NetworkStack
from stacks.registry import RegistryStack
from stacks.security import SecurityStack
from stacks.serving import ServingStack
from stacks.training import TrainingStack


@dataclass(frozen=True)
class PlatformStacks:
    security: SecurityStack
    network: NetworkStack
    training: TrainingStack
    feature_store: FeatureStoreStack
    serving: ServingStack
    registry: RegistryStack
    monitoring: MonitoringStack | None = None

    def all(self) -> list[Stack]:
        stacks: list[Stack] = [self.security, self.network, self.training, self.feature_store,
                               self.serving, self.registry]  # fmt: skip
        return [*stacks, self.monitoring] if self.monitoring is not None else stacks


def build_platform(
    scope: Construct,
    *,
    project: str,
    env_name: EnvironmentName,
    env_config: EnvironmentConfig,
    account: str | None,
) -> PlatformStacks:
    """Add every stack of the platform for `env_name` to `scope` (an App)."""
    env = Environment(account=account, region=env_config.region)
    prefix = f"{project}-{env_name}"
    common = {"env": env, "termination_protection": env_config.termination_protection}
    security = SecurityStack(
        scope,
        f"{prefix}-security",
        env_config=env_config,
        project=project,
        env_name=env_name,
        description=f"{project} ({env_name}): KMS key and access-log bucket",
        **common,
    )
    network = NetworkStack(
        scope,
        f"{prefix}-network",
        env_config=env_config,
        data_key=security.data_key,
        description=f"{project} ({env_name}): VPC, endpoints and flow logs",
        **common,
    )
    feature_store = FeatureStoreStack(
        scope,
        f"{prefix}-feature-store",
        env_config=env_config,
        vpc=network.vpc,
        data_key=security.data_key,
        access_logs=security.access_logs,
        description=f"{project} ({env_name}): offline (S3, Glue, Athena) + online (Redis) features",
        **common,
    )
    training = TrainingStack(
        scope,
        f"{prefix}-training",
        env_config=env_config,
        data_key=security.data_key,
        access_logs=security.access_logs,
        offline_store=feature_store.offline,
        description=f"{project} ({env_name}): model-code upload → Step Functions → registry",
        **common,
    )
    serving = ServingStack(
        scope,
        f"{prefix}-serving",
        env_config=env_config,
        vpc=network.vpc,
        data_key=security.data_key,
        access_logs=security.access_logs,
        online=feature_store.online,
        artifacts_bucket=training.artifacts_bucket,
        champion_prefix=pointer_prefix(project, env_name),
        alarm_topic=training.topic,
        description=f"{project} ({env_name}): model proxy (Lambda, EKS) and prediction logs",
        **common,
    )
    registry = RegistryStack(
        scope,
        f"{prefix}-registry",
        env_config=env_config,
        data_key=security.data_key,
        champion_prefix=pointer_prefix(project, env_name),
        serving=serving,
        artifacts_bucket=training.artifacts_bucket,
        alarm_topic=training.topic,
        description=f"{project} ({env_name}): model groups, approval hook, deployment ledger",
        **common,
    )
    monitoring = None
    if env_config.monitoring.enabled and env_config.serving.models:
        monitoring = MonitoringStack(
            scope,
            f"{prefix}-monitoring",
            env_config=env_config,
            data_key=security.data_key,
            access_logs=security.access_logs,
            champion_prefix=pointer_prefix(project, env_name),
            serving=serving,
            training=training,
            description=f"{project} ({env_name}): drift job, alarms, continuous training, "
            "dashboards",
            **common,
        )
    stacks = PlatformStacks(
        security=security,
        network=network,
        training=training,
        feature_store=feature_store,
        serving=serving,
        registry=registry,
        monitoring=monitoring,
    )
    for stack in stacks.all():
        Tags.of(stack).add("project", project)
        for key, value in env_config.tags.items():
            Tags.of(stack).add(key, value)
    return stacks


def build_environment(
    app: Construct, platform: Any, env_name: Any, *, default_account: str | None = None
) -> PlatformStacks:
    """Validate the raw `platform` context, then build `env_name`'s stacks with cdk-nag.

    The one path from configuration to stacks, for app.py (under the CDK CLI), the tests and
    the local engine. Raises ConfigError, naming every bad key, before any construct exists.
    `default_account` applies when the environment's config leaves `account` null.
    """
    config = load_platform_config(platform)
    env_config = select_environment(config, env_name)
    stacks = build_platform(
        app,
        project=config.project,
        env_name=env_name,
        env_config=env_config,
        account=env_config.account or default_account,
    )
    apply_nag(app)
    return stacks


def apply_nag(scope: Construct) -> None:
    """Run the AWS Solutions rule pack over everything under scope at synthesis."""
    Aspects.of(scope).add(AwsSolutionsChecks(verbose=True))
